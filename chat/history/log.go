package history

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// LogDir is the name of the directory, in a data directory, that holds a
// LogStore's segments.
const LogDir = "log"

// DefaultSegmentBytes is the size of a LogStore's segment files. A segment
// is filled with zeros when it is made, before it is needed, so that a
// sync after a write into it flushes the data alone, not the file's size
// and its blocks' allocation too (here, 0.16 ms for a small write instead
// of 0.23). Retention frees disk a whole segment at a time.
const DefaultSegmentBytes = 16 << 20

// maxKeptBuffer bounds the encoding buffer a LogStore keeps between
// writes: a batch of large messages gets one of its own, let go after.
const maxKeptBuffer = 1 << 20

// LogStore is a Store that appends messages to a log: segment files in
// dir/log written strictly in order, a batch per write, made durable by one
// fdatasync per sync. It keeps an index of every message in memory (32
// bytes each), rebuilt from the segments when it opens. Everything else,
// its id, the numbering of rooms whose messages are gone, and other stores'
// buckets (accounts, files) are in the bbolt file history.db beside it.
//
// It is a Pipeliner: while one sync is on the disk the next batch is
// written, and the next sync makes durable everything written before it
// began. A message is read (Before, After, Bounds) only once it is
// durable.
//
// A crash can leave the last segment ending in part of a record, written
// but never made durable, so never seen by anyone. Opening the store cuts
// the segment back to its last whole record (see Repairs). A damaged record
// anywhere else is not a crash's doing, and the store refuses to open
// rather than lose what follows it.
//
// Retention works on the index: trimmed messages are no longer read, and a
// segment none of whose messages are left is deleted, after the rooms'
// numbering is checkpointed in history.db so that no number is used twice.
type LogStore struct {
	dir          string // dir/log
	db           *bolt.DB
	id           string
	retention    Retention
	segmentBytes int64
	// sync makes a segment durable: fdatasync, but for tests.
	sync func(*os.File) error

	syncMu sync.Mutex // held by Commit while it syncs: one sync at a time
	// trimMu makes Trims one at a time, so that their checkpoints reach
	// history.db in order.
	trimMu sync.Mutex

	mu      sync.RWMutex // guards what follows; readers hold it for reading
	rooms   map[string]*logRoom
	segs    []*segment // oldest first; the last is written to
	buf     []byte     // Write's encoding buffer
	next    Ticket     // the last ticket given out
	done    Ticket     // every ticket up to it is durable or was undone
	undone  [2]Ticket  // the tickets the last failed sync undid, first and last
	undoErr error      // why
	pending []pendingWrite
	repairs []string
	// broken is why the store takes no more writes: a failed sync left
	// bytes it could not cut off, which the next write would follow.
	broken error
	closed bool
	// preparing says a spare segment, the next, is being made (or is
	// made) ahead of time while the last fills up; spare hands it over,
	// or nil if making it failed.
	preparing bool
	spare     chan *segment
	prepared  sync.WaitGroup
}

var (
	_ Store     = (*LogStore)(nil)
	_ Pipeliner = (*LogStore)(nil)
)

// logRoom is the index of one room's messages.
type logRoom struct {
	newest  uint64 // the newest number given out, durable or not
	durable uint64 // the newest number made durable
	// entries are the room's kept messages, numbered one after the other,
	// the written but not yet durable ones last.
	entries []logEntry
}

// logEntry is where one message's record is.
type logEntry struct {
	seq  uint64
	at   int64  // the message's time, Unix nanoseconds, for MaxAge
	seg  uint32 // segment number
	off  uint32 // offset of its record in the segment
	size uint32 // the record's length, header included
}

// segment is one file of the log.
type segment struct {
	num    uint32
	f      *os.File
	size   int64 // written
	synced int64 // made durable
	live   int   // entries in the index that point into it
}

// pendingWrite is a Write not yet durable.
type pendingWrite struct {
	ticket Ticket
	seg    *segment
	start  int64 // where in seg the write began
	end    int64 // seg's size after the write
	marks  []roomMark
}

// roomMark is the newest number a write gave out in a room.
type roomMark struct {
	r   *logRoom
	seq uint64
}

