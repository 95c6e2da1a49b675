package chat

// This file is a session's outbound side: its bounded queue is filled
// under the server's lock without ever blocking, and a flusher goroutine,
// started only when there is something to write, drains it in coalesced
// writes of at most maxWriteBytes.

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/natter-chat/natter/chat/protocol"
)

// maxWriteBytes bounds one write to a client: the flusher takes whole
// messages from the queue up to this many bytes (or a single longer
// message, written in pieces of this size) and gives each write at least
// three quarters of WriteTimeout (see session.write). So a client is cut
// off as slow when one write of at most this size waits that long, not
// when its whole backlog takes longer than WriteTimeout to read.
//
// 64 KiB coalesces a full queue of ordinary chat lines (256 of about 100
// bytes) into one write, so small messages still share a write; it is the
// largest of nats-server's outbound buffers (nbPoolSizeLarge), a size at
// which a write's system call costs little beside copying the bytes; and
// it is small enough that a reader taking 9 KiB a second (64 KiB in three
// quarters of the default WriteTimeout, 10s) is never cut off.
const maxWriteBytes = 64 << 10

// maxPooledWriteBuffer is the largest write buffer kept for reuse: one
// write's worth. A message longer than that grows a buffer further, and it
// is let go afterwards.
const maxPooledWriteBuffer = maxWriteBytes

// writeBuffers holds write buffers between writes. They are shared by all
// sessions rather than kept by each, so an idle client holds none.
var writeBuffers = sync.Pool{New: func() any { return new([]byte) }}

// enqueue queues msg for this client without ever blocking. Beyond the
// queue's limits (Options.OutboundQueue, Options.OutboundBytes) the oldest
// messages are dropped and accounted for. srv.mu must be held; ss.mu is
// taken under it.
func (ss *session) enqueue(msg item) {
	ss.mu.Lock()
	if ss.finished {
		ss.mu.Unlock()
		return
	}
	ss.pushLocked(msg)
	if srv := ss.srv; srv.batching {
		ss.mu.Unlock()
		if !ss.toWake {
			ss.toWake = true
			srv.toWake = append(srv.toWake, ss)
		}
		return
	}
	ss.unlockAndFlush()
}

// pushLocked queues it, accounting for the oldest messages if they had to
// be dropped. ss.mu must be held.
func (ss *session) pushLocked(it item) {
	if n := ss.out.push(it, &ss.missed); n > 0 {
		ss.srv.metrics.dropped.Add(float64(n))
	}
}

// finish queues last (if not nil) as the final message and tells the flusher
// to close the connection once everything queued has been written.
func (ss *session) finish(last []byte) {
	ss.mu.Lock()
	if !ss.finished {
		if last != nil {
			ss.pushLocked(item{b: last})
		}
		ss.finished = true
	}
	ss.unlockAndFlush()
}

// wake makes sure what is queued gets written.
func (ss *session) wake() {
	ss.mu.Lock()
	ss.unlockAndFlush()
}

// unlockAndFlush unlocks ss.mu, which must be held, and starts a flusher
// unless one is running; it is counted in the server's goroutines. (go
// ss.flush(), a method, not a closure, so that starting it allocates
// nothing.)
func (ss *session) unlockAndFlush() {
	start := !ss.flushing
	ss.flushing = true
	ss.mu.Unlock()
	if start {
		ss.srv.wg.Add(1)
		go ss.flush()
	}
}

