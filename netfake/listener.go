package netfake

import (
	"context"
	"net"
	"sync"
)

// listener is a [net.Listener] on a [Network]. Dialed connections wait in
// queue, its backlog, until accepted. A dialer first takes one of the
// backlog's slots, so that putting its conn in queue never blocks and can
// happen under mu, atomically with the check that the listener is open.
type listener struct {
	network *Network
	addr    *net.TCPAddr
	slots   chan struct{} // one token per queued conn; cap is the backlog
	queue   chan *conn    // same capacity as slots

	mu       sync.Mutex // guards isClosed and sends on queue
	isClosed bool
	closed   chan struct{}
}

var _ net.Listener = (*listener)(nil)

// accepts reports whether a dial to raddr reaches l.
func (l *listener) accepts(raddr *net.TCPAddr) bool {
	return l.addr.IP.IsUnspecified() || l.addr.IP.Equal(raddr.IP) ||
		raddr.IP.IsUnspecified() && l.addr.IP.IsLoopback()
}

// enqueue puts the server end of a new connection in the backlog, waiting for
// room while the backlog is full.
func (l *listener) enqueue(ctx context.Context, c *conn) error {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed {
		<-l.slots
		return net.ErrClosed
	}
	l.queue <- c
	return nil
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.queue:
		<-l.slots
		return c, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
}

// Close implements net.Listener. Connections already accepted stay open;
// those still in the backlog are reset, as the kernel does. Closing twice
// returns an error wrapping net.ErrClosed.
func (l *listener) Close() error {
	l.mu.Lock()
	if l.isClosed {
		l.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	l.isClosed = true
	close(l.closed)
	l.mu.Unlock()

	l.network.removeListener(l)
	for {
		select {
		case c := <-l.queue:
			c.abort()
		default:
			return nil
		}
	}
}

// Addr implements net.Listener. It is always a *net.TCPAddr.
func (l *listener) Addr() net.Addr { return l.addr }
