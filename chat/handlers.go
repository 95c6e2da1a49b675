package chat

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/natter-chat/natter/chat/protocol"
)

// This file holds what the server does for each command. Every method of
// Server here runs with s.mu held.

// Error codes sent in error events; chat/PROTOCOL.md lists them.
const (
	codeUnknownCommand = "unknown_command"
	codeUsage          = "usage"
	codeBadJSON        = "bad_json"
	codeBadNick        = "bad_nick"
	codeNickTaken      = "nick_taken"
	codeClusterDown    = "cluster_unavailable"
	codeNoSuchNick     = "no_such_nick"
	codeBadRoom        = "bad_room"
	codeNoSuchRoom     = "no_such_room"
	codeNotInRoom      = "not_in_room"
	codeNoRoom         = "no_current_room"
	codeTopicTooLong   = "topic_too_long"
	codeTooManyJoined  = "too_many_rooms_joined"
	codeRoomFull       = "room_full"
	codeTooManyRooms   = "too_many_rooms"
	codeLineTooLong    = "line_too_long"
	codeInvalidUTF8    = "invalid_utf8"
	codeNULByte        = "nul_byte"
	codeControl        = "control_character"
	codeStoreError     = "store_error"
	codeRateLimited    = "rate_limited"
	codeFlooding       = "flooding"
	codeLineTimeout    = "line_timeout"
	codeRefused        = "connection_refused"
)

func now() string { return protocol.Stamp(time.Now()) }

// sendTo queues ev for ss alone.
func (s *Server) sendTo(ss *session, ev *protocol.Event) {
	d := delivery{ev: ev}
	ss.enqueue(d.itemFor(ss))
	s.metrics.deliveries.Inc()
}

// fail sends ss an error event.
func (s *Server) fail(ss *session, code, format string, args ...any) {
	s.sendTo(ss, &protocol.Event{Type: protocol.TypeError, Code: code, Text: fmt.Sprintf(format, args...)})
}

// deliverRoom queues ev for every member of r.
func (s *Server) deliverRoom(r *room, ev *protocol.Event) { s.deliverRoomExcept(r, ev, nil) }

// deliverRoomExcept queues ev for every member of r but except (nil for
// none).
func (s *Server) deliverRoomExcept(r *room, ev *protocol.Event, except *session) {
	d := delivery{ev: ev}
	n := 0
	for ss := range r.members {
		if ss != except {
			ss.enqueue(d.itemFor(ss))
			n++
		}
	}
	s.metrics.deliveries.Add(float64(n))
}

// announces reports whether joins, parts and quits in r are announced to
// its members: whether it has at most AnnounceLimit members.
func (s *Server) announces(r *room) bool { return len(r.members) <= s.opts.AnnounceLimit }

// announce queues a join or part of ss in r for r's members, or only for
// ss if r is too large to announce it.
func (s *Server) announce(ss *session, r *room, ev *protocol.Event) {
	if s.announces(r) {
		s.deliverRoom(r, ev)
	} else {
		s.sendTo(ss, ev)
	}
}

// deliverAround queues ev once for everyone who shares a room with ss, and
// for ss itself unless skipSelf. Only the rooms that in accepts count;
// a nil in accepts every room.
func (s *Server) deliverAround(ss *session, ev *protocol.Event, skipSelf bool, in func(*room) bool) {
	d := delivery{ev: ev}
	seen := map[*session]bool{ss: true}
	if !skipSelf {
		ss.enqueue(d.itemFor(ss))
	}
	for _, r := range ss.rooms {
		if in != nil && !in(r) {
			continue
		}
		for m := range r.members {
			if !seen[m] {
				seen[m] = true
				m.enqueue(d.itemFor(m))
			}
		}
	}
}

// claimCluster claims a name the server gives (a guest name, or an
// account's) across the cluster, if there is one, and reports whether
// another node's client has it. When the cluster can't be asked, it
// assumes not: the name is unique on this node, and refusing it would
// leave the client nameless.
func (s *Server) claimCluster(nick string) bool {
	if s.opts.Cluster == nil {
		return true
	}
	ok, err := s.opts.Cluster.ClaimNick(protocol.Fold(nick))
	if err != nil {
		s.log.Error("Claiming a nickname in the cluster failed", "err", err)
		return true
	}
	return ok
}

