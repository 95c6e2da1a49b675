package link_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natter-chat/natter/netfake"
	"github.com/natter-chat/natter/netfake/link"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// transport is a way to listen and dial: an in-memory network or loopback TCP.
type transport struct {
	listen func() (net.Listener, error)
	dial   func(ctx context.Context, addr string) (net.Conn, error)
}

var transports = []struct {
	name string
	new  func() transport
}{
	{"netfake", func() transport {
		n := new(netfake.Network)
		return transport{
			listen: func() (net.Listener, error) { return n.Listen("tcp", "127.0.0.1:0") },
			dial: func(ctx context.Context, addr string) (net.Conn, error) {
				return n.DialContext(ctx, "tcp", addr)
			},
		}
	}},
	{"tcp", func() transport {
		var d net.Dialer
		return transport{
			listen: func() (net.Listener, error) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				return smallBuffers{ln}, err
			},
			dial: func(ctx context.Context, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err == nil {
					shrink(c)
				}
				return c, err
			},
		}
	}},
}

// socketBuffer is the kernel buffer size the tcp transport asks for in each
// direction. Loopback's autotuned buffers can hold many MiB, which would hide
// the link's own bound from a test of backpressure.
const socketBuffer = 64 << 10

func shrink(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(socketBuffer)
		tc.SetWriteBuffer(socketBuffer)
	}
}

// smallBuffers is a listener whose accepted conns have small socket buffers.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		shrink(c)
	}
	return c, err
}

// env is a Link in front of a server running handler on each conn.
type env struct {
	t       *testing.T
	tr      transport
	link    *link.Link
	srvLn   net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	srvConn map[net.Conn]bool
	clients []net.Conn
	ended   chan struct{} // a value each time a server conn's handler returns
}

// run runs f once per transport, with a fresh env and a goroutine leak check
// after the env is closed.
func run(t *testing.T, handler func(net.Conn), f func(t *testing.T, e *env)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			e := newEnv(t, tr.new(), handler)
			defer e.close()
			f(t, e)
		})
	}
}

func echo(c net.Conn) { io.Copy(c, c) }

func newEnv(t *testing.T, tr transport, handler func(net.Conn)) *env {
	srvLn, err := tr.listen()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tr.listen()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, tr: tr, srvLn: srvLn, srvConn: map[net.Conn]bool{}, ended: make(chan struct{}, 100)}
	e.link = link.New(ln, func(ctx context.Context) (net.Conn, error) {
		return tr.dial(ctx, srvLn.Addr().String())
	})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := srvLn.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.srvConn[c] = true
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				handler(c)
				c.Close()
				e.mu.Lock()
				delete(e.srvConn, c)
				e.mu.Unlock()
				e.ended <- struct{}{}
			}()
		}
	}()
	return e
}

func (e *env) close() {
	if err := e.link.Close(); err != nil {
		e.t.Errorf("Link.Close = %v", err)
	}
	e.srvLn.Close()
	e.mu.Lock()
	for c := range e.srvConn {
		c.Close()
	}
	e.mu.Unlock()
	for _, c := range e.clients {
		c.Close()
	}
	e.wg.Wait()
}

// dial connects a client to the link; env.close closes it.
func (e *env) dial() net.Conn {
	e.t.Helper()
	c, err := e.tr.dial(context.Background(), e.link.Addr().String())
	if err != nil {
		e.t.Fatalf("dial link: %v", err)
	}
	e.clients = append(e.clients, c)
	return c
}

// waitEnded waits for a server conn's handler to return.
func (e *env) waitEnded() {
	e.t.Helper()
	select {
	case <-e.ended:
	case <-time.After(10 * time.Second):
		e.t.Fatal("no server conn ended")
	}
}

// roundTrip writes msg on c and reads it back from the echo server.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("Write = %v", err)
	}
	expect(t, c, msg)
}

// expect reads len(want) bytes from c, within a generous deadline.
func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

// expectNothing checks that a short read on c times out.
func expectNothing(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %d, %v; want a timeout", n, err)
	}
}

// expectClosed checks that reading c ends with EOF or another error.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("conn still open: read %v", err)
	}
}

func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed + i*7 + i/251)
	}
	return b
}

// pushAndCheck writes data on c while reading it back, and checks it came
// back whole and in order.
func pushAndCheck(t *testing.T, c net.Conn, data []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	_, rerr := io.ReadFull(c, got)
	if err := <-errc; err != nil {
		t.Fatalf("Write = %v", err)
	}
	if rerr != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v; want the %d bytes written, in order", len(got), rerr, len(data))
	}
}

func TestBytesPassBothWaysInOrder(t *testing.T) {
	run(t, echo, func(t *testing.T, e *env) {
		var wg sync.WaitGroup
		for i := range 3 {
			c := e.dial()
			data := pattern(i, 300<<10+i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.Run(fmt.Sprint("conn", i), func(t *testing.T) { pushAndCheck(t, c, data) })
			}()
		}
		wg.Wait()
		if up, down := e.link.Bytes(); up != down || up != 3*(300<<10)+3 {
			t.Fatalf("Bytes = %d, %d; want %d each way", up, down, 3*(300<<10)+3)
		}
	})
}

func TestDelayAppliesEachWay(t *testing.T) {
	run(t, echo, func(t *testing.T, e *env) {
		c := e.dial()
		roundTrip(t, c, "warm up")
		e.link.SetDelay(50 * time.Millisecond)
		start := time.Now()
		roundTrip(t, c, "ping")
		if rtt := time.Since(start); rtt < 100*time.Millisecond {
			t.Fatalf("round trip took %v with a 50ms one-way delay; want at least 100ms", rtt)
		}
		e.link.SetDelay(0)
		roundTrip(t, c, "fast again")
	})
}