// OpenLog opens (creating if needed) the log store in dir. A data directory
// of an earlier version, which kept the messages in history.db's room
// buckets, is migrated into the log the first time (see Repairs). If
// another process has the store open, it fails after waiting a second.
func OpenLog(dir string, r Retention) (*LogStore, error) {
	db, id, err := openBoltFile(dir)
	if err != nil {
		return nil, err
	}
	s := &LogStore{
		dir:          filepath.Join(dir, LogDir),
		db:           db,
		id:           id,
		retention:    r,
		segmentBytes: DefaultSegmentBytes,
		sync:         fdatasync,
		spare:        make(chan *segment, 1),
		rooms:        make(map[string]*logRoom),
	}
	if err := s.open(time.Now()); err != nil {
		s.closeFiles()
		db.Close()
		return nil, err
	}
	return s, nil
}

// Repairs describes what opening the store did besides reading it: a
// migration from an earlier version's history.db, a torn last record cut
// off. A server logs them.
func (s *LogStore) Repairs() []string { return s.repairs }

// ID returns the id of the history s holds: random, made when its
// history.db was, and kept in it.
func (s *LogStore) ID() string { return s.id }

// DB returns the bbolt database beside the log, so that other stores
// (accounts, files) can keep their buckets in it. Their bucket names must
// have a "/" in them (see BoltStore.DB).
func (s *LogStore) DB() *bolt.DB { return s.db }

// room returns the index of the room named name, making one if needed.
// s.mu must be held for writing.
func (s *LogStore) room(name string) *logRoom {
	k := strings.ToLower(name)
	r := s.rooms[k]
	if r == nil {
		r = &logRoom{}
		s.rooms[k] = r
	}
	return r
}

// Append implements Store: Write, then Commit.
func (s *LogStore) Append(msgs []Message) error {
	t, err := s.Write(msgs)
	if err != nil {
		return err
	}
	return s.Commit(t)
}

// Write implements Pipeliner. The batch goes into one segment, in one
// write system call, and into the page cache only: Commit makes it
// durable.
func (s *LogStore) Write(msgs []Message) (Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if s.broken != nil {
		return 0, fmt.Errorf("history: append: %w", s.broken)
	}
	marks := make([]roomMark, 0, 1)
	buf := s.buf[:0]
	offs := make([]uint32, len(msgs)+1) // where each record starts in buf, and the end
	var err error
	for i := range msgs {
		m := &msgs[i]
		r := s.room(m.Room)
		k := 0
		for k < len(marks) && marks[k].r != r {
			k++
		}
		if k == len(marks) {
			marks = append(marks, roomMark{r, r.newest})
		}
		marks[k].seq++
		m.Seq = marks[k].seq
		offs[i] = uint32(len(buf))
		if buf, err = appendRecord(buf, m); err != nil {
			break
		}
	}
	if cap(buf) <= maxKeptBuffer {
		s.buf = buf[:0]
	} else {
		s.buf = nil
	}
	if err == nil {
		offs[len(msgs)] = uint32(len(buf))
		err = s.writeLocked(msgs, buf, offs, marks)
	}
	if err != nil {
		for i := range msgs {
			msgs[i].Seq = 0
		}
		return 0, fmt.Errorf("history: append: %w", err)
	}
	return s.next, nil
}

// writeLocked writes the encoded batch buf to the log and indexes it.
// s.mu must be held for writing.
func (s *LogStore) writeLocked(msgs []Message, buf []byte, offs []uint32, marks []roomMark) error {
	seg := s.segs[len(s.segs)-1]
	if seg.size > 0 && seg.size+int64(len(buf)) > s.segmentBytes {
		var err error
		if seg, err = s.rotateLocked(); err != nil {
			return err
		}
	}
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		// Whole records of it may have reached the file, which opening
		// would take for kept: they go. If they can't, the next write
		// would follow them.
		if zerr := zero(seg.f, seg.size, seg.size+int64(len(buf))); zerr != nil {
			s.broken = fmt.Errorf("the log can't be cut back after a failed write (%w), so it takes no more messages until the server restarts: %w", err, zerr)
		}
		return err
	}
	base := uint32(seg.size)
	for i := range msgs {
		r := s.room(msgs[i].Room)
		r.entries = append(r.entries, logEntry{
			seq:  msgs[i].Seq,
			at:   msgs[i].Time.UnixNano(),
			seg:  seg.num,
			off:  base + offs[i],
			size: offs[i+1] - offs[i],
		})
		r.newest = msgs[i].Seq
	}
	seg.size += int64(len(buf))
	seg.live += len(msgs)
	if seg.size > s.segmentBytes/2 {
		s.prepareLocked()
	}
	s.next++
	s.pending = append(s.pending, pendingWrite{ticket: s.next, seg: seg, start: int64(base), end: seg.size, marks: marks})
	return nil
}

