package chat

// This file is the command dispatcher: every command a client sends, the
// chat line included, starts here.

import (
	"errors"
	"strings"
	"time"

	"github.com/natter-chat/natter/chat/protocol"
)

func now() string { return protocol.Stamp(time.Now()) }

// accept takes a chat line (say or me) from ss for its room and returns it
// as a message for the commit loop, which stores and delivers it; or it
// returns the refusal to send ss instead, for the caller to send once the
// lines before it have been delivered; or neither, for a blank line.
// s.mu must be held.
func (s *Server) accept(ss *session, c protocol.Command) (*accepted, *protocol.Event) {
	if ev := s.loginFirst(ss, c); ev != nil {
		return nil, ev
	}
	if strings.TrimSpace(c.Text) == "" {
		return nil, nil // a blank line is not a message
	}
	r, ev := s.joinedRoom(ss, c.Room)
	if ev != nil {
		return nil, ev
	}
	if s.opts.Cluster != nil && !s.opts.Cluster.ClaimsFresh() {
		// This node stalled, or can't reach NATS: the sender's name may
		// be another node's client's by now, so nothing is said under it.
		return nil, refusal(protocol.CodeClusterDown, "this node can't confirm your nickname with the cluster right now; line not sent")
	}
	typ := protocol.TypeMessage
	if c.Name == protocol.CmdMe {
		typ = protocol.TypeAction
	}
	s.metrics.received.Inc()
	return &accepted{from: ss, at: time.Now(),
		ev: &protocol.Event{Type: typ, Time: now(), Room: r.name, From: ss.nick, Text: c.Text}}, nil
}

// dispatch carries out a command from ss other than a chat line, or tells
// ss why the line it came from was not one, and reports whether ss has
// quit. It is called without s.mu: most commands run with it held, but
// those that must wait for something (a password hash, a look at the
// accounts, a read of the history, a listing to build) do that first and
// take the lock after, checking again what they checked before.
func (s *Server) dispatch(ss *session, c protocol.Command, err error) (quit bool) {
	switch c.Name {
	case protocol.CmdRegister, protocol.CmdLogin:
		if err == nil {
			ss.authenticate(c)
			return false
		}
	case protocol.CmdNick:
		if err == nil {
			s.nick(ss, c.Nick)
			return false
		}
	case protocol.CmdUpload:
		// The file service is asked without s.mu.
		if err == nil {
			if ev := s.loginFirst(ss, c); ev != nil {
				s.locked(func() { s.sendTo(ss, ev) })
			} else {
				s.upload(ss, c)
			}
			return false
		}
	case protocol.CmdJoin, protocol.CmdHistory, protocol.CmdResume, protocol.CmdRooms, protocol.CmdWho, protocol.CmdTopic:
		// These read the history, build a long listing, or ask the
		// cluster, without s.mu.
		if err == nil {
			if ev := s.loginFirst(ss, c); ev != nil {
				s.locked(func() { s.sendTo(ss, ev) })
			} else {
				s.readingCommand(ss, c)
			}
			return false
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case errors.Is(err, protocol.ErrUnknownCommand):
		s.fail(ss, protocol.CodeUnknownCommand, "%v", err)
		return false
	case errors.Is(err, protocol.ErrUsage):
		s.fail(ss, protocol.CodeUsage, "%v", err)
		return false
	case err != nil:
		s.fail(ss, protocol.CodeBadJSON, "%v", err)
		return false
	}
	if s.requireLogin(ss, c) {
		return false
	}
	switch c.Name {
	case protocol.CmdMsg:
		s.msg(ss, c)
	case protocol.CmdPart:
		s.part(ss, c.Room, c.Text)
	case protocol.CmdPong:
		// Hearing from the client was the point; the reader noted it.
	case protocol.CmdHelp:
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeHelp, Commands: protocol.HelpLines()})
	case protocol.CmdFormat:
		ss.setFormat(c.Format)
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeFormat, Format: c.Format})
		welcome := s.welcome(ss)
		s.sendTo(ss, &welcome)
	case protocol.CmdQuit:
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeBye, Text: "bye"})
		s.depart(ss, quitWith(c.Text))
		return true
	}
	return false
}

// readingCommand carries out a command that reads the history or builds a
// long listing. It is called without s.mu.
func (s *Server) readingCommand(ss *session, c protocol.Command) {
	switch c.Name {
	case protocol.CmdJoin:
		s.join(ss, c.Room)
	case protocol.CmdHistory:
		s.history(ss, c)
	case protocol.CmdResume:
		s.resume(ss, c)
	case protocol.CmdRooms:
		s.listRooms(ss, c)
	case protocol.CmdWho:
		s.who(ss, c)
	case protocol.CmdTopic:
		s.topic(ss, c)
	}
}

// joined returns the room named name that ss is in, or the current room if
// name is empty, or fails with a reason sent to ss. s.mu must be held.
func (s *Server) joined(ss *session, name string) (*room, bool) {
	r, ev := s.joinedRoom(ss, name)
	if ev != nil {
		s.sendTo(ss, ev)
	}
	return r, ev == nil
}

// joinedRoom returns the room named name that ss is in, or the current
// room if name is empty, or the refusal to send ss. s.mu must be held.
func (s *Server) joinedRoom(ss *session, name string) (*room, *protocol.Event) {
	if name == "" {
		if ss.current == nil {
			return nil, refusal(protocol.CodeNoRoom, "you are in no room; /join one")
		}
		return ss.current, nil
	}
	for _, r := range ss.rooms {
		if strings.EqualFold(r.name, name) {
			return r, nil
		}
	}
	return nil, refusal(protocol.CodeNotInRoom, "you are not in #%s", name)
}

// room returns the existing room named name, or ss's current room if name
// is empty, or fails with a reason sent to ss. s.mu must be held.
func (s *Server) room(ss *session, name string) (*room, bool) {
	if name == "" {
		return s.joined(ss, "")
	}
	r := s.rooms[protocol.Fold(name)]
	if r == nil {
		s.fail(ss, protocol.CodeNoSuchRoom, "there is no room #%s", name)
		return nil, false
	}
	return r, true
}

// msg sends a private message to its recipient and echoes it to its
// sender. s.mu must be held.
func (s *Server) msg(ss *session, c protocol.Command) {
	to := s.nicks[protocol.Fold(c.Nick)]
	if to == nil {
		s.fail(ss, protocol.CodeNoSuchNick, "no one is called %s", c.Nick)
		return
	}
	ev := &protocol.Event{Type: protocol.TypePrivate, Time: now(), From: ss.nick, To: to.nick, Text: c.Text}
	s.sendTo(to, ev)
	if to != ss {
		s.sendTo(ss, ev)
	}
}

// setFormat switches the format of ss's events. srv.mu must be held.
func (ss *session) setFormat(name string) {
	f, _ := protocol.ParseFormat(name)
	ss.jsonOut.Store(f == protocol.JSON)
}
