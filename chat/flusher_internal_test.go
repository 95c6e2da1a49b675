package chat

import (
	"bytes"
	"fmt"
	"github.com/natter-chat/natter/chat/protocol"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/netfake"
)

// recordingConn records the length of every Write.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []int
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(b))
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *recordingConn) Writes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.writes...)
}

// newFlushingSession returns a session of a server with opts, whose
// connection is one end of a netfake pipe buffering bufSize bytes each
// way, and the other end, for the test to read. Nothing is read or run
// until the test queues something.
func newFlushingSession(t *testing.T, opts Options, bufSize int) (*session, *recordingConn, net.Conn) {
	t.Helper()
	var nw netfake.Network
	ln, err := nw.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := NewServer(ln, opts)
	server, client := netfake.Pipe(bufSize)
	rc := &recordingConn{Conn: server}
	ss := newSession(s, rc, s.addressOf(rc.RemoteAddr()))
	t.Cleanup(func() {
		client.Close() // a write still blocked fails
		ss.finish(nil)
		select {
		case <-ss.closed():
		case <-time.After(10 * time.Second):
			t.Error("the flusher did not close the connection")
		}
		s.wg.Wait()
	})
	return ss, rc, client
}

// queueAll queues msgs as messages and starts the flusher, as a delivery
// does, so that the flusher's first take finds them all.
func (ss *session) queueAll(msgs ...[]byte) {
	ss.mu.Lock()
	for _, m := range msgs {
		ss.pushLocked(item{b: m})
	}
	ss.unlockAndFlush()
}

// lines returns n lines of size bytes each, newline included, each
// starting with its index.
func lines(n, size int) ([][]byte, []byte) {
	var all []byte
	msgs := make([][]byte, n)
	for i := range msgs {
		head := fmt.Sprintf("%06d ", i)
		msgs[i] = append([]byte(head), append(bytes.Repeat([]byte("."), size-len(head)-1), '\n')...)
		all = append(all, msgs[i]...)
	}
	return msgs, all
}

// readAll reads want bytes from c, chunk bytes at a time, waiting pause
// after each chunk, and fails unless they are want.
func readAll(t *testing.T, c net.Conn, want []byte, chunk int, pause time.Duration) {
	t.Helper()
	got := make([]byte, 0, len(want))
	buf := make([]byte, chunk)
	for len(got) < len(want) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.ReadFull(c, buf[:min(chunk, len(want)-len(got))])
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", len(got), len(want), err)
		}
		if pause > 0 {
			<-time.After(pause)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d queued, in order", len(got), len(want))
	}
}

// TestFlusherCoalescesSmallMessages pins why the flusher takes many
// messages at once: a hundred chat lines queued together go out in one
// write.
func TestFlusherCoalescesSmallMessages(t *testing.T) {
	ss, rc, client := newFlushingSession(t, Options{}, 0)
	msgs, all := lines(100, 62)
	ss.queueAll(msgs...)
	readAll(t, client, all, len(all), 0)
	if w := rc.Writes(); len(w) != 1 {
		t.Fatalf("writes of %v bytes for 100 small messages queued at once; want one write", w)
	}
}

// TestFlusherWritesAtMostMaxWriteBytesAtOnce pins the cap on one write: a
// backlog goes out in writes of at most maxWriteBytes, each filled with
// whole messages up to the cap, and a message longer than the cap is
// written in pieces of the cap.
func TestFlusherWritesAtMostMaxWriteBytesAtOnce(t *testing.T) {
	ss, rc, client := newFlushingSession(t, Options{OutboundQueue: 1024, MaxLineBytes: 200 << 10}, 0)
	msgs, all := lines(512, 1024) // 512 KiB: 64 messages fill a write exactly
	long, _ := lines(1, maxWriteBytes+maxWriteBytes/2)
	ss.queueAll(append(msgs, long[0])...)
	readAll(t, client, append(all, long[0]...), 4096, 0)

	want := []int{}
	for range 8 {
		want = append(want, maxWriteBytes)
	}
	want = append(want, maxWriteBytes, maxWriteBytes/2)
	if got := rc.Writes(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("writes of %v bytes; want %v", got, want)
	}
}

// TestFlusherKeepsAReaderThatKeepsReading pins what a slow client is: one
// that takes nothing for WriteTimeout, not one whose backlog takes longer
// than WriteTimeout to read. This reader takes a write's worth every
// quarter of WriteTimeout, and the whole backlog takes twice WriteTimeout.
func TestFlusherKeepsAReaderThatKeepsReading(t *testing.T) {
	// Long enough that a reader on a loaded machine, with -race, still
	// takes each write's worth well within it.
	const timeout = time.Second
	ss, _, client := newFlushingSession(t, Options{WriteTimeout: timeout, OutboundQueue: 1024}, 1024)
	msgs, all := lines(512, 1024)
	ss.queueAll(msgs...)
	start := time.Now()
	readAll(t, client, all, maxWriteBytes, timeout/4)
	if took := time.Since(start); took < timeout {
		t.Fatalf("reading the backlog took %v, less than WriteTimeout (%v): the test proves nothing", took, timeout)
	}
	ss.mu.Lock()
	why := ss.closedFor
	ss.mu.Unlock()
	select {
	case <-ss.closed():
		t.Fatalf("the flusher closed the connection (for %v)", why)
	default:
	}
}

// TestFlusherCutsOffAReaderThatStops pins the other side: a reader that
// stops taking anything is cut off as slow once WriteTimeout passes.
func TestFlusherCutsOffAReaderThatStops(t *testing.T) {
	const timeout = 500 * time.Millisecond
	ss, _, client := newFlushingSession(t, Options{WriteTimeout: timeout, OutboundQueue: 1024}, 1024)
	msgs, all := lines(512, 1024)
	ss.queueAll(msgs...)
	readAll(t, client, all[:2*maxWriteBytes], 4096, 0) // two writes' worth, then nothing
	select {
	case <-ss.closed():
	case <-time.After(10 * timeout):
		t.Fatalf("still connected %v after the reader stopped; WriteTimeout is %v", 10*timeout, timeout)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closedFor != &leftSlow {
		t.Fatalf("closed for %v; want leftSlow", ss.closedFor)
	}
}

// A resumed event that says there is more, lost from a full queue, would
// stall the replay: the client asks for the next page when it gets it. Its
// loss is told as a room's, from the next message on, and counts as no
// message.
func TestALostResumedEventSaysWhereToGoOn(t *testing.T) {
	q := queue{limit: 2, maxBytes: 1 << 20}
	var lost missed
	end := &protocol.Event{Type: protocol.TypeResumed, Room: "lobby", Seq: 140, More: true}
	q.push(item{b: []byte("resumed\n"), room: "lobby", seq: fetchable(end)}, &lost)
	q.push(item{b: []byte("a\n")}, &lost)
	q.push(item{b: []byte("b\n")}, &lost) // the resumed event goes
	if lost.count != 0 || lost.rooms["lobby"] == nil {
		t.Fatalf("lost: %d messages, rooms %v; want none, and #lobby's replay", lost.count, lost.rooms)
	}
	ss := &session{}
	got := string(ss.appendMissed(nil, lost))
	if want := "*** the replay of #lobby was cut short because your connection could not keep up; /resume lobby 140 to go on\n"; got != want {
		t.Fatalf("notice %q; want %q", got, want)
	}
}
