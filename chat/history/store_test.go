package history

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// stores runs a test against both implementations.
func stores(t *testing.T, r Retention, test func(t *testing.T, open func() Store)) {
	t.Run("bolt", func(t *testing.T) {
		dir := t.TempDir()
		test(t, func() Store {
			s, err := OpenBolt(dir, r)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("log", func(t *testing.T) {
		dir := t.TempDir()
		test(t, func() Store {
			s, err := OpenLog(dir, r)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("memory", func(t *testing.T) {
		s := NewMemory(r)
		test(t, func() Store { return s })
	})
}

func appendN(t testing.TB, s Store, room string, n int, at time.Time) {
	t.Helper()
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Room: room, Time: at, Kind: "message", From: "alice", Text: fmt.Sprint("m", i)}
	}
	if err := s.Append(msgs); err != nil {
		t.Fatal(err)
	}
}

func seqs(msgs []Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func TestNumbersArePerRoomAndGapless(t *testing.T) {
	stores(t, Retention{}, func(t *testing.T, open func() Store) {
		s := open()
		defer s.Close()
		msgs := []Message{{Room: "lobby"}, {Room: "games"}, {Room: "Lobby"}, {Room: "lobby"}}
		if err := s.Append(msgs); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(seqs(msgs)); got != "[1 1 2 3]" {
			t.Fatalf("seqs = %s; want [1 1 2 3] (rooms are case-insensitive)", got)
		}
		oldest, newest, err := s.Bounds("LOBBY")
		if err != nil || oldest != 1 || newest != 3 {
			t.Fatalf("Bounds = %d, %d, %v; want 1, 3, nil", oldest, newest, err)
		}
	})
}

func TestBeforeAndAfterPage(t *testing.T) {
	stores(t, Retention{}, func(t *testing.T, open func() Store) {
		s := open()
		defer s.Close()
		appendN(t, s, "lobby", 10, time.Now())
		tests := []struct {
			name string
			got  func() ([]Message, error)
			want string
		}{
			{"last 3", func() ([]Message, error) { return s.Before("lobby", 0, 3) }, "[8 9 10]"},
			{"3 before 5", func() ([]Message, error) { return s.Before("lobby", 5, 3) }, "[2 3 4]"},
			{"3 before 2", func() ([]Message, error) { return s.Before("lobby", 2, 3) }, "[1]"},
			{"before past the end", func() ([]Message, error) { return s.Before("lobby", 99, 2) }, "[9 10]"},
			{"after 7", func() ([]Message, error) { return s.After("lobby", 7, 10) }, "[8 9 10]"},
			{"2 after 0", func() ([]Message, error) { return s.After("lobby", 0, 2) }, "[1 2]"},
			{"unknown room", func() ([]Message, error) { return s.After("nowhere", 0, 2) }, "[]"},
		}
		for _, tt := range tests {
			msgs, err := tt.got()
			if got := fmt.Sprint(seqs(msgs)); err != nil || got != tt.want {
				t.Errorf("%s = %s, %v; want %s", tt.name, got, err, tt.want)
			}
		}
	})
}

func TestCountRetentionKeepsTheNewest(t *testing.T) {
	stores(t, Retention{MaxMessages: 3}, func(t *testing.T, open func() Store) {
		s := open()
		defer s.Close()
		appendN(t, s, "lobby", 5, time.Now())
		appendN(t, s, "lobby", 2, time.Now())
		msgs, err := s.After("lobby", 0, 100)
		if got := fmt.Sprint(seqs(msgs)); err != nil || got != "[5 6 7]" {
			t.Fatalf("kept %s, %v; want [5 6 7]", got, err)
		}
		if oldest, newest, _ := s.Bounds("lobby"); oldest != 5 || newest != 7 {
			t.Fatalf("Bounds = %d, %d; want 5, 7", oldest, newest)
		}
	})
}

func TestAgeRetentionTrimsInSteps(t *testing.T) {
	stores(t, Retention{MaxAge: time.Hour}, func(t *testing.T, open func() Store) {
		s := open()
		defer s.Close()
		now := time.Now()
		appendN(t, s, "lobby", 5, now.Add(-2*time.Hour))
		appendN(t, s, "lobby", 2, now)
		if n, err := s.Trim(now, 3); n != 3 || err != nil {
			t.Fatalf("first Trim = %d, %v; want 3, nil (limited)", n, err)
		}
		if n, err := s.Trim(now, 3); n != 2 || err != nil {
			t.Fatalf("second Trim = %d, %v; want 2, nil", n, err)
		}
		msgs, _ := s.After("lobby", 0, 100)
		if got := fmt.Sprint(seqs(msgs)); got != "[6 7]" {
			t.Fatalf("kept %s; want [6 7]", got)
		}
	})
}

func TestBoltSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "lobby", 3, time.Now())
	s.Close()
	s, err = OpenBolt(dir, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendN(t, s, "lobby", 1, time.Now())
	msgs, _ := s.After("lobby", 0, 10)
	if got := fmt.Sprint(seqs(msgs)); got != "[1 2 3 4]" || msgs[0].Text != "m0" {
		t.Fatalf("after reopen: %s (first %q); want [1 2 3 4], numbering carried on", got, msgs[0].Text)
	}
}

func TestBoltRefusesASecondOpener(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := OpenBolt(dir, Retention{}); err == nil {
		t.Fatal("second OpenBolt succeeded; want an in-use error")
	}
}

// BenchmarkAppend measures a durable append of a batch of messages on this
// machine's disk, ns/op per message: the bolt store (one transaction per
// batch), the log store (one write and one fdatasync per batch), and, as
// the physical floor, a raw write and fdatasync of the same bytes to a
// file of its own, appended or over zeros.
func BenchmarkAppend(b *testing.B) {
	line := "a chat line of a typical length, say sixty bytes or so"
	batchOf := func(n int, now time.Time) []Message {
		msgs := make([]Message, n)
		for j := range msgs {
			msgs[j] = Message{Room: "lobby", Time: now, Kind: "message", From: "alice", Text: line}
		}
		return msgs
	}
	for _, batch := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("bolt/batch=%d", batch), func(b *testing.B) {
			s, err := OpenBolt(b.TempDir(), Retention{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchAppend(b, s, batch, batchOf)
		})
		b.Run(fmt.Sprintf("log/batch=%d", batch), func(b *testing.B) {
			s, err := OpenLog(b.TempDir(), Retention{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchAppend(b, s, batch, batchOf)
		})
		// The floor, both ways: appending to a file, and writing over
		// zeros written before, as the log does.
		for _, zeroed := range []bool{false, true} {
			name := "write+fdatasync"
			if zeroed {
				name += "-over-zeros"
			}
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				var buf []byte
				for _, m := range batchOf(batch, time.Now()) {
					m.Seq = 1
					buf, _ = appendRecord(buf, &m)
				}
				if zeroed {
					if err := zero(f, 0, int64(len(buf))*int64(b.N/batch+1)); err != nil {
						b.Fatal(err)
					}
					fdatasync(f)
				}
				b.SetBytes(int64(len(buf) / batch))
				b.ResetTimer()
				var off int64
				for i := 0; i < b.N; i += batch {
					if _, err := f.WriteAt(buf, off); err != nil {
						b.Fatal(err)
					}
					off += int64(len(buf))
					if err := fdatasync(f); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func benchAppend(b *testing.B, s Store, batch int, batchOf func(int, time.Time) []Message) {
	now := time.Now()
	var bytes int64
	for _, m := range batchOf(batch, now) {
		m.Seq = 1
		rec, _ := appendRecord(nil, &m)
		bytes += int64(len(rec))
	}
	b.SetBytes(bytes / int64(batch))
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if err := s.Append(batchOf(batch, now)); err != nil {
			b.Fatal(err)
		}
	}
}

// A copy of a log numbered elsewhere keeps the numbers it is given, gaps
// and all, and pages by them.
func TestMemoryInsertKeepsGivenNumbers(t *testing.T) {
	s := NewMemory(Retention{})
	for _, seq := range []uint64{3, 7, 8} {
		if err := s.Insert(Message{Room: "lobby", Seq: seq, Text: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Insert(Message{Room: "lobby", Seq: 8}); err == nil {
		t.Fatal("Insert of a number not above the newest succeeded")
	}
	after, _ := s.After("lobby", 3, 10)
	if len(after) != 2 || after[0].Seq != 7 || after[1].Seq != 8 {
		t.Fatalf("After(3) = %v; want 7 and 8", after)
	}
	if oldest, newest, _ := s.Bounds("lobby"); oldest != 3 || newest != 8 {
		t.Fatalf("Bounds = %d, %d; want 3, 8", oldest, newest)
	}
}
