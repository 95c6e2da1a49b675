package chat

// This file is the history commands: the replay a joiner gets, /history
// and /resume.

import (
	"slices"

	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// historyEvent turns a stored message into the event that replays it.
func (s *Server) historyEvent(m history.Message) *protocol.Event {
	ev := &protocol.Event{
		Type: m.Kind, Seq: m.Seq, History: true, Time: protocol.Stamp(m.Time),
		Room: m.Room, From: m.From, Text: m.Text,
	}
	if m.File != nil {
		ev.File = s.fileInfo(m.File, false)
	}
	return ev
}

// replayLatest sends ss the latest n messages of r delivered so far, marked
// as history, reading them with s.mu held: for a client arriving in the
// lobby, once. Messages delivered after this arrive live, so there is no
// gap and no duplicate between the two. s.mu must be held.
func (s *Server) replayLatest(ss *session, r *room, n int) {
	if n <= 0 || r.delivered == 0 {
		return
	}
	msgs, err := s.opts.History.Before(r.name, r.delivered+1, n)
	s.replay(ss, r.name, msgs, err, newestFirst)
}

// Which end of a page replay keeps when it must cut the page short.
const (
	newestFirst = true  // a page back in time: /history, and a joiner's replay
	oldestFirst = false // a page forward: /resume
)

// replay sends ss, marked as history, the messages msgs of the room named
// name, in order, as many as fit in half of ss's outbound bytes
// (Options.OutboundBytes) as encoded for ss, and at least one: the newest
// of them if newest is set, else the oldest. So a page never pushes
// itself out of the queue, and leaves room for what arrives meanwhile. It
// returns those it sent. If reading them failed with err it logs it and
// tells ss instead, and reports false. s.mu must be held.
func (s *Server) replay(ss *session, name string, msgs []history.Message, err error, newest bool) ([]history.Message, bool) {
	if err != nil {
		s.log.Error("Reading history failed", "room", name, "err", err)
		s.fail(ss, protocol.CodeStoreError, "the history of #%s can't be read right now", name)
		return nil, false
	}
	items := make([]item, len(msgs))
	first, end := 0, len(msgs) // the page sent is msgs[first:end]
	for size, k := 0, 0; k < len(msgs); k++ {
		i := k
		if newest {
			i = len(msgs) - 1 - k
		}
		d := newDelivery(s.historyEvent(msgs[i]))
		items[i] = d.itemFor(ss)
		size += len(items[i].b)
		if k > 0 && size > s.opts.OutboundBytes/2 {
			if newest {
				first = i + 1
			} else {
				end = i
			}
			break
		}
	}
	for _, it := range items[first:end] {
		ss.enqueue(it)
	}
	s.metrics.deliveries.Add(float64(end - first))
	return msgs[first:end], true
}

// historyRetries bounds how many times a command reads the history again,
// without the server's lock, because what it read went stale before it
// could take the lock; the last try reads with the lock held.
const historyRetries = 3

// latest is what a join reads of a room's history before it takes s.mu:
// the room's newest stored number and up to n messages ending there.
type latest struct {
	newest  uint64
	msgs    []history.Message
	n       int // asked for
	err     error
	skipped uint64 // s.skipped when read
	locked  bool   // read with s.mu held: fresh until it is released
	// topic is the room's topic in a cluster, for a room to be opened,
	// and topics s.topics when it was read.
	topic  string
	topics uint64
}

// readLatest reads the newest n messages of the room named name. It is
// called without s.mu unless locked is set, at a command's last try.
func (s *Server) readLatest(name string, n int, locked bool) *latest {
	l := &latest{n: n, skipped: s.skipped.Load(), topics: s.topics.Load(), locked: locked}
	if !locked {
		l.topic = s.clusterTopic(name)
	}
	_, l.newest, l.err = s.opts.History.Bounds(name)
	if l.err == nil && n > 0 && l.newest > 0 {
		l.msgs, l.err = s.opts.History.Before(name, l.newest+1, n)
	}
	return l
}

// freshFor reports whether l still holds what a joiner of r (nil: a room
// about to be opened) must be replayed: for an open room, every message
// up to what it has delivered; for a new one, its numbering, which only a
// message stored for it while it had no members could have changed.
// s.mu must be held.
func (l *latest) freshFor(s *Server, r *room) bool {
	switch {
	case l.locked, l.err != nil: // an error: nothing to replay, and it is reported
		return true
	case r == nil:
		// Nor may a topic have been set for it meanwhile.
		return s.skipped.Load() == l.skipped && s.topics.Load() == l.topics
	case r.delivered > l.newest:
		return false // delivered since
	case r.delivered == l.newest || len(l.msgs) < l.n:
		return true // what was read ends at r.delivered, or is all there is
	}
	// Stored but not yet delivered when read: the newest delivered message
	// must be among what was read, and then so is every message before it,
	// up to n of them.
	return slices.ContainsFunc(l.msgs, func(m history.Message) bool { return m.Seq == r.delivered })
}

// replayFrom sends ss, marked as history, the messages of l that r has
// delivered, which l is fresh for. s.mu must be held.
func (s *Server) replayFrom(ss *session, r *room, l *latest) {
	msgs := l.msgs
	if i := slices.IndexFunc(msgs, func(m history.Message) bool { return m.Seq > r.delivered }); i >= 0 {
		msgs = msgs[:i] // stored, not yet delivered: they arrive live
	}
	s.replay(ss, r.name, msgs, l.err, newestFirst)
}

// readUnlocked runs read without s.mu and then use with it, again while
// use reports that what was read has gone stale, and at the last try runs
// read with s.mu held (locked set), when use must succeed. It is called
// without s.mu.
func (s *Server) readUnlocked(read func(locked bool), use func() (done bool)) {
	for range historyRetries {
		read(false)
		s.mu.Lock()
		done := use()
		s.mu.Unlock()
		if done {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	read(true)
	use()
}

// joinedNow returns the name of the room named name that ss is in (or of
// its current room), and how far the room has delivered, or fails with a
// reason sent to ss. It is called without s.mu. Nothing but ss's own
// reader, which calls it, moves ss between rooms, so ss is still in the
// room once the caller has read its history.
func (s *Server) joinedNow(ss *session, name string) (string, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.joined(ss, name)
	if !ok {
		return "", 0, false
	}
	return r.name, r.delivered, true
}

// history answers /history: a page of the room's messages before
// c.Before, up to c.Limit of them and as many as fit in half of ss's
// outbound bytes. The page is read without s.mu; messages delivered
// meanwhile reach ss live, so the page is bounded by what the room had
// delivered when asked. It is called without s.mu.
func (s *Server) history(ss *session, c protocol.Command) {
	name, delivered, ok := s.joinedNow(ss, c.Room)
	if !ok {
		return
	}
	n := c.Limit
	if n <= 0 {
		n = max(s.opts.HistoryOnJoin, 1)
	}
	n = min(n, s.opts.MaxHistoryPage)
	before := c.Before
	if before == 0 || before > delivered {
		before = delivered + 1
	}
	msgs, err := s.opts.History.Before(name, before, n)
	// Older ones remain unless this page reached the oldest stored.
	older := false
	if err == nil && len(msgs) > 0 {
		oldest, _, err := s.opts.History.Bounds(name)
		older = err == nil && msgs[0].Seq > oldest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sent, ok := s.replay(ss, name, msgs, err, newestFirst)
	if !ok {
		return
	}
	end := &protocol.Event{Type: protocol.TypeHistory, Room: name, Count: len(sent)}
	if len(sent) > 0 && (older || len(sent) < len(msgs)) {
		end.More, end.Before = true, sent[0].Seq
	}
	s.sendTo(ss, end)
}

// resume answers /resume: the room's messages after c.After, as far as it
// had delivered when asked and at most a page of them (MaxHistoryPage, and
// as many as fit in half of ss's outbound bytes); later ones reach ss
// live. The closing event's Seq is the last message replayed, from which
// to resume again if More is set. It is called without s.mu.
func (s *Server) resume(ss *session, c protocol.Command) {
	name, delivered, ok := s.joinedNow(ss, c.Room)
	if !ok {
		return
	}
	end := &protocol.Event{Type: protocol.TypeResumed, Room: name, After: c.After, Seq: c.After}
	var msgs []history.Message
	var err error
	if c.After < delivered {
		var oldest uint64
		oldest, _, err = s.opts.History.Bounds(name)
		if err == nil {
			msgs, err = s.opts.History.After(name, c.After, s.opts.MaxHistoryPage)
		}
		// Only what had been delivered: later messages are on their way live.
		if i := slices.IndexFunc(msgs, func(m history.Message) bool { return m.Seq > delivered }); i >= 0 {
			msgs = msgs[:i]
		}
		end.Trimmed = oldest > c.After+1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sent, ok := s.replay(ss, name, msgs, err, oldestFirst)
	if !ok {
		return
	}
	if len(sent) > 0 {
		end.Count, end.Seq = len(sent), sent[len(sent)-1].Seq
	}
	end.More = end.Seq < delivered
	s.sendTo(ss, end)
}
