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

// readLoop reads and carries out the client's lines until the connection
// ends, the client quits, or the server gives up on it, then takes the
// client out of the chat and lets the flusher finish.
func (ss *session) readLoop() {
	srv := ss.srv
	in := &ss.in
	in.ss = ss
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
				ss.leave(leftFlooding)
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
