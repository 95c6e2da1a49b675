package chat

// This file is the announcement of room events: joins, parts, renames and
// quits, delivered at once to the clients of this server. A cluster node
// also hands each to the cluster's stream, for the other nodes to deliver
// in order with the rooms' messages: the event goes into the commit
// loop's next batch (the outbox), ahead of whatever lines its client sends
// after it, and the node does not deliver its own events again.

import (
	"time"

	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// The outbox's bounds: past either, an event reaches this node's clients
// only (and is counted in natter_events_unpublished_total), rather than
// queued without end while the cluster is slow.
const (
	maxOutbox      = 4096
	maxOutboxBytes = 1 << 20
)

// announces reports whether joins, parts and quits in r are announced to
// its members: whether it has at most AnnounceLimit members (on this
// node). s.mu must be held.
func (s *Server) announces(r *room) bool { return len(r.members) <= s.opts.AnnounceLimit }

// announce queues a join or part of ss in r for r's members, or only for
// ss if r is too large to announce it. s.mu must be held.
func (s *Server) announce(ss *session, r *room, ev *protocol.Event) {
	if !s.announces(r) {
		s.sendTo(ss, ev)
		return
	}
	s.deliverRoom(r, ev)
	s.publish(ev, []*room{r})
}

// announceArrival announces ss's arrival in r to its other members. s.mu
// must be held.
func (s *Server) announceArrival(ss *session, r *room) {
	if !s.announces(r) {
		return
	}
	ev := &protocol.Event{Type: protocol.TypeJoin, Time: now(), Room: r.name, Nick: ss.nick}
	s.deliverRoomExcept(r, ev, ss)
	s.publish(ev, []*room{r})
}

// announceAround queues a rename or quit of ss for everyone who shares
// one of its rooms that in accepts (nil accepts all), and for ss itself
// unless skipSelf. s.mu must be held.
func (s *Server) announceAround(ss *session, ev *protocol.Event, skipSelf bool, in func(*room) bool) {
	s.deliverAround(ss, ev, skipSelf, in)
	if !s.publishes() {
		return
	}
	var rooms []*room
	for _, r := range ss.rooms {
		if in == nil || in(r) {
			rooms = append(rooms, r)
		}
	}
	if len(rooms) > 0 {
		s.publish(ev, rooms)
	}
}

// publishes reports whether room events go to the cluster: on a cluster
// node that can reach it. While it can't, the other nodes' clients don't
// hear of them. s.mu must be held.
func (s *Server) publishes() bool {
	return s.opts.Cluster != nil && !s.clusterDown && !s.clusterStopped
}

// publish queues ev, about a client of this node in rooms and delivered
// here already, for the commit loop's next batch, to reach the other
// nodes; unless the outbox is full, when they don't hear of it. s.mu must
// be held.
func (s *Server) publish(ev *protocol.Event, rooms []*room) {
	if !s.publishes() {
		return
	}
	a := accepted{ev: ev, at: time.Now(), rooms: make([]string, len(rooms))}
	size := len(ev.Nick) + len(ev.Old) + len(ev.Reason)
	for i, r := range rooms {
		a.rooms[i] = r.name
		size += len(r.name)
	}
	if len(s.outbox) >= maxOutbox || s.outboxBytes+size > maxOutboxBytes {
		s.metrics.eventsUnpublished.Inc()
		return
	}
	s.outbox = append(s.outbox, a)
	s.outboxBytes += size
	s.outboxed.Store(true)
	select {
	case s.outboxReady <- struct{}{}:
	default: // the commit loop is woken already
	}
}

// takeOutbox appends the events queued for the cluster to into, and
// empties the outbox.
func (s *Server) takeOutbox(into []accepted) []accepted {
	s.mu.Lock()
	defer s.mu.Unlock()
	into = append(into, s.outbox...)
	clear(s.outbox)
	s.outbox, s.outboxBytes = s.outbox[:0], 0
	s.outboxed.Store(false)
	return into
}

// eventMessage returns the stream form of a room event (see
// history.Message).
func eventMessage(a accepted, t time.Time) history.Message {
	m := history.Message{Room: a.rooms[0], Time: t, Kind: a.ev.Type, From: a.ev.Nick, Text: a.ev.Reason}
	switch a.ev.Type {
	case protocol.TypeNick:
		m.From, m.Text, m.Rooms = a.ev.Old, a.ev.Nick, a.rooms
	case protocol.TypeQuit:
		m.Rooms = a.rooms
	}
	return m
}

// deliverStoredEvent delivers a room event of another node the cluster
// handed back to the members here of its rooms, once each. A join, part
// or quit is not announced in a room too large for it, as on its own
// node; a rename always is. s.mu must be held.
func (s *Server) deliverStoredEvent(m history.Message) {
	ev := &protocol.Event{Type: m.Kind, Time: protocol.Stamp(m.Time), Nick: m.From, Reason: m.Text}
	names := m.Rooms
	switch m.Kind {
	case protocol.TypeJoin, protocol.TypePart:
		ev.Room, names = m.Room, []string{m.Room}
	case protocol.TypeNick:
		ev.Old, ev.Nick, ev.Reason = m.From, m.Text, ""
	}
	rooms := make([]*room, 0, len(names))
	for _, name := range names {
		if r := s.rooms[protocol.Fold(name)]; r != nil {
			rooms = append(rooms, r)
		}
	}
	in := s.announces
	if ev.Type == protocol.TypeNick {
		in = nil
	}
	var seen map[*session]bool
	if len(rooms) > 1 {
		seen = make(map[*session]bool)
	}
	d := newDelivery(ev)
	s.metrics.deliveries.Add(float64(deliverInRooms(&d, rooms, in, seen)))
}