// rotateLocked starts a new segment and returns it: the spare, if it is
// ready. The one before stays open for reading, and for Commit to sync what
// it has not: only Commit syncs, one sync at a time, as two on one file
// could each miss the error the other was told. So a crash can tear the end
// of a segment before the last, and opening cuts what follows (see
// replay). s.mu must be held for writing.
func (s *LogStore) rotateLocked() (*segment, error) {
	last := s.segs[len(s.segs)-1]
	var seg *segment
	if s.preparing {
		seg = <-s.spare // soon: it was started half a segment ago
		s.preparing = false
	}
	if seg == nil {
		var err error
		if seg, err = createSegment(s.dir, last.num+1, s.segmentBytes); err != nil {
			return nil, err
		}
	}
	s.segs = append(s.segs, seg)
	return seg, nil
}

// prepareLocked starts making the spare segment, unless it is being made
// or made. s.mu must be held for writing.
func (s *LogStore) prepareLocked() {
	if s.preparing {
		return
	}
	s.preparing = true
	num := s.segs[len(s.segs)-1].num + 1
	s.prepared.Add(1)
	go func() {
		defer s.prepared.Done()
		seg, err := createSegment(s.dir, num, s.segmentBytes)
		if err != nil {
			seg = nil // the rotation tries again, and fails its write if it can't
		}
		s.spare <- seg
	}()
}

// Commit implements Pipeliner. It syncs every segment with bytes not yet
// durable, without holding the lock Write needs, so the next batches are
// written meanwhile; those written before the sync began are durable when
// it returns.
func (s *LogStore) Commit(t Ticket) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	if err := s.doneLocked(t); err != errPending {
		s.mu.Unlock()
		return err
	}
	target := s.next
	type work struct {
		seg *segment
		end int64
	}
	var todo []work
	for _, seg := range s.segs {
		if seg.synced < seg.size {
			todo = append(todo, work{seg, seg.size})
		}
	}
	s.mu.Unlock()

	var err error
	for _, w := range todo {
		if err = s.sync(w.seg.f); err != nil {
			break
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.undoLocked(err)
	} else {
		for _, w := range todo {
			w.seg.synced = max(w.seg.synced, min(w.end, w.seg.size))
		}
		s.durableLocked(target)
	}
	return s.doneLocked(t)
}

var errPending = errors.New("pending")

// doneLocked returns what became of ticket t: nil if it is durable, the
// error that undid it, or errPending. s.mu must be held.
func (s *LogStore) doneLocked(t Ticket) error {
	switch {
	case s.undone[0] <= t && t <= s.undone[1]:
		return fmt.Errorf("history: append: %w", s.undoErr)
	case t <= s.done:
		return nil
	case s.closed:
		return ErrClosed
	}
	return errPending
}

// durableLocked makes every write up to target readable, and applies the
// count limit to the rooms they wrote to. s.mu must be held for writing.
func (s *LogStore) durableLocked(target Ticket) {
	n := 0
	for ; n < len(s.pending) && s.pending[n].ticket <= target; n++ {
		for _, m := range s.pending[n].marks {
			m.r.durable = max(m.r.durable, m.seq)
			if keep := s.retention.MaxMessages; keep > 0 {
				for len(m.r.entries) > 0 && m.r.entries[0].seq+uint64(keep) <= m.r.durable {
					s.dropOldestLocked(m.r)
				}
			}
		}
	}
	clear(s.pending[:n])
	s.pending = s.pending[n:]
	s.done = max(s.done, target)
}

