package chat

import (
	"fmt"
	"testing"

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
	for range n {
		c, _ := netfake.Pipe(0)
		tb.Cleanup(func() { c.Close() })
		s.sessions[newSession(s, c)] = struct{}{}
	}
	return s
}

// TestBroadcastAllocatesNothingPerRecipient pins the hot path's promise: a
// message is one shared value, and queueing it for a receiver allocates
// nothing.
func TestBroadcastAllocatesNothingPerRecipient(t *testing.T) {
	s := newIdleSessions(t, 100)
	msg := []byte("hello\n")
	// Fill every queue first: queues grow on demand up to their limit.
	for range DefaultOutboundQueue {
		s.broadcast(msg)
	}
	if allocs := testing.AllocsPerRun(100, func() { s.broadcast(msg) }); allocs != 0 {
		t.Fatalf("broadcast to 100 receivers: %v allocations; want 0", allocs)
	}
}

func TestQueueDropsOldestWhenFull(t *testing.T) {
	q := queue{limit: 3}
	var dropped int
	for i := range 5 {
		if q.push([]byte{byte('a' + i)}) {
			dropped++
		}
	}
	got := q.drain(nil)
	if dropped != 2 || len(got) != 3 || string(got[0]) != "c" || string(got[2]) != "e" {
		t.Fatalf("after 5 pushes into 3: dropped %d, queue %q; want 2 dropped, [c d e]", dropped, got)
	}
	if more := q.drain(nil); len(more) != 0 {
		t.Fatalf("drain after drain = %q; want empty", more)
	}
}

// BenchmarkBroadcast measures queueing one message for n receivers; divide
// ns/op by n for the cost per recipient.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("receivers=%d", n), func(b *testing.B) {
			s := newIdleSessions(b, n)
			msg := []byte("a chat line of a typical length, say sixty bytes or so\n")
			for range DefaultOutboundQueue {
				s.broadcast(msg)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.broadcast(msg)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/recipient")
		})
	}
}
