package chat

import (
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"

	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
	"github.com/natter-chat/natter/netfake"
)

// newIdleSessions registers n sessions on a server without starting their
// goroutines, so a test can look at broadcasting alone.
func newIdleSessions(tb testing.TB, n int) *Server {
	tb.Helper()
	var nw netfake.Network
	ln, err := nw.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	s := NewServer(ln, Options{})
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		c, _ := netfake.Pipe(0)
		tb.Cleanup(func() { c.Close() })
		ss := newSession(s, c, s.addressOf(c.RemoteAddr()))
		ss.flushing = true // as if a flusher ran: none is started
		s.sessions[ss] = struct{}{}
		s.arrive(ss)
	}
	return s
}

// broadcast delivers a chat line from the first guest to the lobby, as a
// client's line is.
func (s *Server) broadcast(ev *protocol.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliverRoom(s.lobby, ev)
}

// TestBroadcastAllocatesNothingPerRecipient pins the hot path's promise: an
// event is encoded once per format, the receivers share the bytes, and
// queueing them for a receiver allocates nothing.
func TestBroadcastAllocatesNothingPerRecipient(t *testing.T) {
	ev := &protocol.Event{Type: protocol.TypeMessage, Room: DefaultRoom, From: "alice", Text: "hello"}
	allocs := func(n int) float64 {
		s := newIdleSessions(t, n)
		// Fill every queue first: queues grow on demand up to their limit.
		for range DefaultOutboundQueue {
			s.broadcast(ev)
		}
		return testing.AllocsPerRun(100, func() { s.broadcast(ev) })
	}
	few, many := allocs(10), allocs(1000)
	if few != many || few > 2 {
		t.Fatalf("allocations per broadcast: %v to 10 receivers, %v to 1000; want the same small number", few, many)
	}
}

func TestQueueDropsOldestWhenFull(t *testing.T) {
	q := queue{limit: 3, maxBytes: math.MaxInt}
	var lost missed
	for i := range 5 {
		q.push(item{b: []byte{byte('a' + i)}, room: "r", seq: uint64(i + 1)}, &lost)
	}
	if got := q.takeTo(nil, math.MaxInt); lost.count != 2 || string(got) != "cde" {
		t.Fatalf("after 5 pushes into 3: %d lost, queue %q; want 2 lost, \"cde\" kept", lost.count, got)
	}
	if r := lost.rooms["r"]; r == nil || *r != (lostSpan{count: 2, first: 1, last: 2}) {
		t.Fatalf("lost numbered %+v; want 2, numbered 1 to 2", r)
	}
	if more := q.takeTo(nil, math.MaxInt); len(more) != 0 {
		t.Fatalf("drain after drain = %q; want nothing", more)
	}
}

// TestQueueDropsOldestBeyondItsBytes pins the byte budget: a queue holds
// at most maxBytes, dropping its oldest messages as the count limit does
// and accounting for each, except that it always keeps the newest message
// however long.
func TestQueueDropsOldestBeyondItsBytes(t *testing.T) {
	q := queue{limit: 100, maxBytes: 10}
	var lost missed
	push := func(b string, seq uint64) int { return q.push(item{b: []byte(b), room: "r", seq: seq}, &lost) }
	for i, c := range []struct {
		push    string
		dropped int
		kept    string
	}{
		{"aaaa", 0, "aaaa"},
		{"bbbb", 0, "aaaabbbb"},
		{"cccc", 1, "bbbbcccc"}, // 12 bytes: the oldest goes
		{"dd", 0, "bbbbccccdd"}, // exactly 10
		{"eeeeeeeeeeee", 3, "eeeeeeeeeeee"},
		{"f", 1, "f"},
	} {
		if got := push(c.push, uint64(i+1)); got != c.dropped {
			t.Errorf("push %q dropped %d; want %d", c.push, got, c.dropped)
		}
		if got := queuedBytes(&q); got != c.kept {
			t.Errorf("after push %q, queued bytes are %q; want %q", c.push, got, c.kept)
		}
		if q.bytes != len(c.kept) {
			t.Errorf("after push %q, q.bytes = %d; want %d", c.push, q.bytes, len(c.kept))
		}
	}
	if r := lost.rooms["r"]; lost.count != 5 || r == nil || *r != (lostSpan{count: 5, first: 1, last: 5}) {
		t.Fatalf("lost %d, numbered %v; want 5, numbered 1 to 5", lost.count, r)
	}
	q.takeTo(nil, math.MaxInt)
	if q.bytes != 0 || q.n != 0 {
		t.Fatalf("after taking everything: %d messages, %d bytes; want none", q.n, q.bytes)
	}
}

