package chat

import (
	"fmt"
	"io"
	"math"
	"net"
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
		ss := newSession(s, c)
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
	q := queue{limit: 3}
	var dropped []string
	for i := range 5 {
		if d, ok := q.push(item{b: []byte{byte('a' + i)}}); ok {
			dropped = append(dropped, string(d.b))
		}
	}
	if got := q.takeTo(nil, math.MaxInt); fmt.Sprint(dropped) != "[a b]" || string(got) != "cde" {
		t.Fatalf("after 5 pushes into 3: dropped %q, queue %q; want [a b] dropped, \"cde\" kept", dropped, got)
	}
	if more := q.takeTo(nil, math.MaxInt); len(more) != 0 {
		t.Fatalf("drain after drain = %q; want nothing", more)
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
		d := delivery{ev: ev}
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
	s.commit([]accepted{*msg}, nil)
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
