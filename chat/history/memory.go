package history

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// MemoryStore is a Store that keeps messages in memory only: for running
// without a data directory, and for tests. Everything is lost when the
// process ends.
type MemoryStore struct {
	mu        sync.Mutex
	rooms     map[string]*memRoom
	retention Retention
	closed    bool
	id        string
}

type memRoom struct {
	seq  uint64
	msgs []Message // ascending by Seq
}

var _ Store = (*MemoryStore)(nil)

// NewMemory returns an empty in-memory store, with an id of its own.
func NewMemory(r Retention) *MemoryStore {
	return &MemoryStore{rooms: make(map[string]*memRoom), retention: r, id: formatID(newID())}
}

func (s *MemoryStore) room(name string) *memRoom {
	r := s.rooms[strings.ToLower(name)]
	if r == nil {
		r = &memRoom{}
		s.rooms[strings.ToLower(name)] = r
	}
	return r
}

// Append implements Store.
func (s *MemoryStore) Append(msgs []Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for i := range msgs {
		r := s.room(msgs[i].Room)
		msgs[i].Seq = r.seq + 1
		r.add(msgs[i], s.retention.MaxMessages)
	}
	return nil
}

// Insert adds m with the number it already has, which must be above every
// number m's room has: for keeping a copy of a log numbered elsewhere,
// such as a cluster's stream. A room's numbers then need not be
// consecutive.
func (s *MemoryStore) Insert(m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	r := s.room(m.Room)
	if m.Seq <= r.seq {
		return fmt.Errorf("history: message %d is not above %d, the newest in %s", m.Seq, r.seq, m.Room)
	}
	r.add(m, s.retention.MaxMessages)
	return nil
}

// add appends m, the room's newest, keeping at most max messages (0: all).
func (r *memRoom) add(m Message, max int) {
	r.seq = m.Seq
	r.msgs = append(r.msgs, m)
	if max > 0 && len(r.msgs) > max {
		r.msgs = append(r.msgs[:0], r.msgs[len(r.msgs)-max:]...)
	}
}

// Before implements Store.
func (s *MemoryStore) Before(room string, before uint64, n int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	msgs := s.room(room).msgs
	end := len(msgs)
	if before != 0 {
		end = sort.Search(len(msgs), func(i int) bool { return msgs[i].Seq >= before })
	}
	start := max(0, end-max(n, 0))
	return append([]Message(nil), msgs[start:end]...), nil
}

// After implements Store.
func (s *MemoryStore) After(room string, after uint64, n int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	msgs := s.room(room).msgs
	start := sort.Search(len(msgs), func(i int) bool { return msgs[i].Seq > after })
	end := min(len(msgs), start+max(n, 0))
	return append([]Message(nil), msgs[start:end]...), nil
}

// Bounds implements Store.
func (s *MemoryStore) Bounds(room string) (oldest, newest uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	r := s.room(room)
	if len(r.msgs) == 0 {
		if r.seq == 0 {
			return 0, 0, nil
		}
		return r.seq + 1, r.seq, nil
	}
	return r.msgs[0].Seq, r.seq, nil
}

// Trim implements Store.
func (s *MemoryStore) Trim(now time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if s.retention.MaxAge <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-s.retention.MaxAge)
	removed := 0
	for _, r := range s.rooms {
		k := 0
		for k < len(r.msgs) && removed < limit && r.msgs[k].Time.Before(cutoff) {
			k++
			removed++
		}
		r.msgs = append(r.msgs[:0], r.msgs[k:]...)
	}
	return removed, nil
}

// Close implements Store.
func (s *MemoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