// undoLocked undoes every write not yet durable after a sync failed with
// err: the index forgets them, their numbers are given out again, and each
// segment is cut back to what is durable. s.mu must be held for writing.
func (s *LogStore) undoLocked(err error) {
	for _, r := range s.rooms {
		if r.newest == r.durable {
			continue
		}
		keep := len(r.entries)
		for keep > 0 && r.entries[keep-1].seq > r.durable {
			keep--
		}
		for _, e := range r.entries[keep:] {
			s.segment(e.seg).live--
		}
		r.entries = r.entries[:keep]
		r.newest = r.durable
	}
	// Every byte from the first undone write on goes, synced or not: in
	// its segment from where it began, and all of any later segment.
	from := map[*segment]int64{}
	if len(s.pending) > 0 {
		first := s.pending[0]
		for _, seg := range s.segs {
			if seg.num > first.seg.num {
				from[seg] = 0
			}
		}
		from[first.seg] = first.start
	}
	for _, seg := range s.segs {
		cut, ok := from[seg]
		if !ok {
			cut = seg.synced
		}
		if seg.size > cut {
			seg.synced = min(seg.synced, cut)
			if terr := zero(seg.f, cut, seg.size); terr != nil && s.broken == nil {
				// Left there, the undone records could be read
				// back after a restart, numbered as the next ones
				// will be. Opening again replays them as if kept.
				s.broken = fmt.Errorf("the log can't be cut back after a failed sync (%w), so it takes no more messages until the server restarts: %w", err, terr)
			}
			seg.size = cut
		}
	}
	s.undone = [2]Ticket{s.done + 1, s.next}
	s.undoErr = err
	s.done = s.next
	clear(s.pending)
	s.pending = s.pending[:0]
}

// dropOldestLocked removes r's oldest entry from the index. s.mu must be
// held for writing.
func (s *LogStore) dropOldestLocked(r *logRoom) {
	s.segment(r.entries[0].seg).live--
	r.entries[0] = logEntry{}
	r.entries = r.entries[1:]
	if len(r.entries) == 0 {
		r.entries = nil // let the array go
	}
}

// segment returns the segment numbered num. s.mu must be held.
func (s *LogStore) segment(num uint32) *segment {
	first := s.segs[0].num
	return s.segs[num-first]
}

// visible returns r's durable entries. s.mu must be held.
func (r *logRoom) visible() []logEntry {
	n := len(r.entries)
	for n > 0 && r.entries[n-1].seq > r.durable {
		n--
	}
	return r.entries[:n]
}

// Before implements Store.
func (s *LogStore) Before(room string, before uint64, n int) ([]Message, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	es, err := s.visibleLocked(room, n)
	if len(es) == 0 {
		return nil, err
	}
	end := len(es)
	if before != 0 {
		end = int(min(uint64(len(es)), before-min(before, es[0].seq)))
	}
	return s.readLocked(es[max(0, end-n):end])
}

// After implements Store.
func (s *LogStore) After(room string, after uint64, n int) ([]Message, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	es, err := s.visibleLocked(room, n)
	if len(es) == 0 {
		return nil, err
	}
	start := 0
	if after >= es[0].seq {
		start = int(min(uint64(len(es)), after-es[0].seq+1))
	}
	return s.readLocked(es[start:min(len(es), start+n)])
}

// visibleLocked returns the durable entries of the room named room, none
// if n asks for none, or ErrClosed. s.mu must be held.
func (s *LogStore) visibleLocked(room string, n int) ([]logEntry, error) {
	if s.closed {
		return nil, ErrClosed
	}
	r := s.rooms[strings.ToLower(room)]
	if r == nil || n <= 0 {
		return nil, nil
	}
	return r.visible(), nil
}

// Bounds implements Store.
func (s *LogStore) Bounds(room string) (oldest, newest uint64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	r := s.rooms[strings.ToLower(room)]
	if r == nil || r.durable == 0 {
		return 0, 0, nil
	}
	if es := r.visible(); len(es) > 0 {
		return es[0].seq, r.durable, nil
	}
	return r.durable + 1, r.durable, nil
}

