package history

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// What a MemoryStore counts against Retention.MaxBytes besides the bytes
// of a message's strings (its Room, From, Text and Kind) or of a room's
// name: an estimate, rounded up, of the rest of what it holds for one on a
// 64-bit machine. A message's fields and its place in its room take 104
// bytes, and its room's slice of messages has some to spare; a room's
// record, its map entry and its place in the eviction order take about
// 150. Measured with 60-byte lines in 1 to 100,000 rooms, the heap a full
// store takes is 0.6 to 1.05 times what it counts.
const (
	MemoryMessageOverhead = 160
	MemoryRoomOverhead    = 256
)

// fileOverhead is what a message's File costs beyond its strings: the
// struct and its pointer.
const fileOverhead = 96

// MemoryStore is a Store that keeps messages in memory only: for running
// without a data directory, and for tests. Everything is lost when the
// process ends.
//
// With Retention.MaxBytes it holds at most that many bytes, counted as
// Bytes says. Past it, the oldest messages go first, whatever their room:
// the store keeps the most recent traffic, and a room that has gone quiet
// is the first to be forgotten. A room none of whose messages is left is
// forgotten but for its last number, so that its numbering carries on
// where it stopped. That record goes too once everything stored before
// the room was forgotten has gone; the store then remembers only the
// highest number it has forgotten, and any room it has no record of, new
// or forgotten, numbers its messages above it (see Bounds). So a room's
// numbers never go backwards, nor are they reused.
type MemoryStore struct {
	mu sync.Mutex
	// rooms holds, by lowercased name, every room with messages and the
	// forgotten rooms whose last numbers the store still keeps.
	rooms map[string]*memRoom
	// oldest orders rooms by their oldest message, or, for a forgotten
	// room, by when it was forgotten, oldest first: what goes next when
	// the store is over MaxBytes.
	oldest    roomHeap
	stamp     uint64 // counts messages added and rooms forgotten
	bytes     int64
	floor     uint64 // the highest last number of the rooms with no record
	retention Retention
	closed    bool
	id        string
}

type memRoom struct {
	key  string // the room's name, lowercased
	seq  uint64 // the newest number given out
	msgs []memMessage
	// forgot is the stamp of when the room lost its last message, while
	// it has none.
	forgot uint64
	index  int // in MemoryStore.oldest
}

// memMessage is a stored message and its stamp, which orders the store's
// messages across rooms by when they were added.
type memMessage struct {
	Message
	stamp uint64
}

var _ Store = (*MemoryStore)(nil)

// NewMemory returns an empty in-memory store, with an id of its own.
func NewMemory(r Retention) *MemoryStore {
	return &MemoryStore{rooms: make(map[string]*memRoom), retention: r, id: formatID(newID())}
}

// Bytes returns how many bytes the store counts against
// Retention.MaxBytes: for each message, the lengths of its Room, From,
// Text and Kind and MemoryMessageOverhead; for each room it keeps a record
// of, with messages or only its last number, the length of its name and
// MemoryRoomOverhead.
func (s *MemoryStore) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

func messageBytes(m *Message) int64 {
	n := len(m.Room) + len(m.From) + len(m.Text) + len(m.Kind) + MemoryMessageOverhead
	if f := m.File; f != nil {
		n += len(f.Name) + len(f.MIME) + len(f.SHA256) + len(f.Token) + fileOverhead
	}
	return int64(n)
}

func roomBytes(key string) int64 { return int64(len(key) + MemoryRoomOverhead) }

// lookup returns the record of the room named name, or nil.
func (s *MemoryStore) lookup(name string) *memRoom { return s.rooms[strings.ToLower(name)] }

// open returns the record of the room named name, making one if there is
// none, whose numbering carries on from the store's floor.
func (s *MemoryStore) open(name string) *memRoom {
	if r := s.lookup(name); r != nil {
		return r
	}
	s.stamp++
	r := &memRoom{key: strings.ToLower(name), seq: s.floor, forgot: s.stamp}
	s.rooms[r.key] = r
	heap.Push(&s.oldest, r)
	s.bytes += roomBytes(r.key)
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
		r := s.open(msgs[i].Room)
		msgs[i].Seq = r.seq + 1
		s.add(r, msgs[i])
	}
	return nil
}