// TestSessionQueueHoldsOutboundBytes pins Options.OutboundBytes on a
// session: its queue holds no more, and the notice it is sent first names
// exactly the messages dropped.
func TestSessionQueueHoldsOutboundBytes(t *testing.T) {
	var nw netfake.Network
	ln, err := nw.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := NewServer(ln, Options{OutboundBytes: 64 << 10, MaxLineBytes: 1000})
	c, _ := netfake.Pipe(0)
	defer c.Close()
	ss := newSession(s, c, s.addressOf(c.RemoteAddr()))
	line := make([]byte, 1000)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for seq := range uint64(100) {
		ss.pushLocked(item{b: line, room: "lobby", seq: seq + 1})
	}
	// 65 of 1000 bytes fit in 64 KiB: the 35 oldest go.
	if ss.out.n != 65 || ss.out.bytes != 65000 {
		t.Fatalf("queued %d messages, %d bytes; want the newest 65, 65000 bytes", ss.out.n, ss.out.bytes)
	}
	want := "*** you missed 35 messages of #lobby because your connection could not keep up; /resume lobby 0 to catch up\n"
	if got := string(ss.takeLocked(nil)); !strings.HasPrefix(got, want) {
		t.Fatalf("first written: %.120q; want %q", got, want)
	}
}

// TestMissedCountsExactlyAcrossGaps pins the missed notices when a client
// lost numbered messages with gaps between them (parts of two replay
// pages) and other events, a page's closing event among them, which has
// a number but is not a message: the room's notice counts only the
// room's lost messages, and the rest get a notice of their own.
func TestMissedCountsExactlyAcrossGaps(t *testing.T) {
	s := newIdleSessions(t, 1)
	var ss *session
	for x := range s.sessions {
		ss = x
	}
	msg := func(seq uint64) *protocol.Event {
		return &protocol.Event{Type: protocol.TypeMessage, History: true, Room: DefaultRoom, Seq: seq, From: "alice", Text: "hi"}
	}
	var lost missed
	s.mu.Lock()
	for _, ev := range []*protocol.Event{
		msg(101), msg(102), msg(103),
		{Type: protocol.TypeResumed, Room: DefaultRoom, After: 100, Count: 3, Seq: 103},
		msg(121), msg(122),
		{Type: protocol.TypeNotice, Text: "a notice"},
	} {
		d := newDelivery(ev)
		lost.add(d.itemFor(ss))
	}
	s.mu.Unlock()
	got := string(ss.appendMissed(nil, lost))
	want := "*** you missed 5 messages of #lobby because your connection could not keep up; /resume lobby 100 to catch up\n" +
		"*** you missed 2 messages because your connection could not keep up\n"
	if got != want {
		t.Fatalf("notices:\n%s\nwant:\n%s", got, want)
	}
}

// queuedBytes returns the bytes of the messages in q, oldest first.
func queuedBytes(q *queue) string {
	var b []byte
	for _, it := range q.appendTo(nil) {
		b = append(b, it.b...)
	}
	return string(b)
}

// TestQueueTakesWholeMessagesUpToTheCap pins takeTo: whole messages, as
// many as fit under the cap, and one at least however long.
func TestQueueTakesWholeMessagesUpToTheCap(t *testing.T) {
	q := queue{limit: 100, maxBytes: math.MaxInt}
	var lost missed
	for _, m := range []string{"aaa", "bbb", "cccccccc", "d"} {
		q.push(item{b: []byte(m)}, &lost)
	}
	for _, want := range []string{"aaabbb", "cccccccc", "d", ""} {
		if got := string(q.takeTo(nil, 7)); got != want {
			t.Fatalf("took %q; want %q", got, want)
		}
	}
	if q.bytes != 0 {
		t.Fatalf("q.bytes = %d once empty", q.bytes)
	}
}