// arrive gives a new session a guest name, puts it in the default room and
// welcomes it.
func (s *Server) arrive(ss *session) {
	for {
		s.guests++
		ss.nick = protocol.GuestPrefix + strconv.Itoa(s.guests)
		if s.nicks[protocol.Fold(ss.nick)] == nil && s.claimCluster(ss.nick) {
			break
		}
	}
	s.nicks[protocol.Fold(ss.nick)] = ss
	if s.opts.RequireAuth {
		// Outside every room until logged in.
		s.sendTo(ss, s.welcome(ss))
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: codeLoginRequired,
			Text: fmt.Sprintf("this server requires an account: /login NAME PASSWORD or /register NAME PASSWORD, within %v", s.opts.LoginTimeout)})
		s.startLoginClock(ss)
		return
	}
	// Announced to the others only: the welcome, the first line ss
	// receives, tells ss itself.
	s.enterRoom(ss, s.lobby)
	if s.announces(s.lobby) {
		s.deliverRoomExcept(s.lobby, &protocol.Event{Type: protocol.TypeJoin, Time: now(), Room: s.lobby.name, Nick: ss.nick}, ss)
	}
	ss.rooms = []*room{s.lobby}
	ss.current = s.lobby
	s.sendTo(ss, s.welcome(ss))
	s.replayLatest(ss, s.lobby, s.opts.HistoryOnJoin)
}

func (s *Server) welcome(ss *session) *protocol.Event {
	room := ""
	if ss.current != nil {
		room = ss.current.name
	}
	o := s.opts
	return &protocol.Event{
		Type:     protocol.TypeWelcome,
		Time:     now(),
		Nick:     ss.nick,
		Room:     room,
		Commands: protocol.CommandNames(),
		Limits: &protocol.Limits{
			LineBytes:      o.MaxLineBytes,
			NickLength:     o.MaxNickLength,
			RoomNameLength: o.MaxRoomNameLength,
			TopicBytes:     o.MaxTopicBytes,
			RoomsPerClient: o.MaxRoomsPerClient,
			RoomMembers:    o.MaxRoomMembers,
			Rooms:          o.MaxRooms,
		},
	}
}

// depart takes ss out of every room, announces that it quit, and logs and
// counts why, once. kind is the reason's value for the disconnects metric.
func (s *Server) depart(ss *session, reason, kind string) {
	if _, ok := s.sessions[ss]; !ok {
		return
	}
	s.log.Info("Client disconnected: "+ss.addr, "reason", kind)
	s.metrics.disconnects.WithLabelValues(kind).Inc()
	if ss.loginTimer != nil {
		ss.loginTimer.Stop()
	}
	s.deliverAround(ss, &protocol.Event{Type: protocol.TypeQuit, Time: now(), Nick: ss.nick, Reason: reason}, true, s.announces)
	for _, r := range ss.rooms {
		s.leaveRoom(ss, r)
	}
	ss.rooms, ss.current = nil, nil
	delete(s.nicks, protocol.Fold(ss.nick))
	if s.opts.Cluster != nil {
		s.opts.Cluster.ReleaseNick(protocol.Fold(ss.nick))
	}
	delete(s.sessions, ss)
	if s.perIP[ss.ip]--; s.perIP[ss.ip] <= 0 {
		delete(s.perIP, ss.ip)
	}
}

// enterRoom makes ss a member of r, here and, in a cluster, for every
// node to see. s.mu must be held.
func (s *Server) enterRoom(ss *session, r *room) {
	r.members[ss] = struct{}{}
	if s.opts.Cluster != nil {
		if err := s.opts.Cluster.Enter(r.name, ss.nick); err != nil {
			s.log.Error("Recording presence in the cluster failed", "err", err)
		}
	}
}

// leaveRoom takes ss out of r, and r away if it is left empty and is not
// the default room.
func (s *Server) leaveRoom(ss *session, r *room) {
	delete(r.members, ss)
	if s.opts.Cluster != nil {
		s.opts.Cluster.Leave(r.name, ss.nick)
	}
	if len(r.members) == 0 && r != s.lobby {
		delete(s.rooms, protocol.Fold(r.name))
	}
}

// parse parses one line from ss as a command in ss's format. It needs no
// lock, so the server's lock is not held while JSON is decoded.
func parse(ss *session, line string) (protocol.Command, error) {
	if ss.jsonOut.Load() && strings.HasPrefix(line, "{") {
		return protocol.DecodeJSON([]byte(line))
	}
	return protocol.ParseText(line)
}

