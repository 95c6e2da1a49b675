package chat

// This file is a session's reader: it reads the client's lines, bounded
// in length, content and time, and carries each out in the order sent.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/natter-chat/natter/chat/line"
	"github.com/natter-chat/natter/chat/protocol"
)

// read is a session's reader goroutine: it reads and carries out the
// client's lines until the connection ends, the client quits, or the
// server gives up on it, then takes the client out of the chat, lets the
// flusher finish, and counts itself done (srv.readers, srv.wg).
//
// Each time it has carried out what the client sent and is about to wait
// for more, it hands the reading over to a new goroutine and ends. A
// goroutine's stack grows with the deepest call it has made, and carrying
// out a single line (a chat line, /help, /json) grows it from 2 KiB to 4
// or 8 KiB; the runtime never shrinks the stack of a goroutine blocked in
// Read back to 2 KiB, since the calls it is blocked in, with the margin
// the runtime keeps, use more than a quarter of 4 KiB (its condition for
// halving a stack). So a client that has spoken once would keep that
// stack for as long as it stays idle. The new goroutine starts with 2 KiB, and
// the old stack is freed. The reader's state is in the session (ss.in), so
// the goroutines take over from each other in order, and they count as one
// reader.
func (ss *session) read() {
	if ss.readLoop() {
		go ss.read()
		return
	}
	ss.srv.readers.Done()
	ss.srv.wg.Done()
}

// readLoop reads and carries out the client's lines. It reports true once
// it has carried out every line read so far and would have to wait for the
// client (see read), and false once reading is over.
func (ss *session) readLoop() (handOver bool) {
	lr := ss.in.lr
	for {
		text, err := lr.Next()
		ss.lastHeard.Store(time.Now().UnixNano())
		if ss.take(text, err) {
			return false
		}
		if !lr.Pending() {
			return true
		}
	}
}

// take carries out what the line reader returned, a line or err, and
// reports whether reading is over.
func (ss *session) take(text []byte, err error) (over bool) {
	if err == nil && len(bytes.TrimSpace(text)) == 0 {
		return false
	}
	if err == nil || line.IsRejected(err) {
		switch ss.admit() {
		case refused:
			return false
		case kicked:
			ss.leave(leftFlooding)
			return true
		}
	}
	switch {
	case err == nil:
		return ss.carryOut(string(text))
	case line.IsRejected(err):
		ss.reject(err)
		return false
	default:
		ss.leave(ss.lost(err))
		return true
	}
}

// carryOut carries out one line and reports whether the client has quit.
//
// A client's lines take effect in the order it sent them. A chat line is
// accepted under the server's lock and handed to the commit loop, which
// stores and delivers lines in the order they arrive, so the reader goes
// on at once and a burst of lines is pipelined. Anything else (a command,
// and also an error about a line) first waits, without any lock held,
// until every line accepted before it has been delivered: a rename, a
// part or a quit never overtakes the client's own messages.
func (ss *session) carryOut(text string) (quit bool) {
	srv := ss.srv
	cmd, err := parse(ss, text)
	if err == nil && (cmd.Name == protocol.CmdSay || cmd.Name == protocol.CmdMe) {
		srv.mu.Lock()
		msg, refused := srv.accept(ss, cmd)
		srv.mu.Unlock()
		switch {
		case msg != nil:
			srv.log.Info("Received from client: " + cmd.Text)
			// Blocks only while the commit loop is a full batch behind:
			// back-pressure on this client alone.
			ss.inflight.Add(1)
			srv.commits <- *msg
		case refused != nil:
			// Nothing else changes what accept checked: only this
			// reader logs its client in or moves it between rooms.
			ss.inflight.Wait()
			srv.locked(func() { srv.sendTo(ss, refused) })
		}
		return false
	}
	ss.inflight.Wait()
	if quit = srv.dispatch(ss, cmd, err); quit {
		srv.log.Info("Client quit: " + ss.addr())
		srv.logDeparture(ss, quitWith(cmd.Text))
		ss.finish(nil)
	}
	return quit
}

