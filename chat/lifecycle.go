package chat

// This file is a client's arrival in the chat and its departure.

import (
	"fmt"
	"strconv"

	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// leaving is why a client left the chat: the reason announced to those who
// shared a room with it, and the value of the disconnects metric's reason
// label. The label is fixed with the reason, so a reason can't be counted
// under the wrong one.
type leaving struct {
	reason string // "*** alice quit (reason)"
	label  string // natter_disconnects_total{reason="label"}
}

// Why clients leave.
var (
	leftClosed       = leaving{"connection closed", "closed"}
	leftSlow         = leaving{"too slow to receive messages", "slow_consumer"}
	leftWriteFailed  = leaving{"write failed", "write_error"}
	leftFlooding     = leaving{"flooding", "flooding"}
	leftLineTimeout  = leaving{"line timeout", "line_timeout"}
	leftPingTimeout  = leaving{"ping timeout", "ping_timeout"}
	leftLoginTimeout = leaving{"login timeout", "login_timeout"}
	leftShutdown     = leaving{"", "shutdown"}
)

// quitWith is a /quit with the client's own reason, which is announced but,
// being anyone's text, is not a label.
func quitWith(reason string) leaving { return leaving{reason, "quit"} }

// localGuest returns the next guest name that no client of this server
// has. s.mu must be held.
func (s *Server) localGuest() string {
	for {
		s.guests++
		if name := protocol.GuestPrefix + strconv.Itoa(s.guests); s.holder(name) == nil {
			return name
		}
	}
}

// claimGuest claims in the cluster the next guest name that no client of
// this node has, and returns it; or the cluster's error, when it can't
// confirm one. It takes s.mu only to number the name, and asks the
// cluster without it, so the name must be checked again under s.mu.
func (s *Server) claimGuest() (string, error) {
	for {
		s.mu.Lock()
		name := s.localGuest()
		s.mu.Unlock()
		switch ok, err := s.opts.Cluster.ClaimNick(protocol.Fold(name)); {
		case err != nil:
			return "", err
		case ok:
			return name, nil
		}
	}
}

// arrive puts a new session, named already (see start), in the default
// room and welcomes it. s.mu must be held.
func (s *Server) arrive(ss *session) {
	s.nicks[protocol.Fold(ss.nick)] = ss
	if s.opts.RequireAuth {
		// Outside every room until logged in.
		welcome := s.welcome(ss)
		s.sendTo(ss, &welcome)
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeLoginRequired,
			Text: fmt.Sprintf("this server requires an account: /login NAME PASSWORD or /register NAME PASSWORD, within %v", s.opts.LoginTimeout)})
		s.startLoginClock(ss)
		return
	}
	// Announced to the others only: the welcome, the first line ss
	// receives, tells ss itself.
	s.enterRoom(ss, s.lobby)
	s.announceArrival(ss, s.lobby)
	ss.rooms = []*room{s.lobby}
	ss.current = s.lobby
	welcome := s.welcome(ss)
	s.sendTo(ss, &welcome)
	s.replayLatest(ss, s.lobby, s.opts.HistoryOnJoin)
}

// welcome returns the welcome event for ss: who and where it is, the
// commands and the limits. It returns it by value, so that it can stay on
// the caller's stack (see appendJSON): every arrival has one. s.mu must be
// held.
func (s *Server) welcome(ss *session) protocol.Event {
	room := ""
	if ss.current != nil {
		room = ss.current.name
	}
	return protocol.Event{
		Type:      protocol.TypeWelcome,
		Time:      now(),
		Nick:      ss.nick,
		Room:      room,
		Commands:  commandNames,
		Limits:    s.limits,
		HistoryID: history.ID(s.opts.History),
	}
}

// commandNames is every welcome's list of commands, shared: a welcome is
// encoded, never changed.
var commandNames = protocol.CommandNames()

// welcomeLimits returns the limits every welcome announces, shared as
// s.limits for the same reason.
func welcomeLimits(o Options) *protocol.Limits {
	return &protocol.Limits{
		LineBytes:      o.MaxLineBytes,
		NickLength:     o.MaxNickLength,
		RoomNameLength: o.MaxRoomNameLength,
		TopicBytes:     o.MaxTopicBytes,
		RoomsPerClient: o.MaxRoomsPerClient,
		RoomMembers:    o.MaxRoomMembers,
		Rooms:          o.MaxRooms,
	}
}

// depart takes ss out of every room, announces that it left and why, and
// counts it, once, and reports whether it did; the caller logs it, once
// s.mu is released (logDeparture). s.mu must be held.
func (s *Server) depart(ss *session, why leaving) bool {
	if _, ok := s.sessions[ss]; !ok {
		return false
	}
	s.metrics.disconnects.WithLabelValues(why.label).Inc()
	if ss.loginTimer != nil {
		ss.loginTimer.Stop()
	}
	s.announceAround(ss, &protocol.Event{Type: protocol.TypeQuit, Time: now(), Nick: ss.nick, Reason: why.reason}, true, s.announces)
	for _, r := range ss.rooms {
		s.leaveRoom(ss, r)
	}
	ss.rooms, ss.current = nil, nil
	delete(s.nicks, protocol.Fold(ss.nick))
	if s.opts.Cluster != nil {
		s.opts.Cluster.ReleaseNick(protocol.Fold(ss.nick))
	}
	delete(s.sessions, ss)
	s.unadmit(ss.ip)
	return true
}

// logDeparture logs that ss left, and why.
func (s *Server) logDeparture(ss *session, why leaving) {
	s.log.Info("Client disconnected: "+ss.addr(), "reason", why.label)
}