// handle carries out a command from ss, or reports why the line it came
// from was not one. It reports whether ss has quit, and returns the chat
// message the command made, if any, for the caller to hand to the commit
// loop once s.mu is released.
func (s *Server) handle(ss *session, c protocol.Command, err error) (quit bool, msg *accepted) {
	switch {
	case errors.Is(err, protocol.ErrUnknownCommand):
		s.fail(ss, codeUnknownCommand, "%v", err)
		return false, nil
	case errors.Is(err, protocol.ErrUsage):
		s.fail(ss, codeUsage, "%v", err)
		return false, nil
	case err != nil:
		s.fail(ss, codeBadJSON, "%v", err)
		return false, nil
	}
	if s.requireLogin(ss, c) {
		return false, nil
	}

	switch c.Name {
	case protocol.CmdSay, protocol.CmdMe:
		return false, s.say(ss, c)
	case protocol.CmdHistory:
		s.history(ss, c)
	case protocol.CmdResume:
		s.resume(ss, c)
	case protocol.CmdMsg:
		s.msg(ss, c)
	case protocol.CmdNick:
		s.nick(ss, c.Nick)
	case protocol.CmdJoin:
		s.join(ss, c.Room)
	case protocol.CmdPart:
		s.part(ss, c.Room, c.Text)
	case protocol.CmdRooms:
		s.listRooms(ss)
	case protocol.CmdWho:
		s.who(ss, c.Room)
	case protocol.CmdTopic:
		s.topic(ss, c)
	case protocol.CmdPong:
		// Hearing from the client was the point; the reader noted it.
	case protocol.CmdHelp:
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeHelp, Commands: protocol.HelpLines()})
	case protocol.CmdFormat:
		ss.setFormat(c.Format)
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeFormat, Format: c.Format})
		s.sendTo(ss, s.welcome(ss))
	case protocol.CmdQuit:
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: "bye", Text: "bye"})
		s.depart(ss, c.Text, "quit")
		return true, nil
	}
	return false, nil
}

// joined returns the room named name that ss is in, or the current room if
// name is empty, or fails with a reason sent to ss.
func (s *Server) joined(ss *session, name string) (*room, bool) {
	if name == "" {
		if ss.current == nil {
			s.fail(ss, codeNoRoom, "you are in no room; /join one")
			return nil, false
		}
		return ss.current, true
	}
	for _, r := range ss.rooms {
		if strings.EqualFold(r.name, name) {
			return r, true
		}
	}
	s.fail(ss, codeNotInRoom, "you are not in #%s", name)
	return nil, false
}

// say accepts a chat line for r; the commit loop stores and delivers it.
func (s *Server) say(ss *session, c protocol.Command) *accepted {
	if strings.TrimSpace(c.Text) == "" {
		return nil // a blank line is not a message
	}
	r, ok := s.joined(ss, c.Room)
	if !ok {
		return nil
	}
	typ := protocol.TypeMessage
	if c.Name == protocol.CmdMe {
		typ = protocol.TypeAction
	}
	s.log.Info("Received from client: " + c.Text)
	s.metrics.received.Inc()
	return &accepted{room: r, from: ss, at: time.Now(),
		ev: &protocol.Event{Type: typ, Time: now(), Room: r.name, From: ss.nick, Text: c.Text}}
}

func (s *Server) msg(ss *session, c protocol.Command) {
	to := s.nicks[protocol.Fold(c.Nick)]
	if to == nil {
		s.fail(ss, codeNoSuchNick, "no one is called %s", c.Nick)
		return
	}
	ev := &protocol.Event{Type: protocol.TypePrivate, Time: now(), From: ss.nick, To: to.nick, Text: c.Text}
	s.sendTo(to, ev)
	if to != ss {
		s.sendTo(ss, ev)
	}
}