// readLocked reads the messages of es, one read for each run of records
// that lie one after the other in a segment. s.mu must be held.
func (s *LogStore) readLocked(es []logEntry) ([]Message, error) {
	if len(es) == 0 {
		return nil, nil
	}
	out := make([]Message, 0, len(es))
	var buf []byte
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && es[j].seg == es[i].seg && es[j].off == es[j-1].off+es[j-1].size {
			j++
		}
		size := int(es[j-1].off + es[j-1].size - es[i].off)
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		seg := s.segment(es[i].seg)
		if _, err := seg.f.ReadAt(buf, int64(es[i].off)); err != nil {
			return nil, fmt.Errorf("history: read: %w", err)
		}
		for b := buf; i < j; i++ {
			payload, n, err := readRecord(b)
			var m Message
			if err == nil {
				m, err = decode(payload)
			}
			if err != nil {
				return nil, fmt.Errorf("history: read: %s at %d: %w", seg.f.Name(), es[i].off, corruptError{err})
			}
			out = append(out, m)
			b = b[n:]
		}
	}
	return out, nil
}

// Trim implements Store. It removes from the index the messages older than
// the retention's MaxAge, oldest first and at most limit of them, then
// deletes the segments nothing in the index points into any more.
func (s *LogStore) Trim(now time.Time, limit int) (int, error) {
	s.trimMu.Lock()
	defer s.trimMu.Unlock()
	removed := 0
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	if s.retention.MaxAge > 0 {
		cutoff := now.Add(-s.retention.MaxAge).UnixNano()
		for _, r := range s.rooms {
			for removed < limit && len(r.entries) > 0 && r.entries[0].seq <= r.durable && r.entries[0].at < cutoff {
				s.dropOldestLocked(r)
				removed++
			}
		}
	}
	dead := s.deadLocked()
	var marks map[string][2]uint64
	if dead > 0 {
		marks = s.checkpointLocked()
	}
	s.mu.Unlock()
	if dead == 0 {
		return removed, nil
	}
	// The rooms' numbers are made durable before the segments holding
	// their newest messages can go: numbering carries on from them.
	if err := s.db.Update(func(tx *bolt.Tx) error { return putCheckpoint(tx, marks) }); err != nil {
		return removed, fmt.Errorf("history: trim: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return removed, nil
	}
	// Looked at again, as the unlock let writes in: a segment that is not
	// the last gets no entries back, but more may have emptied since the
	// checkpoint, which is no guarantee for them.
	for n := min(dead, s.deadLocked()); n > 0; n-- {
		seg := s.segs[0]
		s.segs[0] = nil
		s.segs = s.segs[1:]
		seg.f.Close()
		if err := os.Remove(seg.f.Name()); err != nil {
			return removed, fmt.Errorf("history: trim: %w", err)
		}
	}
	return removed, nil
}

// deadLocked counts the segments, oldest first, up to the first with any
// entry in the index, never counting the last. s.mu must be held.
func (s *LogStore) deadLocked() int {
	n := 0
	for n < len(s.segs)-1 && s.segs[n].live == 0 && s.segs[n].synced == s.segs[n].size {
		n++
	}
	return n
}

// checkpointLocked returns each room's durable numbering: its newest
// number, and its oldest kept. s.mu must be held.
func (s *LogStore) checkpointLocked() map[string][2]uint64 {
	marks := make(map[string][2]uint64, len(s.rooms))
	for k, r := range s.rooms {
		if r.durable == 0 {
			continue
		}
		oldest := r.durable + 1
		if es := r.visible(); len(es) > 0 {
			oldest = es[0].seq
		}
		marks[k] = [2]uint64{r.durable, oldest}
	}
	return marks
}

// Close implements Store. A Commit waiting on its sync, and the making of
// a spare segment, finish first.
func (s *LogStore) Close() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.prepared.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.closeFiles()
	return errors.Join(err, s.db.Close())
}

func (s *LogStore) closeFiles() error {
	var errs []error
	for _, seg := range s.segs {
		errs = append(errs, seg.f.Close())
	}
	if s.preparing {
		if seg := <-s.spare; seg != nil {
			// Left empty: opening takes it as the last segment.
			errs = append(errs, seg.f.Close())
		}
	}
	return errors.Join(errs...)
}
