package netfake

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one end of an in-memory connection. It reads from in and writes to
// out; its peer has the same two pipes the other way round.
type conn struct {
	in, out       *pipe
	local, remote *net.TCPAddr

	// writeMu keeps one Write's bytes contiguous, as a socket does, when
	// several goroutines write at once.
	writeMu sync.Mutex
	closed  atomic.Bool

	// onClose, if set, runs once when the conn is closed (used by Network to
	// release the conn's port).
	onClose func()
}

var (
	_ net.Conn = (*conn)(nil)
	// CloseWrite matches *net.TCPConn, so code that half-closes works on both.
	_ interface{ CloseWrite() error } = (*conn)(nil)
)

// Pipe returns the two ends of a connection that is not attached to any
// Network, each direction buffering up to bufSize bytes (DefaultBufferSize if
// bufSize <= 0). Unlike net.Pipe, a write completes as soon as its bytes fit
// in the buffer, so both ends may write before either reads.
func Pipe(bufSize int) (net.Conn, net.Conn) {
	if bufSize <= 0 {
		bufSize = DefaultBufferSize
	}
	a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	b := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	c1, c2 := newConnPair(a, b, bufSize)
	return c1, c2
}

// newConnPair returns two connected ends, the first at addr a and the second
// at addr b.
func newConnPair(a, b *net.TCPAddr, bufSize int) (*conn, *conn) {
	ab, ba := newPipe(bufSize), newPipe(bufSize)
	return &conn{in: ba, out: ab, local: a, remote: b},
		&conn{in: ab, out: ba, local: b, remote: a}
}

func (c *conn) opError(op string, err error) error {
	if err == io.EOF {
		// io.EOF is returned bare, as by a real connection: callers compare
		// it with ==.
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.local, Addr: c.remote, Err: err}
}

// Read implements net.Conn.
func (c *conn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("read", net.ErrClosed)
	}
	n, err := c.in.read(b)
	if err != nil {
		err = c.opError("read", err)
	}
	return n, err
}

// Write implements net.Conn.
func (c *conn) Write(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("write", net.ErrClosed)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	n, err := c.out.write(b)
	if err != nil {
		if c.closed.Load() {
			err = net.ErrClosed
		}
		err = c.opError("write", err)
	}
	return n, err
}

// Close implements net.Conn. The peer reads what was already written, then
// io.EOF. Closing twice returns an error wrapping net.ErrClosed, as a socket
// does.
func (c *conn) Close() error {
	if c.closed.Swap(true) {
		return c.opError("close", net.ErrClosed)
	}
	c.in.closeRead()
	c.out.closeWrite(false)
	if c.onClose != nil {
		c.onClose()
	}
	return nil
}

// abort closes c as a reset would: the peer's reads fail with ECONNRESET at
// once, without seeing queued data. Used for connections a listener drops.
func (c *conn) abort() {
	if c.closed.Swap(true) {
		return
	}
	c.in.closeRead()
	c.out.closeWrite(true)
	if c.onClose != nil {
		c.onClose()
	}
}

// CloseWrite shuts down the writing side, as (*net.TCPConn).CloseWrite does:
// the peer drains what was written, then reads io.EOF, while c can still read.
func (c *conn) CloseWrite() error {
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	c.out.closeWrite(false)
	return nil
}

// LocalAddr implements net.Conn. It is always a *net.TCPAddr.
func (c *conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr implements net.Conn. It is always a *net.TCPAddr.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn.
func (c *conn) SetDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	c.in.setReadDeadline(t)
	c.out.setWriteDeadline(t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *conn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	c.in.setReadDeadline(t)
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	c.out.setWriteDeadline(t)
	return nil
}
