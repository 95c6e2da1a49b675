package chat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natter-chat/natter/chat/line"
	"github.com/natter-chat/natter/chat/protocol"
)

// maxRetainedWriteBuffer is the largest write buffer a session keeps between
// writes; a burst may grow it further, but it is let go afterwards.
const maxRetainedWriteBuffer = 64 << 10

// session is the server side of one client connection. Its reader goroutine
// reads and broadcasts the client's lines; its writer goroutine owns every
// write to the connection and closing it.
type session struct {
	srv  *Server
	conn net.Conn
	addr string

	// Chat state, guarded by srv.mu.
	nick    string
	rooms   []*room // in the order joined
	current *room   // where plain lines go; nil if in no room

	// jsonOut is whether the client takes events as JSON. It changes under
	// srv.mu but is atomic, so that the reader (parsing) and the writer
	// (its own notices) can read it without srv.mu.
	jsonOut atomic.Bool

	mu       sync.Mutex
	out      queue
	missed   missed // what was dropped from out since the last write
	finished bool   // no more messages will be queued; close once flushed
	// closeReason says why the server closed the connection, for the quit
	// announcement.
	closeReason string

	// inflight counts this client's messages still in the commit loop.
	inflight sync.WaitGroup

	wake chan struct{} // tells the writer there is work; capacity 1
	done chan struct{} // closed when the writer has closed the connection

	// Writer-owned, reused between writes.
	batch []item
	wbuf  []byte
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
	return &session{
		srv:  srv,
		conn: conn,
		addr: conn.RemoteAddr().String(),
		out:  queue{limit: srv.opts.OutboundQueue},
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

// enqueue queues msg for this client without ever blocking. If the queue is
// full the oldest message is dropped and accounted for.
func (ss *session) enqueue(msg item) {
	ss.mu.Lock()
	if ss.finished {
		ss.mu.Unlock()
		return
	}
	if dropped, ok := ss.out.push(msg); ok {
		ss.missed.add(dropped)
	}
	ss.mu.Unlock()
	ss.signal()
}

// finish queues last (if not nil) as the final message and tells the writer
// to close the connection once everything queued has been written.
func (ss *session) finish(last []byte) {
	ss.mu.Lock()
	if !ss.finished {
		if last != nil {
			if dropped, ok := ss.out.push(item{b: last}); ok {
				ss.missed.add(dropped)
			}
		}
		ss.finished = true
	}
	ss.mu.Unlock()
	ss.signal()
}

func (ss *session) signal() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// readLoop reads and carries out the client's lines until the connection
// ends or the client quits, then takes the client out of the chat and lets
// the writer finish.
func (ss *session) readLoop() {
	srv := ss.srv
	log := srv.log
	lr := line.NewReader(ss.conn, srv.opts.MaxLineBytes)
	reason := "connection closed"
	for {
		text, err := lr.Next()
		if err == nil {
			if len(bytes.TrimSpace(text)) == 0 {
				continue
			}
			cmd, err := parse(ss, string(text))
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
				log.Info("Client quit: " + ss.addr)
				ss.inflight.Wait()
				ss.finish(nil)
				return
			}
			continue
		}
		if code, ok := rejectCode(err); ok {
			log.Warn("Rejected line from client "+ss.addr, "err", err)
			msg := err.Error()
			if errors.Is(err, line.ErrTooLong) {
				msg = fmt.Sprintf("line longer than %d bytes", srv.opts.MaxLineBytes)
			}
			srv.mu.Lock()
			srv.fail(ss, code, "%s; it was discarded", msg)
			srv.mu.Unlock()
			continue
		}
		switch {
		case err == io.EOF:
			log.Info("Client disconnected: " + ss.addr)
		case errors.Is(err, net.ErrClosed):
			// The server closed the connection and logged why.
			ss.mu.Lock()
			reason = ss.closeReason
			ss.mu.Unlock()
		default:
			log.Info("Client disconnected: "+ss.addr, "err", err)
		}
		break
	}
	// The client's last messages are delivered, to it too, before it goes.
	ss.inflight.Wait()
	srv.mu.Lock()
	srv.depart(ss, reason)
	srv.mu.Unlock()
	ss.finish(nil)
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

// writeLoop writes queued messages, everything queued at once in one Write,
// until the session is finished and flushed or a write fails.
func (ss *session) writeLoop() {
	defer close(ss.done)
	defer ss.conn.Close()
	for range ss.wake {
		ss.mu.Lock()
		ss.batch = ss.out.drain(ss.batch[:0])
		lost, finished := ss.missed, ss.finished
		ss.missed = missed{}
		ss.mu.Unlock()

		if err := ss.write(lost); err != nil {
			switch {
			case finished:
				// The client is leaving anyway; a failed goodbye is normal.
				ss.srv.log.Debug("Final write to client failed: "+ss.addr, "err", err)
			case errors.Is(err, os.ErrDeadlineExceeded):
				ss.srv.log.Warn("Disconnecting slow client " + ss.addr + ": write deadline exceeded")
				ss.mu.Lock()
				ss.closeReason = "too slow to receive messages"
				ss.mu.Unlock()
			case !errors.Is(err, net.ErrClosed):
				ss.srv.log.Info("Write to client failed; disconnecting "+ss.addr, "err", err)
			}
			return
		}
		if finished {
			return
		}
	}
}

// write sends the batch, preceded by notices if messages were missed, as
// one Write with a deadline.
func (ss *session) write(lost missed) error {
	b := ss.wbuf[:0]
	if lost.count > 0 {
		b = ss.appendMissed(b, lost)
	}
	for i, m := range ss.batch {
		b = append(b, m.b...)
		ss.batch[i] = item{}
	}
	if len(b) == 0 {
		return nil
	}
	if cap(b) <= maxRetainedWriteBuffer {
		ss.wbuf = b
	} else {
		ss.wbuf = nil
	}
	if err := ss.conn.SetWriteDeadline(time.Now().Add(ss.srv.opts.WriteTimeout)); err != nil {
		return err
	}
	_, err := ss.conn.Write(b)
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
