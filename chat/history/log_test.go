package history

import (
	"bytes"
	"errors"
	"fmt"
	bolt "go.etcd.io/bbolt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openLog(t testing.TB, dir string, r Retention) *LogStore {
	t.Helper()
	s, err := OpenLog(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func texts(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprint(m.Seq, ":", m.Text)
	}
	return out
}

// A written batch is read by no one until it is committed; a commit makes
// durable every batch written before it, and later Commits of those have
// nothing to wait for.
func TestLogWrittenIsInvisibleUntilCommitted(t *testing.T) {
	s := openLog(t, t.TempDir(), Retention{})
	defer s.Close()
	t1, err := s.Write([]Message{{Room: "lobby", Kind: "message", Text: "one"}})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := s.Write([]Message{{Room: "lobby", Kind: "message", Text: "two"}, {Room: "games", Kind: "message", Text: "three"}})
	if err != nil {
		t.Fatal(err)
	}
	if t2 <= t1 {
		t.Fatalf("tickets %d then %d; want them to grow", t1, t2)
	}
	if msgs, _ := s.After("lobby", 0, 10); len(msgs) != 0 {
		t.Fatalf("read %v before any commit", texts(msgs))
	}
	if _, newest, _ := s.Bounds("lobby"); newest != 0 {
		t.Fatalf("Bounds' newest = %d before any commit; want 0", newest)
	}
	if err := s.Commit(t1); err != nil {
		t.Fatal(err)
	}
	if got := texts(must(s.After("lobby", 0, 10))); fmt.Sprint(got) != "[1:one 2:two]" {
		t.Fatalf("after committing the first: lobby %v; want both, as one sync carried both", got)
	}
	if err := s.Commit(t2); err != nil {
		t.Fatal(err)
	}
	if got := texts(must(s.Before("games", 0, 10))); fmt.Sprint(got) != "[1:three]" {
		t.Fatalf("games %v", got)
	}
}

func must(msgs []Message, err error) []Message {
	if err != nil {
		panic(err)
	}
	return msgs
}

// When a sync fails, every batch not yet durable is undone: each of their
// Commits says so, nothing of them is read, and their numbers are given
// out again.
func TestLogFailedSyncUndoesWhatWasNotDurable(t *testing.T) {
	dir := t.TempDir()
	s := openLog(t, dir, Retention{})
	defer s.Close()
	if err := s.Append([]Message{{Room: "lobby", Kind: "message", Text: "kept"}}); err != nil {
		t.Fatal(err)
	}
	t2, _ := s.Write([]Message{{Room: "lobby", Kind: "message", Text: "lost"}})
	t3, _ := s.Write([]Message{{Room: "lobby", Kind: "message", Text: "lost too"}})
	s.sync = func(*os.File) error { return errors.New("input/output error") }
	if err := s.Commit(t2); err == nil {
		t.Fatal("Commit succeeded with the sync failing")
	}
	if err := s.Commit(t3); err == nil {
		t.Fatal("Commit of the later batch succeeded")
	}
	if _, newest, _ := s.Bounds("lobby"); newest != 1 {
		t.Fatalf("newest = %d after the failure; want 1", newest)
	}
	s.sync = fdatasync
	msgs := []Message{{Room: "lobby", Kind: "message", Text: "next"}}
	if err := s.Append(msgs); err != nil {
		t.Fatal(err)
	}
	if msgs[0].Seq != 2 {
		t.Fatalf("the next message is numbered %d; want 2, the undone numbers given out again", msgs[0].Seq)
	}
	s.Close()
	s = openLog(t, dir, Retention{})
	if got := texts(must(s.After("lobby", 0, 10))); fmt.Sprint(got) != "[1:kept 2:next]" {
		t.Fatalf("reopened: %v", got)
	}
}

// If the undone records can't even be cut off, the store takes no more
// writes, as the next would follow them, and says why.
func TestLogRefusesWritesWhenItCannotCutBack(t *testing.T) {
	s := openLog(t, t.TempDir(), Retention{})
	defer s.Close()
	t1, _ := s.Write([]Message{{Room: "lobby", Kind: "message", Text: "lost"}})
	f := s.segs[0].f
	s.segs[0].f, _ = os.Open(f.Name()) // read-only: Truncate fails
	f.Close()
	s.sync = func(*os.File) error { return errors.New("input/output error") }
	if err := s.Commit(t1); err == nil {
		t.Fatal("Commit succeeded")
	}
	s.sync = fdatasync
	err := s.Append([]Message{{Room: "lobby", Kind: "message", Text: "next"}})
	if err == nil || !strings.Contains(err.Error(), "until the server restarts") {
		t.Fatalf("Append after = %v; want a refusal that says why", err)
	}
}

// A crash can stop a write anywhere in its last record: whatever the
// cut, the store opens with every record before it, cuts the torn one off,
// says so, and numbers on from the last whole one.
func TestLogCutAtEveryByteOfItsLastRecord(t *testing.T) {
	dir := t.TempDir()
	s := openLog(t, dir, Retention{})
	for i := 1; i <= 3; i++ {
		if err := s.Append([]Message{{Room: "lobby", Kind: "message", From: "alice", Text: fmt.Sprint("line ", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := segmentPath(filepath.Join(dir, LogDir), 1)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	es := s.rooms["lobby"].entries
	last, end := int(es[2].off), int(es[2].off+es[2].size) // the third record's
	whole = whole[:end]
	db, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for cut := last; cut < end; cut++ {
		// The segment's zeros past the cut, where they were, or a
		// segment cut short itself.
		for _, tail := range []int{0, 4096} {
			t.Run(fmt.Sprint("at ", cut, " with ", tail, " zeros after"), func(t *testing.T) {
				// Cut in its length's leading zeros, nothing of it is left to cut off.
				torn := len(bytes.TrimRight(whole[last:cut], "\x00")) > 0
				cutAt(t, db, append(whole[:cut:cut], make([]byte, tail)...), torn)
			})
		}
	}
}

// cutAt opens a store of the history.db db and the segment seg, cut in its
// third record, and checks that it has the first two, says it cut if torn,
// and numbers on.
func cutAt(t *testing.T, db, seg []byte, torn bool) {
	{
		{
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, LogDir), 0o700)
			os.WriteFile(filepath.Join(dir, FileName), db, 0o600)
			os.WriteFile(segmentPath(filepath.Join(dir, LogDir), 1), seg, 0o600)
			s := openLog(t, dir, Retention{})
			defer s.Close()
			if got := texts(must(s.After("lobby", 0, 10))); fmt.Sprint(got) != "[1:line 1 2:line 2]" {
				t.Fatalf("kept %v", got)
			}
			if torn && (len(s.Repairs()) != 1 || !strings.Contains(s.Repairs()[0], "cut off")) {
				t.Fatalf("Repairs = %q; want the cut said", s.Repairs())
			}
			appendNext(t, s, Message{Room: "lobby", Kind: "message", Text: "after"}, 3)
			s.Close()
			s = openLog(t, dir, Retention{})
			if got := texts(must(s.After("lobby", 0, 10))); fmt.Sprint(got) != "[1:line 1 2:line 2 3:after]" || len(s.Repairs()) != 0 {
				t.Fatalf("reopened: %v, repairs %q", got, s.Repairs())
			}
		}
	}
}

// A crash can tear the end of a segment before the last, since a rotation
// doesn't wait for a sync: what was written after it was never synced, and
// goes too.
func TestLogCutsWhatFollowsATornSegment(t *testing.T) {
	dir := t.TempDir()
	s := openLog(t, dir, Retention{})
	s.segmentBytes = 1 // a segment for each batch
	for i := 1; i <= 3; i++ {
		if err := s.Append([]Message{{Room: "lobby", Kind: "message", Text: fmt.Sprint("line ", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := segmentPath(filepath.Join(dir, LogDir), 2)
	b, _ := os.ReadFile(path)
	b = bytes.TrimRight(b, "\x00")
	os.WriteFile(path, b[:len(b)-3], 0o600) // line 2's record, torn
	s = openLog(t, dir, Retention{})
	defer s.Close()
	if got := texts(must(s.After("lobby", 0, 10))); fmt.Sprint(got) != "[1:line 1]" {
		t.Fatalf("kept %v; want line 1 alone", got)
	}
	if len(s.Repairs()) != 2 || !strings.Contains(s.Repairs()[1], segmentPath(filepath.Join(dir, LogDir), 3)) {
		t.Fatalf("Repairs = %q; want the torn record and the segment after it", s.Repairs())
	}
	appendNext(t, s, Message{Room: "lobby", Kind: "message", Text: "next"}, 2)
}

// Nor is damage followed by a whole record, even in the last segment.
func TestLogRefusesDamageFollowedByARecord(t *testing.T) {
	dir := t.TempDir()
	s := openLog(t, dir, Retention{})
	appendN(t, s, "lobby", 3, time.Now())
	s.Close()
	path := segmentPath(filepath.Join(dir, LogDir), 1)
	b, _ := os.ReadFile(path)
	b[recordHeader+2] ^= 0xff // the first record's payload
	os.WriteFile(path, b, 0o600)
	if _, err := OpenLog(dir, Retention{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenLog = %v; want ErrCorrupt", err)
	}
}

// FuzzLogOpen opens a log whose last segment is three whole records
// followed by whatever the fuzzer writes, cut wherever it says. Opening
// never fails but for damage (ErrCorrupt) and never loses a whole record
// before the cut; what it keeps, it keeps across the next opening.
func FuzzLogOpen(f *testing.F) {
	dir := f.TempDir()
	s := openLog(f, dir, Retention{})
	appendN(f, s, "lobby", 3, time.Unix(1700000000, 0))
	es := s.rooms["lobby"].entries
	whole := int(es[2].off + es[2].size)
	s.Close()
	seg, _ := os.ReadFile(segmentPath(filepath.Join(dir, LogDir), 1))
	seg = seg[:whole]
	db, _ := os.ReadFile(filepath.Join(dir, FileName))
	record, _ := appendRecord(nil, &Message{Room: "lobby", Seq: 4, Kind: "message", Text: "four"})
	f.Add([]byte{}, uint(0))
	f.Add(record, uint(len(record)))
	f.Add(record, uint(len(record)-1))
	f.Add(record[:5], uint(5))
	f.Add(append(make([]byte, 100), record...), uint(100+len(record)))
	f.Fuzz(func(t *testing.T, tail []byte, cut uint) {
		data := append(seg[:whole:whole], tail...)
		data = data[:whole+int(cut%uint(len(tail)+1))]
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, LogDir), 0o700)
		os.WriteFile(filepath.Join(dir, FileName), db, 0o600)
		os.WriteFile(segmentPath(filepath.Join(dir, LogDir), 1), data, 0o600)
		s, err := OpenLog(dir, Retention{})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenLog = %v; want it to open, or ErrCorrupt", err)
			}
			return
		}
		kept := must(s.After("lobby", 0, 100))
		if len(kept) < 3 {
			t.Fatalf("kept %v; want at least the 3 whole records", texts(kept))
		}
		for i, m := range kept {
			if m.Seq != uint64(i+1) {
				t.Fatalf("kept %v: numbers with a gap", texts(kept))
			}
		}
		s.Close()
		s = openLog(t, dir, Retention{})
		defer s.Close()
		if again := must(s.After("lobby", 0, 100)); len(again) != len(kept) || len(s.Repairs()) != 0 {
			t.Fatalf("second opening kept %d (repairs %q); the first, %d", len(again), s.Repairs(), len(kept))
		}
	})
}

// An earlier version's room whose count retention was lowered has a gap
// in its numbers, and a record it can't read: the run after the gap
// moves, the unreadable record kept in its place as what it is.
func TestLogMovesTheRunAfterAGap(t *testing.T) {
	dir := t.TempDir()
	old, err := OpenBolt(dir, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, old, "lobby", 6, time.Now())
	old.DB().Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName("lobby"))
		b.Delete(key(3))
		return b.Put(key(5), []byte("not a message"))
	})
	old.Close()
	s := openLog(t, dir, Retention{})
	got := texts(must(s.After("lobby", 0, 10)))
	if fmt.Sprint(got) != "[4:m3 5:(a message that could not be read when the history was moved) 6:m5]" {
		t.Fatalf("lobby %v", got)
	}
	if len(s.Repairs()) != 1 || !strings.Contains(s.Repairs()[0], "left out 2 older messages before a gap") {
		t.Fatalf("Repairs = %q", s.Repairs())
	}
	s.Close()
	s = openLog(t, dir, Retention{})
	defer s.Close()
	appendNext(t, s, Message{Room: "lobby", Kind: "message"}, 7)
}

// A log whose history.db has no record of it (replaced, say) is not taken
// for a migration cut short and deleted: opening refuses, and says why.
func TestLogRefusesALogItsHistoryDBDoesNotKnow(t *testing.T) {
	dir := t.TempDir()
	s := openLog(t, dir, Retention{})
	appendN(t, s, "lobby", 2, time.Now())
	s.Close()
	os.Remove(filepath.Join(dir, FileName))
	if _, err := OpenLog(dir, Retention{}); err == nil || !strings.Contains(err.Error(), "has no record of") {
		t.Fatalf("OpenLog = %v; want a refusal", err)
	}
	if names, _ := segmentNames(filepath.Join(dir, LogDir)); len(names) == 0 {
		t.Fatal("the segments were deleted")
	}
}

// A failed sync undoes the batches written since the last good one even
// across a rotation: none of them is read back after a restart, and
// their numbers are given out again.
func TestLogUndoSpansARotation(t *testing.T) {
	dir := t.TempDir()
	s := openLog(t, dir, Retention{})
	if err := s.Append([]Message{{Room: "x", Kind: "message", Text: "kept"}}); err != nil {
		t.Fatal(err)
	}
	s.segmentBytes = 1 // the next batch goes into a segment of its own
	t1, _ := s.Write([]Message{{Room: "x", Kind: "message", Text: "undone 1"}})
	t2, _ := s.Write([]Message{{Room: "x", Kind: "message", Text: "undone 2"}})
	if len(s.segs) < 3 {
		t.Fatalf("%d segments; want the writes in segments of their own", len(s.segs))
	}
	s.sync = func(*os.File) error { return errors.New("input/output error") }
	if s.Commit(t1) == nil || s.Commit(t2) == nil {
		t.Fatal("a Commit succeeded with the sync failing")
	}
	s.sync = fdatasync
	appendNext(t, s, Message{Room: "x", Kind: "message", Text: "next"}, 2)
	s.Close()
	s = openLog(t, dir, Retention{})
	defer s.Close()
	if got := texts(must(s.After("x", 0, 10))); fmt.Sprint(got) != "[1:kept 2:next]" {
		t.Fatalf("reopened: %v", got)
	}
}

// appendNext appends m to s and fails t unless it is numbered want.
func appendNext(t *testing.T, s Store, m Message, want uint64) {
	t.Helper()
	msgs := []Message{m}
	if err := s.Append(msgs); err != nil || msgs[0].Seq != want {
		t.Fatalf("appending %q: %v, #%d; want #%d", m.Text, err, msgs[0].Seq, want)
	}
}
