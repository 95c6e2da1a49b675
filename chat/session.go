package chat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat/line"
	"github.com/natter-chat/natter/chat/protocol"
)

// maxPooledWriteBuffer is the largest write buffer kept for reuse; a burst
// may grow one further, but it is let go afterwards.
const maxPooledWriteBuffer = 64 << 10

// writeBuffers holds write buffers between writes. They are shared by all
// sessions rather than kept by each, so an idle client holds none.
var writeBuffers = sync.Pool{New: func() any { return new([]byte) }}

// session is the server side of one client connection. Its reader goroutine
// reads and broadcasts the client's lines. Its flusher goroutine, which
// runs only while there is something to write, owns every write to the
// connection and closing it; an idle client has a reader and no flusher.
type session struct {
	srv  *Server
	conn net.Conn
	addr string
	ip   string

	// Chat state, guarded by srv.mu.
	nick    string
	rooms   []*room // in the order joined
	current *room   // where plain lines go; nil if in no room
	account string  // the account logged in to, folded; "" if none

	loginTimer *time.Timer // with RequireAuth, until the client logs in

	pinged bool // a ping has been sent since the client last spoke
	toWake bool // in srv.toWake

	// lastHeard is when the client last sent a line, in Unix nanoseconds.
	lastHeard atomic.Int64

	// jsonOut is whether the client takes events as JSON. It changes under
	// srv.mu but is atomic, so that the reader (parsing) and the flusher
	// (its own notices) can read it without srv.mu.
	jsonOut atomic.Bool

	mu       sync.Mutex
	out      queue
	missed   missed // what was dropped from out since the last write
	finished bool   // no more messages will be queued; close once flushed
	// flushing is set while a flusher runs, and for good once one has
	// closed the connection, so that at most one ever writes.
	flushing bool
	// closeReason says why the server closed the connection, for the quit
	// announcement.
	closeReason string

	// inflight counts this client's messages still in the commit loop.
	inflight sync.WaitGroup

	// Flood control, used by the reader only. limiter is nil when the
	// rate is unlimited.
	limiter  *rate.Limiter
	refusals int // lines refused in a row

	done chan struct{} // closed when the flusher has closed the connection

	// deadline is the connection's write deadline, owned by the flusher.
	deadline time.Time
}

// missed accounts for the messages a slow client lost.
type missed struct {
	count int
	// rooms holds, per room name, the first and last number of the
	// numbered messages lost, live or replayed, which the client can fetch
	// again with /resume. Only allocated once something is lost.
	rooms map[string]*[2]uint64
}

func (m *missed) add(it item) {
	m.count++
	if it.seq == 0 {
		return
	}
	if m.rooms == nil {
		m.rooms = make(map[string]*[2]uint64)
	}
	if r := m.rooms[it.room]; r != nil {
		r[0], r[1] = min(r[0], it.seq), max(r[1], it.seq)
	} else {
		m.rooms[it.room] = &[2]uint64{it.seq, it.seq}
	}
}

func newSession(srv *Server, conn net.Conn) *session {
	ss := &session{
		srv:  srv,
		conn: conn,
		addr: conn.RemoteAddr().String(),
		ip:   hostOf(conn.RemoteAddr()),
		out:  queue{limit: srv.opts.OutboundQueue},
		done: make(chan struct{}),
	}
	if srv.opts.MessageRate != rate.Inf {
		ss.limiter = rate.NewLimiter(srv.opts.MessageRate, srv.opts.MessageBurst)
	}
	ss.lastHeard.Store(time.Now().UnixNano())
	return ss
}

// enqueue queues msg for this client without ever blocking. If the queue is
// full the oldest message is dropped and accounted for. srv.mu must be
// held.
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