// flush writes what is queued, as much at once as one write takes
// (maxWriteBytes), until the queue is empty, then ends; once the session
// is finished and flushed, or a write fails, it closes the connection.
// What it has not taken yet stays queued, counted against the queue's
// limits, so that a slow client loses its oldest messages rather than the
// newest.
func (ss *session) flush() {
	defer ss.srv.wg.Done()
	// Let whatever else is runnable go first: under load, more messages
	// queue meanwhile and share this write; when idle, this costs nothing.
	runtime.Gosched()
	for {
		bp := writeBuffers.Get().(*[]byte)
		ss.mu.Lock()
		b := ss.takeLocked((*bp)[:0])
		finished := ss.finished
		if len(b) == 0 && !finished {
			ss.flushing = false
			ss.out.release()
			ss.mu.Unlock()
			writeBuffers.Put(bp)
			return
		}
		ss.mu.Unlock()

		err := ss.write(b)
		if cap(b) <= maxPooledWriteBuffer {
			*bp = b
			writeBuffers.Put(bp)
		}
		if err != nil {
			ss.writeFailed(err, finished)
		} else if !finished || len(b) > 0 {
			continue // finished: close once a take comes back empty
		}
		ss.conn.Close()
		ss.mu.Lock()
		ss.closedConn = true
		if ss.done != nil {
			close(ss.done)
		}
		ss.mu.Unlock()
		return // flushing stays set: nothing more is written
	}
}

// writeFailed logs why a write failed and keeps the reason to announce.
func (ss *session) writeFailed(err error, finished bool) {
	var why *leaving
	switch {
	case finished:
		// The client is leaving anyway; a failed goodbye is normal.
		ss.srv.log.Debug("Final write to client failed: "+ss.addr(), "err", err)
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		ss.srv.log.Warn("Disconnecting slow client " + ss.addr() + ": write deadline exceeded")
		why = &leftSlow
	case errors.Is(err, net.ErrClosed):
		return // closed by the server, which said why
	default:
		ss.srv.log.Info("Write to client failed; disconnecting "+ss.addr(), "err", err)
		why = &leftWriteFailed
	}
	ss.closeFor(why)
}

// closeFor records why the server is closing the connection, for the
// reader to announce once its read fails.
func (ss *session) closeFor(why *leaving) {
	ss.mu.Lock()
	ss.closedFor = why
	ss.mu.Unlock()
}

// takeLocked appends what is to be written next to b and takes it from
// the queue: notices for what was missed, if anything was, then the oldest
// queued messages, as many as fit in one write (maxWriteBytes) and at
// least one. ss.mu must be held.
func (ss *session) takeLocked(b []byte) []byte {
	if ss.missed.count > 0 {
		b = ss.appendMissed(b, ss.missed)
		ss.missed = missed{}
	}
	return ss.out.takeTo(b, maxWriteBytes)
}

// write writes b, in writes of at most maxWriteBytes, each with a write
// deadline. The deadline is renewed before a write once less than three
// quarters of WriteTimeout is left, which spares resetting the timer for
// every write: a write that makes no progress fails after between three
// quarters of WriteTimeout and all of it, however many have gone before.
func (ss *session) write(b []byte) error {
	timeout := ss.srv.opts.WriteTimeout
	for len(b) > 0 {
		if now := time.Now(); ss.deadline.Sub(now) < timeout*3/4 {
			ss.deadline = now.Add(timeout)
			if err := ss.conn.SetWriteDeadline(ss.deadline); err != nil {
				return err
			}
		}
		n, err := ss.conn.Write(b[:min(len(b), maxWriteBytes)])
		ss.srv.metrics.writes.Inc()
		ss.srv.metrics.bytesOut.Add(float64(n))
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// appendMissed appends the notices for lost messages: one per room whose
// numbered messages were lost, naming the range to fetch again, and one
// for the rest (presence and other notices, which are not kept).
func (ss *session) appendMissed(b []byte, lost missed) []byte {
	appendEv := func(ev *protocol.Event) {
		if ss.jsonOut.Load() {
			b = ev.AppendJSON(b)
		} else {
			b = ev.AppendText(b, protocol.View{})
		}
	}
	rest := lost.count
	for room, span := range lost.rooms {
		// The span may include messages this client did receive: it names
		// what to fetch again, and the client shows nothing twice. The
		// count is of the messages lost.
		rest -= span.count
		appendEv(&protocol.Event{Type: protocol.TypeMissed, Room: room, Count: span.count, After: span.first - 1, Seq: span.last})
	}
	if rest > 0 {
		appendEv(&protocol.Event{Type: protocol.TypeMissed, Count: rest})
	}
	return b
}
