package link

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// maxQueued is the most bytes a line holds that it has read but not written.
const maxQueued = 1 << 20

// readSize is the most bytes a line reads at once.
const readSize = 32 << 10

// line is one direction of one connection through a [Link]: its reader
// goroutine (read) moves bytes from src into a queue of timestamped chunks,
// and its writer goroutine (write) writes each chunk to dst when it is due
// and the link is not stalled. The two lines of a connection share done and
// stop.
type line struct {
	link     *Link
	src, dst net.Conn
	count    *atomic.Int64 // bytes handed to dst, in the link's totals

	done <-chan struct{} // closed by stop: both lines end at once
	stop func()          // closes both conns and done; idempotent

	mu    sync.Mutex
	queue []chunk // oldest first
	size  int     // bytes in queue, at most maxQueued
	eof   bool    // the reader ended: nothing more will be queued

	more chan struct{} // cap 1: the writer may have a chunk or EOF to see
	room chan struct{} // cap 1: the reader may have room to read into
}

// chunk is bytes read from src, to be written to dst at due.
type chunk struct {
	due time.Time
	b   []byte
}

func newLine(l *Link, src, dst net.Conn, count *atomic.Int64, done <-chan struct{}, stop func()) *line {
	return &line{
		link: l, src: src, dst: dst, count: count, done: done, stop: stop,
		more: make(chan struct{}, 1),
		room: make(chan struct{}, 1),
	}
}

// signal wakes the goroutine waiting on ch, or the next one to wait.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// read runs the reader until src fails, which it does at EOF or when stop
// closes it.
func (ln *line) read() {
	defer ln.link.wg.Done()
	defer func() {
		ln.mu.Lock()
		ln.eof = true
		ln.mu.Unlock()
		signal(ln.more)
	}()
	for {
		ln.mu.Lock()
		room := maxQueued - ln.size
		ln.mu.Unlock()
		if room <= 0 {
			select {
			case <-ln.room:
				continue
			case <-ln.done:
				return
			}
		}
		buf := make([]byte, min(room, readSize))
		n, err := ln.src.Read(buf)
		if n > 0 {
			due := time.Now().Add(time.Duration(ln.link.delay.Load()))
			ln.mu.Lock()
			ln.queue = append(ln.queue, chunk{due: due, b: buf[:n]})
			ln.size += n
			ln.mu.Unlock()
			signal(ln.more)
		}
		if err != nil {
			return
		}
	}
}

// write runs the writer until the reader has ended and every chunk is
// written, or until a write fails or the connection is stopped. Either way it
// then stops the connection.
func (ln *line) write() {
	defer ln.link.wg.Done()
	defer ln.stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c, ok := ln.next()
		if !ok {
			return
		}
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ln.done:
				return
			}
		}
		select {
		case <-ln.link.running():
		case <-ln.done:
			return
		}
		// Count first, so that whoever reads these bytes sees them counted.
		ln.count.Add(int64(len(c.b)))
		n, err := ln.dst.Write(c.b)
		if err != nil {
			ln.count.Add(int64(n - len(c.b)))
			return
		}
		ln.mu.Lock()
		ln.queue[0] = chunk{}
		ln.queue = ln.queue[1:]
		ln.size -= len(c.b)
		ln.mu.Unlock()
		signal(ln.room)
	}
}

// next waits for the oldest chunk. It reports false once there is none and
// the reader has ended, or once the connection is stopped.
func (ln *line) next() (chunk, bool) {
	for {
		select {
		case <-ln.done:
			return chunk{}, false
		default:
		}
		ln.mu.Lock()
		if len(ln.queue) > 0 {
			c := ln.queue[0]
			ln.mu.Unlock()
			return c, true
		}
		eof := ln.eof
		ln.mu.Unlock()
		if eof {
			return chunk{}, false
		}
		select {
		case <-ln.more:
		case <-ln.done:
			return chunk{}, false
		}
	}
}