func (s *Server) nick(ss *session, name string) {
	if err := protocol.CheckNick(name, s.opts.MaxNickLength); err != nil {
		s.fail(ss, codeBadNick, "can't use %q as a nickname: %v", name, err)
		return
	}
	if name == ss.nick {
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: "same_nick", Text: "you are already " + name})
		return
	}
	if other := s.nicks[protocol.Fold(name)]; other != nil && other != ss {
		s.fail(ss, codeNickTaken, "the nickname %s is taken", other.nick)
		return
	}
	if s.registeredToOther(ss, name) {
		s.fail(ss, codeNickRegistered, "the nickname %s is registered; /login %s PASSWORD to use it", name, name)
		return
	}
	if s.opts.Cluster != nil && protocol.Fold(name) != protocol.Fold(ss.nick) {
		switch ok, err := s.opts.Cluster.ClaimNick(protocol.Fold(name)); {
		case err != nil:
			s.log.Error("Claiming a nickname in the cluster failed", "err", err)
			s.fail(ss, codeClusterDown, "can't check that nickname right now: the cluster is unreachable")
			return
		case !ok:
			s.fail(ss, codeNickTaken, "the nickname %s is taken", name)
			return
		}
	}
	s.rename(ss, name)
}

// rename gives ss the nickname name and announces it to everyone who
// shares a room with ss.
func (s *Server) rename(ss *session, name string) {
	old := ss.nick
	delete(s.nicks, protocol.Fold(old))
	if c := s.opts.Cluster; c != nil {
		if protocol.Fold(old) != protocol.Fold(name) {
			c.ReleaseNick(protocol.Fold(old))
		}
		for _, r := range ss.rooms {
			c.Leave(r.name, old)
			if err := c.Enter(r.name, name); err != nil {
				s.log.Error("Recording presence in the cluster failed", "err", err)
			}
		}
	}
	ss.nick = name
	s.nicks[protocol.Fold(name)] = ss
	s.deliverAround(ss, &protocol.Event{Type: protocol.TypeNick, Time: now(), Old: old, Nick: name}, false, nil)
}

func (s *Server) join(ss *session, name string) {
	if err := protocol.CheckRoom(name, s.opts.MaxRoomNameLength); err != nil {
		s.fail(ss, codeBadRoom, "can't use %q as a room name: %v", name, err)
		return
	}
	r := s.rooms[protocol.Fold(name)]
	switch {
	case r != nil && slices.Contains(ss.rooms, r):
		// Already in it: make it the current room.
	case len(ss.rooms) >= s.opts.MaxRoomsPerClient:
		s.fail(ss, codeTooManyJoined, "you are in %d rooms, the most allowed; /part one first", len(ss.rooms))
		return
	case r == nil && len(s.rooms) >= s.opts.MaxRooms:
		s.fail(ss, codeTooManyRooms, "the server has %d rooms, the most allowed; join an existing one", len(s.rooms))
		return
	case r != nil && r != s.lobby && len(r.members) >= s.opts.MaxRoomMembers:
		s.fail(ss, codeRoomFull, "#%s is full (%d members)", r.name, len(r.members))
		return
	default:
		if r == nil {
			r = s.openRoom(name)
			s.rooms[protocol.Fold(name)] = r
		}
		s.enterRoom(ss, r)
		ss.rooms = append(ss.rooms, r)
		s.announce(ss, r, &protocol.Event{Type: protocol.TypeJoin, Time: now(), Room: r.name, Nick: ss.nick})
		ss.current = r
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeCurrent, Room: r.name})
		if r.topic != "" {
			s.sendTo(ss, &protocol.Event{Type: protocol.TypeTopic, Room: r.name, Text: r.topic})
		}
		s.replayLatest(ss, r, s.opts.HistoryOnJoin)
		return
	}
	ss.current = r
	s.sendTo(ss, &protocol.Event{Type: protocol.TypeCurrent, Room: r.name})
}

func (s *Server) part(ss *session, name, reason string) {
	r, ok := s.joined(ss, name)
	if !ok {
		return
	}
	s.announce(ss, r, &protocol.Event{Type: protocol.TypePart, Time: now(), Room: r.name, Nick: ss.nick, Reason: reason})
	s.leaveRoom(ss, r)
	ss.rooms = slices.DeleteFunc(ss.rooms, func(x *room) bool { return x == r })
	if ss.current != r {
		return
	}
	if len(ss.rooms) == 0 {
		ss.current = nil
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: codeNoRoom, Text: "you are in no room now; /join one to talk"})
		return
	}
	ss.current = ss.rooms[len(ss.rooms)-1]
	s.sendTo(ss, &protocol.Event{Type: protocol.TypeCurrent, Room: ss.current.name})
}

