package link

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Link is a fault-injecting proxy between the clients that connect to its
// listener and the far side it dials for each of them. Create one with [New].
type Link struct {
	ln     net.Listener
	dial   func(ctx context.Context) (net.Conn, error)
	ctx    context.Context // bounds dials; cancelled by Close
	cancel context.CancelFunc

	delay    atomic.Int64 // a time.Duration
	up, down atomic.Int64
	wg       sync.WaitGroup // the accept loop, dials, and every line's goroutines

	mu      sync.Mutex
	run     chan struct{} // closed while not stalled
	stalled bool
	cut     bool
	closed  bool
	conns   map[*line]func() // open connections, by their up line, to their stop

	closeOnce sync.Once
	closeErr  error
}

// New starts a Link accepting on ln and, for each accepted conn, dialing the
// far side with dial. The Link owns ln: [Link.Close] closes it. A failed dial
// closes the accepted conn; dial must return once its ctx, which Close
// cancels, is done. The accept loop ends when Accept fails, which it
// does when ln is closed.
func New(ln net.Listener, dial func(ctx context.Context) (net.Conn, error)) *Link {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		ln: ln, dial: dial, ctx: ctx, cancel: cancel,
		run:   make(chan struct{}),
		conns: make(map[*line]func()),
	}
	close(l.run)
	l.wg.Add(1)
	go l.accept()
	return l
}

// Addr returns the address clients dial: that of the Link's listener.
func (l *Link) Addr() net.Addr { return l.ln.Addr() }

// SetDelay sets the one-way latency added to each direction from now on:
// bytes read from one side at t are written to the other at t+d. Bytes
// already read keep their time. Zero means no delay.
func (l *Link) SetDelay(d time.Duration) { l.delay.Store(int64(max(d, 0))) }

// Stall stops forwarding in both directions. Connections stay open, and new
// ones are accepted and dialed but pass nothing. Each direction goes on
// reading until it holds 1 MiB, then stops reading, so senders block.
func (l *Link) Stall() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stalled {
		l.stalled = true
		l.run = make(chan struct{})
	}
}

// Resume undoes [Link.Stall]: each direction writes what it held, in order,
// then forwards as before.
func (l *Link) Resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stalled {
		l.stalled = false
		close(l.run)
	}
}

// running returns a channel that is closed while the Link is not stalled.
func (l *Link) running() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.run
}

// Cut closes every current connection, both halves, at once, dropping what
// they held, and until [Link.Heal] closes each new connection as soon as it
// is accepted.
func (l *Link) Cut() {
	l.mu.Lock()
	l.cut = true
	stops := l.stopsLocked()
	l.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

// Heal undoes [Link.Cut]: new connections are forwarded again.
func (l *Link) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = false
}

// Conns returns the number of connections currently open through the Link.
// A connection stops counting before either of its halves is closed.
func (l *Link) Conns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Bytes returns the bytes forwarded so far client to server (up) and server
// to client (down). Bytes count as they are handed to the receiving side's
// Write, so whoever reads them sees them counted.
func (l *Link) Bytes() (up, down int64) { return l.up.Load(), l.down.Load() }

// Close closes the listener and every connection, and waits for every
// goroutine the Link started to end. It returns the listener's Close error.
// Later calls wait for the first and return the same.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		stops := l.stopsLocked()
		l.mu.Unlock()
		l.cancel()
		l.closeErr = l.ln.Close()
		for _, stop := range stops {
			stop()
		}
		l.wg.Wait()
	})
	return l.closeErr
}

// stopsLocked returns the stop of every open connection. l.mu must be held.
func (l *Link) stopsLocked() []func() {
	stops := make([]func(), 0, len(l.conns))
	for _, stop := range l.conns {
		stops = append(stops, stop)
	}
	return stops
}

// accept runs the accept loop.
func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		cut := l.cut
		l.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		l.wg.Add(1)
		go l.connect(c)
	}
}

// connect dials the far side for client and starts forwarding between them.
func (l *Link) connect(client net.Conn) {
	defer l.wg.Done()
	server, err := l.dial(l.ctx)
	if err != nil {
		client.Close()
		return
	}
	done := make(chan struct{})
	var once sync.Once
	var up, down *line
	stop := func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.conns, up)
			l.mu.Unlock()
			close(done)
			client.Close()
			server.Close()
		})
	}
	up = newLine(l, client, server, &l.up, done, stop)
	down = newLine(l, server, client, &l.down, done, stop)

	l.mu.Lock()
	if l.closed || l.cut {
		l.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	l.conns[up] = stop
	l.wg.Add(4)
	l.mu.Unlock()
	go up.read()
	go up.write()
	go down.read()
	go down.write()
}