// Insert adds m with the number it already has, which must be above every
// number m's room has (for a room the store has no record of, above what
// Bounds reports as its newest): for keeping a copy of a log numbered
// elsewhere, such as a cluster's stream. A room's numbers then need not be
// consecutive.
func (s *MemoryStore) Insert(m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	newest := s.floor
	if r := s.lookup(m.Room); r != nil {
		newest = r.seq
	}
	if m.Seq <= newest {
		return fmt.Errorf("history: message %d is not above %d, the newest in %s", m.Seq, newest, m.Room)
	}
	s.add(s.open(m.Room), m)
	return nil
}

// add appends m, r's newest, then applies the retention's MaxMessages to r
// and its MaxBytes to the store.
func (s *MemoryStore) add(r *memRoom, m Message) {
	s.stamp++
	r.seq = m.Seq
	r.msgs = append(r.msgs, memMessage{m, s.stamp})
	s.bytes += messageBytes(&m)
	if len(r.msgs) == 1 {
		heap.Fix(&s.oldest, r.index) // ordered by its message now
	}
	if keep := s.retention.MaxMessages; keep > 0 {
		for len(r.msgs) > keep {
			s.dropOldest(r)
		}
	}
	s.evict()
}

// dropOldest removes r's oldest message. A room left with none is
// forgotten but for its number.
func (s *MemoryStore) dropOldest(r *memRoom) {
	s.bytes -= messageBytes(&r.msgs[0].Message)
	r.msgs[0] = memMessage{} // let its strings go
	r.msgs = r.msgs[1:]
	if len(r.msgs) == 0 {
		r.msgs = nil
		s.stamp++
		r.forgot = s.stamp
	}
	heap.Fix(&s.oldest, r.index)
}

// evict removes the oldest messages, and the records of the rooms
// forgotten longest ago, until the store is within MaxBytes.
func (s *MemoryStore) evict() {
	limit := s.retention.MaxBytes
	for limit > 0 && s.bytes > limit && len(s.oldest) > 0 {
		r := s.oldest[0]
		if len(r.msgs) > 0 {
			s.dropOldest(r)
			continue
		}
		s.floor = max(s.floor, r.seq)
		heap.Pop(&s.oldest)
		delete(s.rooms, r.key)
		s.bytes -= roomBytes(r.key)
	}
}

// messages returns the messages of the room named name, oldest first.
func (s *MemoryStore) messages(name string) []memMessage {
	if r := s.lookup(name); r != nil {
		return r.msgs
	}
	return nil
}

// Before implements Store.
func (s *MemoryStore) Before(room string, before uint64, n int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	msgs := s.messages(room)
	end := len(msgs)
	if before != 0 {
		end = sort.Search(len(msgs), func(i int) bool { return msgs[i].Seq >= before })
	}
	start := max(0, end-max(n, 0))
	return copyOut(msgs[start:end]), nil
}

// After implements Store.
func (s *MemoryStore) After(room string, after uint64, n int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	msgs := s.messages(room)
	start := sort.Search(len(msgs), func(i int) bool { return msgs[i].Seq > after })
	end := min(len(msgs), start+max(n, 0))
	return copyOut(msgs[start:end]), nil
}

func copyOut(msgs []memMessage) []Message {
	if len(msgs) == 0 {
		return nil
	}
	out := make([]Message, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].Message
	}
	return out
}

// Bounds implements Store. For a room the store has no record of, newest
// is the highest number of the rooms whose records it no longer keeps
// (see MemoryStore), the number after which the room's numbering goes on,
// and oldest is one more: numbers up to newest may have been given out in
// the room, and none of them is kept. Both are 0 until the store has
// forgotten a room's record.
func (s *MemoryStore) Bounds(room string) (oldest, newest uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	r := s.lookup(room)
	switch {
	case r == nil && s.floor == 0:
		return 0, 0, nil
	case r == nil:
		return s.floor + 1, s.floor, nil
	case len(r.msgs) == 0:
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
		for len(r.msgs) > 0 && removed < limit && r.msgs[0].Time.Before(cutoff) {
			s.dropOldest(r)
			removed++
		}
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

// roomHeap is a container/heap of rooms, the one whose oldest message (or
// whose forgetting, if it has none) is oldest first.
type roomHeap []*memRoom

func (h roomHeap) Len() int { return len(h) }

func (h roomHeap) Less(i, j int) bool { return h[i].age() < h[j].age() }

func (h roomHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *roomHeap) Push(x any) {
	r := x.(*memRoom)
	r.index = len(*h)
	*h = append(*h, r)
}

func (h *roomHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}

// age is the stamp that orders r in a roomHeap.
func (r *memRoom) age() uint64 {
	if len(r.msgs) > 0 {
		return r.msgs[0].stamp
	}
	return r.forgot
}
