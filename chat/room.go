package chat

// This file is rooms: who is in which, and where a room's numbering
// carries on from.

import (
	"github.com/natter-chat/natter/chat/protocol"
)

// room is a set of sessions that see each other's messages. Rooms are
// guarded by Server.mu.
type room struct {
	name    string // as first created; looked up case-insensitively
	topic   string
	members map[*session]struct{}
	// delivered is the number of the last message delivered to the
	// members; history up to it is replayed on join, later ones arrive
	// live.
	delivered uint64
}

func newRoom(name string) *room {
	return &room{name: name, members: make(map[*session]struct{})}
}

// openRoom makes a room whose numbering carries on from newest, the
// newest number its stored history holds, with topic, its topic in a
// cluster. s.mu must be held.
func (s *Server) openRoom(name string, newest uint64, topic string) *room {
	r := newRoom(name)
	r.delivered, r.topic = newest, topic
	return r
}

// clusterTopic returns the topic of the room named name in the cluster, or
// "" (on a server that is no cluster node, or logging why it can't be
// read). It asks NATS: it is called without s.mu, but for the rare
// fallback of a command's last try.
func (s *Server) clusterTopic(name string) string {
	if s.opts.Cluster == nil {
		return ""
	}
	t, err := s.opts.Cluster.Topic(name)
	if err != nil {
		s.log.Error("Reading a topic from the cluster failed", "room", name, "err", err)
	}
	return t
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
// the default room. s.mu must be held.
func (s *Server) leaveRoom(ss *session, r *room) {
	delete(r.members, ss)
	if s.opts.Cluster != nil {
		s.opts.Cluster.Leave(r.name, ss.nick)
	}
	if len(r.members) == 0 && r != s.lobby {
		delete(s.rooms, protocol.Fold(r.name))
	}
}
