package chat

// This file is the commands about rooms: /join, /part, /who, /rooms and
// /topic.

import (
	"slices"
	"strings"

	"github.com/natter-chat/natter/chat/protocol"
)

// join carries out /join. The room's latest messages, the joiner's
// replay, are read before s.mu is taken, and read again should they have
// gone stale by then. It is called without s.mu.
func (s *Server) join(ss *session, name string) {
	if err := protocol.CheckRoom(name, s.opts.MaxRoomNameLength); err != nil {
		s.locked(func() { s.fail(ss, protocol.CodeBadRoom, "can't use %q as a room name: %v", name, err) })
		return
	}
	var l *latest
	s.readUnlocked(
		func(locked bool) { l = s.readLatest(name, s.opts.HistoryOnJoin, locked) },
		func() bool { return s.joinLocked(ss, name, l) })
}

// joinLocked is join once s.mu is held, with l read of the room's
// history; it reports false, having changed nothing, if l has gone stale.
// s.mu must be held.
func (s *Server) joinLocked(ss *session, name string, l *latest) bool {
	r := s.rooms[protocol.Fold(name)]
	switch {
	case r != nil && slices.Contains(ss.rooms, r):
		// Already in it: make it the current room.
	case len(ss.rooms) >= s.opts.MaxRoomsPerClient:
		s.fail(ss, protocol.CodeTooManyJoined, "you are in %d rooms, the most allowed; /part one first", len(ss.rooms))
		return true
	case r == nil && len(s.rooms) >= s.opts.MaxRooms:
		s.fail(ss, protocol.CodeTooManyRooms, "the server has %d rooms, the most allowed; join an existing one", len(s.rooms))
		return true
	case r != nil && r != s.lobby && len(r.members) >= s.opts.MaxRoomMembers:
		s.fail(ss, protocol.CodeRoomFull, "#%s is full (%d members)", r.name, len(r.members))
		return true
	case !l.freshFor(s, r):
		return false
	default:
		if r == nil {
			topic := l.topic
			if l.locked {
				topic = s.clusterTopic(name) // a last try's, under s.mu
			}
			r = s.openRoom(name, l.newest, topic)
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
		s.replayFrom(ss, r, l)
		return true
	}
	ss.current = r
	s.sendTo(ss, &protocol.Event{Type: protocol.TypeCurrent, Room: r.name})
	return true
}

// part carries out /part. s.mu must be held.
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
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeNoRoom, Text: "you are in no room now; /join one to talk"})
		return
	}
	ss.current = ss.rooms[len(ss.rooms)-1]
	s.sendTo(ss, &protocol.Event{Type: protocol.TypeCurrent, Room: ss.current.name})
}

// who carries out /who: a page of a room's members, sorted, after
// c.Next. The members are copied under s.mu (on a cluster node, asked of
// the cluster without it), and sorted, paged and encoded without it. It is
// called without s.mu.
func (s *Server) who(ss *session, c protocol.Command) {
	var (
		display string
		nicks   []string
		ok      bool
	)
	s.locked(func() {
		var r *room
		switch {
		case s.opts.Cluster == nil:
			if r, ok = s.room(ss, c.Room); ok {
				display = r.name
				nicks = make([]string, 0, len(r.members))
				for m := range r.members {
					nicks = append(nicks, m.nick)
				}
			}
		case c.Room == "":
			if r, ok = s.joined(ss, ""); ok {
				display = r.name
			}
		default:
			// The name goes into the cluster's key filter: it must be a
			// room's, not a wildcard.
			if err := protocol.CheckRoom(c.Room, s.opts.MaxRoomNameLength); err != nil {
				s.fail(ss, protocol.CodeNoSuchRoom, "there is no room #%s", c.Room)
				return
			}
			display, ok = c.Room, true
			if r := s.rooms[protocol.Fold(c.Room)]; r != nil {
				display = r.name
			}
		}
	})
	if !ok {
		return
	}
	if s.opts.Cluster != nil {
		var err error
		switch nicks, err = s.opts.Cluster.Members(display); {
		case err != nil:
			s.log.Error("Reading presence from the cluster failed", "err", err)
			s.locked(func() {
				s.fail(ss, protocol.CodeClusterDown, "can't list #%s right now: the cluster is unreachable", display)
			})
			return
		case len(nicks) == 0:
			s.locked(func() { s.fail(ss, protocol.CodeNoSuchRoom, "there is no room #%s", display) })
			return
		}
	}
	slices.SortFunc(nicks, func(a, b string) int { return strings.Compare(protocol.Fold(a), protocol.Fold(b)) })
	page, next := pageAfter(nicks, func(n string) string { return n }, c.Next, s.opts.MaxListPage)
	s.sendEncoded(ss, &protocol.Event{Type: protocol.TypeWho, Room: display, Count: len(nicks), Members: page, Next: next})
}