// TestCommitDeliversToTheRoomAsItIsThen pins where a message goes when its
// room is emptied and made anew between the message's acceptance and its
// commit: to the new room's members, under the name they know it by, once.
// (A client's own lines can no longer empty a room ahead of its messages;
// this is the mechanism underneath, kept for whatever else might.)
func TestCommitDeliversToTheRoomAsItIsThen(t *testing.T) {
	s := newIdleSessions(t, 2)
	var a, b *session
	s.mu.Lock()
	for ss := range s.sessions {
		if a == nil {
			a = ss
		} else {
			b = ss
		}
	}
	s.joinLocked(a, "x", s.readLatest("x", 0, true))
	msg, _ := s.accept(a, protocol.Command{Name: protocol.CmdSay, Text: "m"})
	s.part(a, "x", "")
	s.joinLocked(b, "X", s.readLatest("X", 0, true))
	s.mu.Unlock()
	if msg == nil || s.rooms[protocol.Fold("x")] == nil {
		t.Fatal("setting up: no message accepted, or no room X")
	}

	queued := func(ss *session) string {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return string(ss.out.takeTo(nil, math.MaxInt))
	}
	queued(b) // b's join
	a.inflight.Add(1)
	w := &written{batch: []accepted{*msg}}
	store := history.Pipeline(s.opts.History)
	s.write(store, w)
	s.settle(w.batch, w.msgs, store.Commit(w.ticket))
	a.inflight.Wait() // the commit let a's next command go
	if got, want := queued(b), a.nick+": m\n"; got != want {
		t.Fatalf("b, in the new #X, was sent %q; want %q, live, once", got, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[protocol.Fold("x")]; r.delivered != 1 {
		t.Fatalf("the new room has delivered up to %d; want 1", r.delivered)
	}
}

// BenchmarkBroadcast measures encoding one chat event and queueing it for n
// text-format receivers; ns/recipient is the cost per receiver.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("receivers=%d", n), func(b *testing.B) {
			s := newIdleSessions(b, n)
			ev := &protocol.Event{Type: protocol.TypeMessage, Room: DefaultRoom, From: "alice",
				Text: "a chat line of a typical length, say sixty bytes or so"}
			for range DefaultOutboundQueue {
				s.broadcast(ev)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.broadcast(ev)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/recipient")
		})
	}
}

// loopbackConn returns the writing end of a loopback TCP connection whose
// other end is read and discarded until the benchmark ends.
func loopbackConn(b *testing.B) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		<-done
	})
	return c
}

// BenchmarkCoalescedWrite measures taking k queued messages and writing
// them to a loopback TCP connection as one write; ns/message falls as k
// grows, which is why a flusher takes everything queued at once.
func BenchmarkCoalescedWrite(b *testing.B) {
	line := []byte("alice: a chat line of a typical length, say sixty bytes or so\n")
	for _, k := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("messages=%d", k), func(b *testing.B) {
			s := newIdleSessions(b, 1)
			var ss *session
			for x := range s.sessions {
				ss = x
			}
			ss.conn = loopbackConn(b)
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				ss.mu.Lock()
				for range k {
					ss.pushLocked(item{b: line})
				}
				buf = ss.takeLocked(buf[:0])
				ss.mu.Unlock()
				if err := ss.write(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(k), "ns/message")
		})
	}
}

// TestLatestReadWithoutTheLockIsUsedOnlyWhileFresh pins when a join may
// use what it read of a room's history before it took the lock.
func TestLatestReadWithoutTheLockIsUsedOnlyWhileFresh(t *testing.T) {
	s := newIdleSessions(t, 0)
	msgs := func(seqs ...uint64) []history.Message {
		var ms []history.Message
		for _, q := range seqs {
			ms = append(ms, history.Message{Room: "x", Seq: q})
		}
		return ms
	}
	open := &room{name: "x"}
	for _, c := range []struct {
		name      string
		l         latest
		r         *room
		delivered uint64
		skip      bool // a message for a room with no members was skipped after the read
		want      bool
	}{
		{"a new room, nothing skipped since", latest{newest: 7}, nil, 0, false, true},
		{"a new room, a message skipped since", latest{newest: 7}, nil, 0, true, false},
		{"delivered up to what was read", latest{newest: 7, n: 3, msgs: msgs(5, 6, 7)}, open, 7, false, true},
		{"delivered since", latest{newest: 7, n: 3, msgs: msgs(5, 6, 7)}, open, 8, false, false},
		{"stored, not yet delivered, and the delivered one was read", latest{newest: 7, n: 3, msgs: msgs(5, 6, 7)}, open, 6, false, true},
		{"stored, not yet delivered, beyond what was read", latest{newest: 9, n: 3, msgs: msgs(7, 8, 9)}, open, 5, false, false},
		{"all there is was read", latest{newest: 9, n: 5, msgs: msgs(8, 9)}, open, 5, false, true},
		{"read with the lock held", latest{newest: 9, n: 3, msgs: msgs(7, 8, 9), locked: true}, open, 5, false, true},
	} {
		l := c.l
		l.skipped = s.skipped.Load()
		if c.skip {
			s.skipped.Add(1)
		}
		if c.r != nil {
			c.r.delivered = c.delivered
		}
		if got := l.freshFor(s, c.r); got != c.want {
			t.Errorf("%s: fresh = %v; want %v", c.name, got, c.want)
		}
	}
}