// pushLocked queues it, accounting for the oldest message if it had to be
// dropped. ss.mu must be held.
func (ss *session) pushLocked(it item) {
	if dropped, ok := ss.out.push(it); ok {
		ss.missed.add(dropped)
		ss.srv.metrics.dropped.Inc()
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

// readLoop reads and carries out the client's lines until the connection
// ends, the client quits, or the server gives up on it, then takes the
// client out of the chat and lets the flusher finish.
func (ss *session) readLoop() {
	srv := ss.srv
	in := &lineDeadline{conn: ss.conn, timeout: srv.opts.LineTimeout}
	lr := line.NewReader(in, srv.opts.MaxLineBytes)
	in.lr = lr
	for {
		text, err := lr.Next()
		ss.lastHeard.Store(time.Now().UnixNano())
		if err == nil && len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		if err == nil || line.IsRejected(err) {
			switch ss.admit() {
			case refused:
				continue
			case kicked:
				ss.leave("flooding")
				return
			}
		}
		switch {
		case err == nil:
			if ss.carryOut(string(text)) {
				return
			}
		case line.IsRejected(err):
			ss.reject(err)
		default:
			ss.leave(ss.lost(err))
			return
		}
	}
}

// carryOut handles one line, and reports whether the client has quit.
func (ss *session) carryOut(text string) (quit bool) {
	srv := ss.srv
	cmd, err := parse(ss, text)
	if err == nil && (cmd.Name == protocol.CmdRegister || cmd.Name == protocol.CmdLogin) {
		ss.authenticate(cmd)
		return false
	}
	srv.mu.Lock()
	quit, msg := srv.handle(ss, cmd, err)
	srv.mu.Unlock()
	if msg != nil {
		// Blocks only while the commit loop is a full batch behind:
		// back-pressure on this client alone.
		ss.inflight.Add(1)
		srv.commits <- *msg
	}
	if quit {
		srv.log.Info("Client quit: " + ss.addr)
		ss.inflight.Wait()
		ss.finish(nil)
	}
	return quit
}

// reject tells the client why the line it sent was discarded.
func (ss *session) reject(err error) {
	srv := ss.srv
	code, _ := rejectCode(err)
	srv.log.Warn("Rejected line from client "+ss.addr, "err", err)
	srv.metrics.rejected.WithLabelValues(code).Inc()
	msg := err.Error()
	if errors.Is(err, line.ErrTooLong) {
		msg = fmt.Sprintf("line longer than %d bytes", srv.opts.MaxLineBytes)
	}
	srv.mu.Lock()
	srv.fail(ss, code, "%s; it was discarded", msg)
	srv.mu.Unlock()
}

// lost logs why reading from the client ended, tells the client if it can
// still hear it, and returns the reason to announce.
func (ss *session) lost(err error) string {
	srv := ss.srv
	switch {
	case err == io.EOF:
		return "connection closed"
	case errors.Is(err, net.ErrClosed):
		// The server closed the connection and logged why.
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return ss.closeReason
	case errors.Is(err, os.ErrDeadlineExceeded):
		srv.log.Warn(fmt.Sprintf("Disconnecting client %s: line not finished within %v", ss.addr, srv.opts.LineTimeout))
		srv.mu.Lock()
		srv.fail(ss, codeLineTimeout, "line not finished within %v; disconnecting", srv.opts.LineTimeout)
		srv.mu.Unlock()
		return "line timeout"
	default:
		srv.log.Info("Reading from client failed: "+ss.addr, "err", err)
		return "connection closed"
	}
}

// leave takes the client out of the chat once its last messages are
// delivered (to it too), announcing reason, and lets the flusher finish.
func (ss *session) leave(reason string) {
	srv := ss.srv
	ss.inflight.Wait()
	kind, ok := leaveKind[reason]
	if !ok {
		kind = "other"
	}
	srv.mu.Lock()
	srv.depart(ss, reason, kind)
	srv.mu.Unlock()
	ss.finish(nil)
}

// admission is what flood control decides about a line.
type admission int

const (
	admitted admission = iota
	refused
	kicked
)

// admit applies flood control to the line just read: within the client's
// rate it passes at once; a little over, the client is made to wait (its
// connection is not read meanwhile, as IRC servers' "fakelag" does); far
// over, the line is refused with the time to wait; and after
// FloodRefusals refusals in a row the client is disconnected. Only this
// client's reader waits, so a flood never slows anyone else.
func (ss *session) admit() admission {
	if ss.limiter == nil {
		return admitted
	}
	srv := ss.srv
	r := ss.limiter.Reserve()
	d := r.Delay()
	if d <= srv.opts.FloodDelay {
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-srv.stopping:
				t.Stop()
			}
		}
		ss.refusals = 0
		return admitted
	}
	r.Cancel()
	ss.refusals++
	srv.metrics.rejected.WithLabelValues(codeRateLimited).Inc()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if ss.refusals >= srv.opts.FloodRefusals {
		srv.log.Warn("Disconnecting flooding client " + ss.addr)
		srv.fail(ss, codeFlooding, "disconnected for sending too fast")
		return kicked
	}
	srv.fail(ss, codeRateLimited, "you are sending too fast; line refused, send again in %v", d.Round(100*time.Millisecond))
	return refused
}