// parse parses one line from ss as a command in ss's format. It needs no
// lock, so the server's lock is not held while JSON is decoded.
func parse(ss *session, line string) (protocol.Command, error) {
	if ss.jsonOut.Load() && strings.HasPrefix(line, "{") {
		return protocol.DecodeJSON([]byte(line))
	}
	return protocol.ParseText(line)
}

// reject tells the client why the line it sent was discarded, after the
// lines before it.
func (ss *session) reject(err error) {
	srv := ss.srv
	code := rejectCode(err)
	srv.log.Warn("Rejected line from client "+ss.addr(), "err", err)
	srv.metrics.rejected.WithLabelValues(code).Inc()
	msg := err.Error()
	if errors.Is(err, line.ErrTooLong) {
		msg = fmt.Sprintf("line longer than %d bytes", srv.opts.MaxLineBytes)
	}
	ss.inflight.Wait()
	srv.mu.Lock()
	srv.fail(ss, code, "%s; it was discarded", msg)
	srv.mu.Unlock()
}

// lost logs why reading from the client ended, tells the client if it can
// still hear it, and returns why it left.
func (ss *session) lost(err error) leaving {
	srv := ss.srv
	switch {
	case err == io.EOF:
		return leftClosed
	case errors.Is(err, net.ErrClosed):
		// The server closed the connection and logged why.
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.closedFor == nil {
			return leftShutdown
		}
		return *ss.closedFor
	case errors.Is(err, os.ErrDeadlineExceeded):
		srv.log.Warn(fmt.Sprintf("Disconnecting client %s: line not finished within %v", ss.addr(), srv.opts.LineTimeout))
		ss.inflight.Wait()
		srv.mu.Lock()
		srv.fail(ss, protocol.CodeLineTimeout, "line not finished within %v; disconnecting", srv.opts.LineTimeout)
		srv.mu.Unlock()
		return leftLineTimeout
	default:
		srv.log.Info("Reading from client failed: "+ss.addr(), "err", err)
		return leftClosed
	}
}

// leave takes the client out of the chat once its last messages are
// delivered (to it too), announcing why, and lets the flusher finish.
func (ss *session) leave(why leaving) {
	srv := ss.srv
	ss.inflight.Wait()
	srv.mu.Lock()
	departed := srv.depart(ss, why)
	srv.mu.Unlock()
	if departed {
		srv.logDeparture(ss, why)
	}
	ss.finish(nil)
}

// lineDeadline is the reader under a session's line reader. When the line
// reader asks for more bytes in the middle of a line, the wait is bounded
// by the line's deadline, so a line must be complete within LineTimeout of
// its first byte (a slowloris client trickling bytes is cut off), while a
// client may stay idle between lines as long as it likes. It is part of the
// session (session.in), so it holds only what the session does not.
type lineDeadline struct {
	ss      *session
	lr      *line.Reader
	pending bool // a line is in progress, and its deadline set
}

func (d *lineDeadline) Read(p []byte) (int, error) {
	conn := d.ss.conn
	switch {
	case d.lr.Pending():
		if !d.pending {
			d.pending = true
			conn.SetReadDeadline(time.Now().Add(d.ss.srv.opts.LineTimeout))
		}
	case d.pending:
		d.pending = false
		conn.SetReadDeadline(time.Time{})
	}
	return conn.Read(p)
}

// rejectCode returns the error code for a line the line reader rejected.
func rejectCode(err error) string {
	switch {
	case errors.Is(err, line.ErrTooLong):
		return protocol.CodeLineTooLong
	case errors.Is(err, line.ErrInvalidUTF8):
		return protocol.CodeInvalidUTF8
	case errors.Is(err, line.ErrNUL):
		return protocol.CodeNULByte
	}
	return protocol.CodeControl
}
