package netfake

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// TestConnConformance runs the x/net conformance suite on a raw pair.
func TestConnConformance(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		c1, c2 = Pipe(0)
		stop = func() { c1.Close(); c2.Close() }
		return c1, c2, stop, nil
	})
}

// TestConnConformanceSmallBuffer runs the suite with a buffer barely larger
// than its 13-byte round trip, so most writes block part-way. (With less, the
// suite's own echo round trip deadlocks, as it would on such a socket; the
// 1-byte case is covered by TestOneByteBufferCarriesLargeWrites.)
func TestConnConformanceSmallBuffer(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		c1, c2 = Pipe(16)
		stop = func() { c1.Close(); c2.Close() }
		return c1, c2, stop, nil
	})
}

// TestConnConformanceDialed runs the same suite on a pair made by Listen,
// Dial and Accept, so the dial path is covered too.
func TestConnConformanceDialed(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		var n Network
		ln, err := n.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		c1, err = n.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			ln.Close()
			return nil, nil, nil, err
		}
		c2, err = ln.Accept()
		if err != nil {
			c1.Close()
			ln.Close()
			return nil, nil, nil, err
		}
		stop = func() { c1.Close(); c2.Close(); ln.Close() }
		return c1, c2, stop, nil
	})
}

func TestBothEndsWriteBeforeReading(t *testing.T) {
	a, b := Pipe(0)
	defer a.Close()
	defer b.Close()
	// With net.Pipe this deadlocks; with a buffer, as with TCP, it does not.
	if _, err := a.Write([]byte("hello\n")); err != nil {
		t.Fatalf("a.Write = %v; want nil", err)
	}
	if _, err := b.Write([]byte("hi\n")); err != nil {
		t.Fatalf("b.Write = %v; want nil", err)
	}
	buf := make([]byte, 16)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "hello\n" {
		t.Fatalf("b.Read = %q, %v; want %q, nil", buf[:n], err, "hello\n")
	}
	if n, err := a.Read(buf); err != nil || string(buf[:n]) != "hi\n" {
		t.Fatalf("a.Read = %q, %v; want %q, nil", buf[:n], err, "hi\n")
	}
}

func TestWriteBlocksWhenBufferFull(t *testing.T) {
	a, b := Pipe(4)
	defer a.Close()
	defer b.Close()
	a.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := a.Write([]byte("0123456789"))
	if n != 4 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a.Write = %d, %v; want 4, %v", n, err, os.ErrDeadlineExceeded)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a.Write error %v is not a timeout net.Error", err)
	}
	buf := make([]byte, 10)
	if n, err := b.Read(buf); n != 4 || err != nil {
		t.Fatalf("b.Read = %d, %v; want 4, nil", n, err)
	}
}

func TestPeerCloseGivesDataThenBareEOF(t *testing.T) {
	a, b := Pipe(0)
	defer b.Close()
	a.Write([]byte("last words"))
	a.Close()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "last words" {
		t.Fatalf("io.ReadAll = %q, %v; want %q, nil", got, err, "last words")
	}
	if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("b.Read after EOF = %d, %v; want 0, bare io.EOF", n, err)
	}
}

func TestUseAfterCloseIsErrClosed(t *testing.T) {
	a, b := Pipe(0)
	defer b.Close()
	a.Close()
	checks := map[string]error{
		"Read":        func() error { _, err := a.Read(make([]byte, 1)); return err }(),
		"Write":       func() error { _, err := a.Write([]byte("x")); return err }(),
		"SetDeadline": a.SetDeadline(time.Now()),
		"Close":       a.Close(),
	}
	for op, err := range checks {
		var oe *net.OpError
		if !errors.As(err, &oe) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close = %v; want *net.OpError wrapping net.ErrClosed", op, err)
		}
	}
}

func TestWriteToClosedPeerIsEPIPE(t *testing.T) {
	a, b := Pipe(0)
	defer a.Close()
	b.Close()
	_, err := a.Write([]byte("anyone?"))
	if !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write to closed peer = %v; want EPIPE", err)
	}
}

func TestCloseWriteHalfCloses(t *testing.T) {
	a, b := Pipe(0)
	defer a.Close()
	defer b.Close()
	a.Write([]byte("req"))
	if err := a.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite = %v", err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "req" {
		t.Fatalf("peer io.ReadAll = %q, %v; want %q, nil", got, err, "req")
	}
	b.Write([]byte("resp"))
	buf := make([]byte, 8)
	if n, err := a.Read(buf); err != nil || string(buf[:n]) != "resp" {
		t.Fatalf("a.Read after CloseWrite = %q, %v; want %q, nil", buf[:n], err, "resp")
	}
}

func TestOneByteBufferCarriesLargeWrites(t *testing.T) {
	a, b := Pipe(1)
	defer a.Close()
	defer b.Close()
	want := bytes.Repeat([]byte("natter "), 1000)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Write(want)
		a.Close()
		errc <- err
	}()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("io.ReadAll = %d bytes, %v; want %d bytes, nil", len(got), err, len(want))
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write = %v", err)
	}
}