// lineDeadline is the reader under a session's line reader. When the line
// reader asks for more bytes in the middle of a line, the wait is bounded
// by the line's deadline, so a line must be complete within LineTimeout of
// its first byte (a slowloris client trickling bytes is cut off), while a
// client may stay idle between lines as long as it likes.
type lineDeadline struct {
	conn    net.Conn
	lr      *line.Reader
	timeout time.Duration
	started time.Time // when the line in progress began; zero between lines
}

func (d *lineDeadline) Read(p []byte) (int, error) {
	switch {
	case d.lr.Pending():
		if d.started.IsZero() {
			d.started = time.Now()
			d.conn.SetReadDeadline(d.started.Add(d.timeout))
		}
	case !d.started.IsZero():
		d.started = time.Time{}
		d.conn.SetReadDeadline(time.Time{})
	}
	return d.conn.Read(p)
}

// rejectCode returns the error code for a line the line reader rejected.
func rejectCode(err error) (string, bool) {
	switch {
	case errors.Is(err, line.ErrTooLong):
		return codeLineTooLong, true
	case errors.Is(err, line.ErrInvalidUTF8):
		return codeInvalidUTF8, true
	case errors.Is(err, line.ErrNUL):
		return codeNULByte, true
	case errors.Is(err, line.ErrControl):
		return codeControl, true
	}
	return "", false
}

// setFormat switches the format of ss's events. srv.mu must be held.
func (ss *session) setFormat(name string) {
	f, _ := protocol.ParseFormat(name)
	ss.jsonOut.Store(f == protocol.JSON)
}

// flush writes what is queued, everything queued at once in one Write,
// until the queue is empty, then ends; once the session is finished and
// flushed, or a write fails, it closes the connection.
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
		close(ss.done)
		return // flushing stays set: nothing more is written
	}
}

// writeFailed logs why a write failed and keeps the reason to announce.
func (ss *session) writeFailed(err error, finished bool) {
	reason := ""
	switch {
	case finished:
		// The client is leaving anyway; a failed goodbye is normal.
		ss.srv.log.Debug("Final write to client failed: "+ss.addr, "err", err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		ss.srv.log.Warn("Disconnecting slow client " + ss.addr + ": write deadline exceeded")
		reason = "too slow to receive messages"
	case !errors.Is(err, net.ErrClosed):
		ss.srv.log.Info("Write to client failed; disconnecting "+ss.addr, "err", err)
		reason = "write failed"
	}
	if reason != "" {
		ss.mu.Lock()
		ss.closeReason = reason
		ss.mu.Unlock()
	}
}

// takeLocked appends what is to be written to b and empties the queue:
// notices for what was missed, if anything was, then every queued
// message. ss.mu must be held.
func (ss *session) takeLocked(b []byte) []byte {
	if ss.missed.count > 0 {
		b = ss.appendMissed(b, ss.missed)
		ss.missed = missed{}
	}
	return ss.out.drainTo(b)
}

// write writes b with a write deadline. The deadline is renewed only once
// less than three quarters of WriteTimeout is left, which spares a system
// call per write: a write that makes no progress fails after between
// three quarters of WriteTimeout and all of it.
func (ss *session) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	timeout := ss.srv.opts.WriteTimeout
	if now := time.Now(); ss.deadline.Sub(now) < timeout*3/4 {
		ss.deadline = now.Add(timeout)
		if err := ss.conn.SetWriteDeadline(ss.deadline); err != nil {
			return err
		}
	}
	n, err := ss.conn.Write(b)
	ss.srv.metrics.writes.Inc()
	ss.srv.metrics.bytesOut.Add(float64(n))
	return err
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
		// what to fetch again, and the client shows nothing twice.
		n := min(rest, int(span[1]-span[0]+1))
		rest -= n
		appendEv(&protocol.Event{Type: protocol.TypeMissed, Room: room, Count: n, After: span[0] - 1, Seq: span[1]})
	}
	if rest > 0 {
		appendEv(&protocol.Event{Type: protocol.TypeMissed, Count: rest})
	}
	return b
}
