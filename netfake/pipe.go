package netfake

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// pipe is one direction of a connection: a bounded FIFO of bytes with exactly
// one writing end and one reading end. All state is guarded by mu; blocked
// readers and writers wait on cond and are woken by every state change,
// including a deadline firing, so no goroutine is ever started to watch a
// deadline (the time.AfterFunc callback runs only when the timer fires).
type pipe struct {
	mu   sync.Mutex
	cond sync.Cond // cond.L == &mu

	// Bytes in flight are buf[off:]; len(buf)-off never exceeds limit.
	// buf grows on demand so an idle connection costs almost nothing.
	buf   []byte
	off   int
	limit int

	readerClosed bool // the reading end closed: writes fail with EPIPE
	writerClosed bool // the writing end closed or shut down: reads drain, then EOF
	reset        bool // the writer went away abortively: reads fail with ECONNRESET

	rd, wd deadline
}

func newPipe(limit int) *pipe {
	p := &pipe{limit: limit}
	p.cond.L = &p.mu
	return p
}

// deadline is a read or write deadline of a pipe. It is guarded by the
// pipe's mutex.
type deadline struct {
	timer   *time.Timer
	gen     uint64 // bumped on every set, so a stale timer does nothing
	expired bool
}

// setDeadline arms d to expire at t; the zero t disarms it. p.mu must be
// held.
func (p *pipe) setDeadline(d *deadline, t time.Time) {
	d.stop()
	d.expired = false
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		d.expired = true
		p.cond.Broadcast()
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(wait, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if d.gen == gen {
			d.expired = true
			p.cond.Broadcast()
		}
	})
}

// read copies queued bytes into b, blocking until some are available, the
// writer has gone, the reader has closed, or the read deadline expires.
func (p *pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch {
		case p.readerClosed:
			return 0, net.ErrClosed
		case p.rd.expired:
			return 0, os.ErrDeadlineExceeded
		case len(b) == 0:
			// A zero-length Read must not block, whatever is queued.
			return 0, nil
		case len(p.buf) > p.off:
			n := copy(b, p.buf[p.off:])
			p.off += n
			if p.off == len(p.buf) {
				p.buf, p.off = p.buf[:0], 0
			}
			p.cond.Broadcast()
			return n, nil
		case p.reset:
			return 0, &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}
		case p.writerClosed:
			return 0, io.EOF
		}
		p.cond.Wait()
	}
}

// write queues all of b, blocking while the pipe is full. It returns early,
// with the count queued so far, if the reader closes, the writer closes, or
// the write deadline expires.
func (p *pipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for {
		switch {
		case p.writerClosed:
			return n, &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}
		case p.readerClosed:
			return n, &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}
		case p.wd.expired:
			return n, os.ErrDeadlineExceeded
		case len(b) == 0:
			return n, nil
		}
		if free := p.limit - (len(p.buf) - p.off); free > 0 {
			k := min(free, len(b))
			if p.off > 0 && len(p.buf)+k > cap(p.buf) {
				// Slide the unread bytes down before growing.
				p.buf = p.buf[:copy(p.buf, p.buf[p.off:])]
				p.off = 0
			}
			p.buf = append(p.buf, b[:k]...)
			b = b[k:]
			n += k
			p.cond.Broadcast()
			continue
		}
		p.cond.Wait()
	}
}

// closeRead is called when the reading end goes away: queued bytes are
// discarded, pending and later reads fail, and the writer gets EPIPE.
func (p *pipe) closeRead() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readerClosed = true
	p.buf, p.off = nil, 0
	p.rd.stop()
	p.cond.Broadcast()
}

// closeWrite is called when the writing end goes away or shuts down its
// side: the reader drains what is queued, then sees io.EOF, or ECONNRESET if
// abort is set.
func (p *pipe) closeWrite(abort bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writerClosed = true
	p.wd.stop()
	if abort {
		p.reset = true
		p.buf, p.off = nil, 0
	}
	p.cond.Broadcast()
}

// stop releases d's timer: before the deadline is set again, and once its
// side of the pipe is closed and the deadline can no longer matter. The
// pipe's mutex must be held.
func (d *deadline) stop() {
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// setReadDeadline and setWriteDeadline lock the pipe around setDeadline.
func (p *pipe) setReadDeadline(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setDeadline(&p.rd, t)
}

func (p *pipe) setWriteDeadline(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setDeadline(&p.wd, t)
}
