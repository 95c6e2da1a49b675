package history

import (
	"fmt"
	"testing"
	"time"
)

// msgCost is what the store counts for m, as Retention.MaxBytes says.
func msgCost(m Message) int64 {
	return int64(len(m.Room) + len(m.From) + len(m.Text) + len(m.Kind) + MemoryMessageOverhead)
}

// roomCost is what the store counts for a room's record.
func roomCost(name string) int64 { return int64(len(name) + MemoryRoomOverhead) }

func msg(room, text string) Message {
	return Message{Room: room, Time: time.Now(), Kind: "message", From: "alice", Text: text}
}

// Looking at a room that has no messages makes nothing of it.
func TestMemoryReadsCreateNothing(t *testing.T) {
	s := NewMemory(Retention{MaxBytes: 1 << 20})
	for i := range 1000 {
		room := fmt.Sprint("ghost", i)
		s.Bounds(room)
		s.Before(room, 0, 10)
		s.After(room, 0, 10)
	}
	if n, b := len(s.rooms), s.Bytes(); n != 0 || b != 0 {
		t.Fatalf("after reads only: %d rooms, %d bytes; want none", n, b)
	}
}

// The store counts each message's strings and a fixed overhead, and each
// room's name and a fixed overhead.
func TestMemoryCountsBytes(t *testing.T) {
	s := NewMemory(Retention{})
	a, b := msg("lobby", "hello"), msg("Lobby", "hello again")
	if err := s.Append([]Message{a, b}); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Bytes(), msgCost(a)+msgCost(b)+roomCost("lobby"); got != want {
		t.Fatalf("Bytes = %d; want %d", got, want)
	}
}

// Past MaxBytes the oldest messages go, whatever their room, and the
// store stays within its budget.
func TestMemoryEvictsTheOldestAcrossRooms(t *testing.T) {
	one := msgCost(msg("room-0", "m0"))
	max := 3*roomCost("room-0") + 20*one // about three rooms of 20 messages
	s := NewMemory(Retention{MaxBytes: max})
	for r := range 10 {
		for range 20 {
			appendN(t, s, fmt.Sprint("room-", r), 1, time.Now())
			if b := s.Bytes(); b > max {
				t.Fatalf("Bytes = %d; want at most MaxBytes = %d", b, max)
			}
		}
	}
	for r := range 8 {
		if msgs, _ := s.After(fmt.Sprint("room-", r), 0, 100); len(msgs) != 0 {
			t.Fatalf("room-%d kept %v; want nothing, the oldest go first", r, seqs(msgs))
		}
	}
	// room-9, the newest, keeps all 20 (numbered above what the store
	// forgot, see TestMemoryNumberingSurvivesForgetting).
	msgs, _ := s.After("room-9", 0, 100)
	_, newest, _ := s.Bounds("room-9")
	if got := fmt.Sprint(seqs(msgs)); got != fmt.Sprint(seqs(seq(newest-19, newest))) {
		t.Fatalf("room-9, the newest, kept %s; want all 20, up to %d", got, newest)
	}
	if len(s.rooms) > 4 {
		t.Fatalf("%d rooms remembered; want the few that fit in MaxBytes", len(s.rooms))
	}
}

func seq(from, to uint64) []Message {
	var out []Message
	for i := from; i <= to; i++ {
		out = append(out, Message{Seq: i})
	}
	return out
}

// A room whose messages have all gone is forgotten, but its numbering
// carries on where it stopped, and never goes backwards even once the
// store has forgotten the room's last number too.
func TestMemoryNumberingSurvivesForgetting(t *testing.T) {
	one := msgCost(msg("a", "m0"))
	s := NewMemory(Retention{MaxBytes: 2*roomCost("a") + 5*one})
	appendN(t, s, "a", 3, time.Now())
	appendN(t, s, "b", 5, time.Now()) // pushes out a's three
	if oldest, newest, err := s.Bounds("a"); oldest != 4 || newest != 3 || err != nil {
		t.Fatalf("Bounds(a) = %d, %d, %v; want 4, 3, nil: nothing kept, numbered up to 3", oldest, newest, err)
	}
	m := []Message{msg("A", "back")}
	if err := s.Append(m); err != nil || m[0].Seq != 4 {
		t.Fatalf("a's next number = %d, %v; want 4", m[0].Seq, err)
	}
	// Now fill the store with many rooms, so that a's record goes too.
	for r := range 50 {
		appendN(t, s, fmt.Sprint("c", r), 5, time.Now())
	}
	if _, ok := s.rooms["a"]; ok {
		t.Fatal("a is still remembered after 50 rooms' worth of messages")
	}
	_, newest, _ := s.Bounds("a")
	m = []Message{msg("a", "back again")}
	if err := s.Append(m); err != nil || m[0].Seq <= 4 || newest < 4 || m[0].Seq != newest+1 {
		t.Fatalf("a's next number = %d, %v (Bounds said newest %d); want above 4, carrying on from newest", m[0].Seq, err, newest)
	}
	// A copy of a log numbered elsewhere can't go below it either.
	if err := s.Insert(Message{Room: "never-seen", Seq: newest}); err == nil {
		t.Fatalf("Insert of %d, what the store forgot, into a room it has no record of succeeded", newest)
	}
}

// A room left with nothing by age retention is forgotten too, and its
// messages stop counting.
func TestMemoryAgeRetentionForgetsEmptiedRooms(t *testing.T) {
	s := NewMemory(Retention{MaxAge: time.Hour})
	now := time.Now()
	appendN(t, s, "old", 3, now.Add(-2*time.Hour))
	appendN(t, s, "new", 1, now)
	before := s.Bytes()
	if n, err := s.Trim(now, 100); n != 3 || err != nil {
		t.Fatalf("Trim = %d, %v; want 3, nil", n, err)
	}
	want := before - 3*msgCost(msg("old", "m0"))
	if got := s.Bytes(); got != want {
		t.Fatalf("Bytes = %d after the trim; want %d", got, want)
	}
	if r := s.rooms["old"]; r == nil || r.msgs != nil {
		t.Fatalf("old's record = %+v; want its number only, its messages let go", r)
	}
	if oldest, newest, _ := s.Bounds("old"); oldest != 4 || newest != 3 {
		t.Fatalf("Bounds(old) = %d, %d; want 4, 3", oldest, newest)
	}
}

// A message larger than the whole budget is numbered but not kept.
func TestMemoryMessageLargerThanMaxBytes(t *testing.T) {
	s := NewMemory(Retention{MaxBytes: 100})
	m := []Message{msg("lobby", string(make([]byte, 200)))}
	if err := s.Append(m); err != nil || m[0].Seq != 1 {
		t.Fatalf("Append = %d, %v; want 1, nil", m[0].Seq, err)
	}
	if b := s.Bytes(); b > 100 {
		t.Fatalf("Bytes = %d; want at most 100", b)
	}
	m = []Message{msg("lobby", "small")}
	if err := s.Append(m); err != nil || m[0].Seq != 2 {
		t.Fatalf("next Append = %d, %v; want 2, nil", m[0].Seq, err)
	}
}