// listRooms carries out /rooms: a page of the rooms, sorted, after c.Next.
// The rooms are copied under s.mu (on a cluster node, asked of the cluster
// without it), and sorted, paged and encoded without it. It is called
// without s.mu.
func (s *Server) listRooms(ss *session, c protocol.Command) {
	var infos []protocol.RoomInfo
	if cl := s.opts.Cluster; cl != nil {
		all, err := cl.Rooms()
		if err != nil {
			s.log.Error("Reading presence from the cluster failed", "err", err)
			s.locked(func() {
				s.fail(ss, protocol.CodeClusterDown, "can't list the rooms right now: the cluster is unreachable")
			})
			return
		}
		s.locked(func() {
			for folded, nicks := range all {
				info := protocol.RoomInfo{Name: folded, Members: len(nicks)}
				if r := s.rooms[folded]; r != nil {
					info.Name, info.Topic = r.name, r.topic
				}
				infos = append(infos, info)
			}
		})
	} else {
		s.locked(func() {
			infos = make([]protocol.RoomInfo, 0, len(s.rooms))
			for _, r := range s.rooms {
				infos = append(infos, protocol.RoomInfo{Name: r.name, Members: len(r.members), Topic: r.topic})
			}
		})
	}
	slices.SortFunc(infos, func(a, b protocol.RoomInfo) int {
		return strings.Compare(protocol.Fold(a.Name), protocol.Fold(b.Name))
	})
	page, next := pageAfter(infos, func(r protocol.RoomInfo) string { return r.Name }, c.Next, s.opts.MaxListPage)
	s.sendEncoded(ss, &protocol.Event{Type: protocol.TypeRooms, Rooms: page, Next: next})
}

// pageAfter returns up to n of sorted (sorted by the folded names that
// name gives) that come after the name from, and, if more remain, the
// name to go on from.
func pageAfter[T any](sorted []T, name func(T) string, from string, n int) (page []T, next string) {
	start := 0
	if from != "" {
		start, _ = slices.BinarySearchFunc(sorted, protocol.Fold(from), func(x T, f string) int {
			return strings.Compare(protocol.Fold(name(x)), f)
		})
		if start < len(sorted) && protocol.Fold(name(sorted[start])) == protocol.Fold(from) {
			start++
		}
	}
	end := min(start+n, len(sorted))
	if end < len(sorted) {
		next = name(sorted[end-1])
	}
	return sorted[start:end], next
}

// topic carries out /topic, showing or setting it. It is called without
// s.mu.
func (s *Server) topic(ss *session, c protocol.Command) {
	s.mu.Lock()
	room, by, ok := s.topicLocked(ss, c)
	s.mu.Unlock()
	if !ok {
		return
	}
	// On a cluster node: set for every node, without s.mu, since it asks
	// NATS. Every node, this one too, hears of it through topicSet.
	if err := s.opts.Cluster.SetTopic(room, by, c.Text); err != nil {
		s.log.Error("Setting a topic in the cluster failed", "err", err)
		s.locked(func() {
			s.fail(ss, protocol.CodeClusterDown, "can't set the topic right now: the cluster is unreachable")
		})
	}
}

// topicLocked carries out /topic but for setting a topic in a cluster,
// which it leaves to the caller by reporting the room, the setter and
// true. s.mu must be held.
func (s *Server) topicLocked(ss *session, c protocol.Command) (room, by string, cluster bool) {
	if !c.SetTopic {
		if r, ok := s.room(ss, c.Room); ok {
			s.sendTo(ss, &protocol.Event{Type: protocol.TypeTopic, Room: r.name, Text: r.topic})
		}
		return "", "", false
	}
	r, ok := s.joined(ss, c.Room)
	if !ok {
		return "", "", false
	}
	if len(c.Text) > s.opts.MaxTopicBytes {
		s.fail(ss, protocol.CodeTopicTooLong, "a topic is at most %d bytes", s.opts.MaxTopicBytes)
		return "", "", false
	}
	if s.opts.Cluster != nil {
		return r.name, ss.nick, true
	}
	s.topicSetLocked(r, ss.nick, c.Text)
	return "", "", false
}

// topicSetLocked sets r's topic and tells its members. s.mu must be held.
func (s *Server) topicSetLocked(r *room, by, text string) {
	r.topic = text
	s.deliverRoom(r, &protocol.Event{Type: protocol.TypeTopic, Time: now(), Room: r.name, From: by, Text: text})
}