func TestStallHoldsBytesAndResumeDeliversThemInOrder(t *testing.T) {
	run(t, echo, func(t *testing.T, e *env) {
		c1 := e.dial()
		roundTrip(t, c1, "hi")
		e.link.Stall()
		c1.Write([]byte("one "))
		expectNothing(t, c1)
		c2 := e.dial() // accepted and dialed, but passes nothing
		c2.Write([]byte("fresh"))
		expectNothing(t, c2)
		c1.Write([]byte("two"))
		expectNothing(t, c1)
		if up, down := e.link.Bytes(); up != 2 || down != 2 {
			t.Fatalf("Bytes while stalled = %d, %d; want 2, 2", up, down)
		}
		e.link.Resume()
		expect(t, c1, "one two")
		expect(t, c2, "fresh")
		if n := e.link.Conns(); n != 2 {
			t.Fatalf("Conns = %d; want 2", n)
		}
	})
}

func TestCutClosesConnsUntilHeal(t *testing.T) {
	run(t, echo, func(t *testing.T, e *env) {
		c1, c2 := e.dial(), e.dial()
		roundTrip(t, c1, "a")
		roundTrip(t, c2, "b")
		e.link.Cut()
		if n := e.link.Conns(); n != 0 {
			t.Fatalf("Conns after Cut = %d; want 0", n)
		}
		expectClosed(t, c1)
		expectClosed(t, c2)

		// While cut, a new conn is accepted and closed at once.
		if c3, err := e.tr.dial(context.Background(), e.link.Addr().String()); err == nil {
			e.clients = append(e.clients, c3)
			expectClosed(t, c3)
		}

		e.link.Heal()
		c4 := e.dial()
		roundTrip(t, c4, "healed")
		if n := e.link.Conns(); n != 1 {
			t.Fatalf("Conns after Heal = %d; want 1", n)
		}
	})
}

func TestStalledLinkPushesBackOnWriter(t *testing.T) {
	run(t, echo, func(t *testing.T, e *env) {
		c := e.dial()
		roundTrip(t, c, "x")
		e.link.Stall()
		data := pattern(1, 4<<20)
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Write(data)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write of 4 MiB through a stalled link = %d, %v; want it to block until the deadline", n, err)
		}
		if n >= 2<<20 {
			t.Fatalf("a stalled link took %d bytes; want it bounded near 1 MiB", n)
		}
		if up, _ := e.link.Bytes(); up != 1 {
			t.Fatalf("Bytes up while stalled = %d; want 1", up)
		}

		// Nothing was dropped: after Resume the rest follows in order.
		errc := make(chan error, 1)
		go func() {
			c.SetWriteDeadline(time.Time{})
			_, err := c.Write(data[n:])
			errc <- err
		}()
		e.link.Resume()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got := make([]byte, len(data))
		_, rerr := io.ReadFull(c, got)
		if err := <-errc; err != nil {
			t.Fatalf("Write after Resume = %v", err)
		}
		if rerr != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %v; want all 4 MiB in order", rerr)
		}
	})
}

func TestConnsAndBytesCount(t *testing.T) {
	run(t, echo, func(t *testing.T, e *env) {
		if n := e.link.Conns(); n != 0 {
			t.Fatalf("Conns = %d; want 0", n)
		}
		c1, c2 := e.dial(), e.dial()
		roundTrip(t, c1, "hello")
		roundTrip(t, c2, "natter!")
		if n := e.link.Conns(); n != 2 {
			t.Fatalf("Conns = %d; want 2", n)
		}
		if up, down := e.link.Bytes(); up != 12 || down != 12 {
			t.Fatalf("Bytes = %d, %d; want 12, 12", up, down)
		}
		c1.Close()
		e.waitEnded() // the link closed c1's server side, after uncounting it
		if n := e.link.Conns(); n != 1 {
			t.Fatalf("Conns after a client closed = %d; want 1", n)
		}
	})
}

func TestServerCloseReachesClientAfterPendingBytes(t *testing.T) {
	bye := func(c net.Conn) { c.Write([]byte("bye")) }
	run(t, bye, func(t *testing.T, e *env) {
		e.link.SetDelay(50 * time.Millisecond)
		c := e.dial()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "bye" {
			t.Fatalf("ReadAll = %q, %v; want %q then EOF", got, err, "bye")
		}
		e.waitEnded()
	})
}

func TestCloseEndsEverything(t *testing.T) {
	run(t, echo, func(t *testing.T, e *env) {
		c1, c2 := e.dial(), e.dial()
		roundTrip(t, c1, "a")
		roundTrip(t, c2, "b")
		e.link.SetDelay(time.Hour)
		c1.Write([]byte("held by the delay"))
		e.link.Stall()
		c2.Write([]byte("held by the stall"))
		if err := e.link.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if err := e.link.Close(); err != nil {
			t.Fatalf("second Close = %v; want nil", err)
		}
		if n := e.link.Conns(); n != 0 {
			t.Fatalf("Conns after Close = %d; want 0", n)
		}
		expectClosed(t, c1)
		expectClosed(t, c2)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if c, err := e.tr.dial(ctx, e.link.Addr().String()); err == nil {
			c.Close()
			t.Fatalf("dial after Close succeeded; want the listener closed")
		}
	})
}