// clusterWho lists the members of a room on every node.
func (s *Server) clusterWho(ss *session, name string) {
	display := name
	if r := s.rooms[protocol.Fold(name)]; r != nil {
		display = r.name
	} else if name == "" {
		if ss.current == nil {
			s.fail(ss, codeNoRoom, "you are in no room; /join one")
			return
		}
		display = ss.current.name
	}
	nicks, err := s.opts.Cluster.Members(display)
	switch {
	case err != nil:
		s.log.Error("Reading presence from the cluster failed", "err", err)
		s.fail(ss, codeClusterDown, "can't list #%s right now: the cluster is unreachable", display)
		return
	case len(nicks) == 0:
		s.fail(ss, codeNoSuchRoom, "there is no room #%s", display)
		return
	}
	slices.SortFunc(nicks, func(a, b string) int { return strings.Compare(protocol.Fold(a), protocol.Fold(b)) })
	s.sendTo(ss, &protocol.Event{Type: protocol.TypeWho, Room: display, Members: nicks})
}

func (s *Server) listRooms(ss *session) {
	var infos []protocol.RoomInfo
	if s.opts.Cluster != nil {
		all, err := s.opts.Cluster.Rooms()
		if err != nil {
			s.log.Error("Reading presence from the cluster failed", "err", err)
			s.fail(ss, codeClusterDown, "can't list the rooms right now: the cluster is unreachable")
			return
		}
		for folded, nicks := range all {
			info := protocol.RoomInfo{Name: folded, Members: len(nicks)}
			if r := s.rooms[folded]; r != nil {
				info.Name, info.Topic = r.name, r.topic
			}
			infos = append(infos, info)
		}
	} else {
		for _, r := range s.rooms {
			infos = append(infos, protocol.RoomInfo{Name: r.name, Members: len(r.members), Topic: r.topic})
		}
	}
	slices.SortFunc(infos, func(a, b protocol.RoomInfo) int {
		return strings.Compare(protocol.Fold(a.Name), protocol.Fold(b.Name))
	})
	s.sendTo(ss, &protocol.Event{Type: protocol.TypeRooms, Rooms: infos})
}

// room returns the existing room named name, or ss's current room if name
// is empty, or fails with a reason sent to ss.
func (s *Server) room(ss *session, name string) (*room, bool) {
	if name == "" {
		return s.joined(ss, "")
	}
	r := s.rooms[protocol.Fold(name)]
	if r == nil {
		s.fail(ss, codeNoSuchRoom, "there is no room #%s", name)
		return nil, false
	}
	return r, true
}

func (s *Server) who(ss *session, name string) {
	if s.opts.Cluster != nil {
		s.clusterWho(ss, name)
		return
	}
	if r, ok := s.room(ss, name); ok {
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeWho, Room: r.name, Members: r.nicks()})
	}
}

func (s *Server) topic(ss *session, c protocol.Command) {
	if !c.SetTopic {
		if r, ok := s.room(ss, c.Room); ok {
			s.sendTo(ss, &protocol.Event{Type: protocol.TypeTopic, Room: r.name, Text: r.topic})
		}
		return
	}
	r, ok := s.joined(ss, c.Room)
	if !ok {
		return
	}
	if len(c.Text) > s.opts.MaxTopicBytes {
		s.fail(ss, codeTopicTooLong, "a topic is at most %d bytes", s.opts.MaxTopicBytes)
		return
	}
	if s.opts.Cluster != nil {
		// Every node, this one too, hears of it through topicSet.
		if err := s.opts.Cluster.SetTopic(r.name, ss.nick, c.Text); err != nil {
			s.log.Error("Setting a topic in the cluster failed", "err", err)
			s.fail(ss, codeClusterDown, "can't set the topic right now: the cluster is unreachable")
		}
		return
	}
	s.topicSetLocked(r, ss.nick, c.Text)
}

// topicSet is told of a topic set on any node of a cluster.
func (s *Server) topicSet(room, by, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[protocol.Fold(room)]; r != nil {
		s.topicSetLocked(r, by, text)
	}
}

// topicSetLocked sets r's topic and tells its members. s.mu must be held.
func (s *Server) topicSetLocked(r *room, by, text string) {
	r.topic = text
	s.deliverRoom(r, &protocol.Event{Type: protocol.TypeTopic, Time: now(), Room: r.name, From: by, Text: text})
}
