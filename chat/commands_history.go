package chat

// This file is the history commands: the replay a joiner gets, /history
// and /resume.

import (
	"slices"

	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// historyEvent turns a stored message into the event that replays it.
func historyEvent(m history.Message) *protocol.Event {
	return &protocol.Event{
		Type: m.Kind, Seq: m.Seq, History: true, Time: protocol.Stamp(m.Time),
		Room: m.Room, From: m.From, Text: m.Text,
	}
}

// replayLatest sends ss the latest n messages of r delivered so far, marked
// as history. Messages delivered after this arrive live, so there is no gap
// and no duplicate between the two. s.mu must be held.
func (s *Server) replayLatest(ss *session, r *room, n int) {
	if n <= 0 || r.delivered == 0 {
		return
	}
	msgs, err := s.opts.History.Before(r.name, r.delivered+1, n)
	s.replay(ss, r, msgs, err)
}

// replay sends ss the messages msgs of r, marked as history, or, if reading
// them failed with err, logs it and tells ss. It reports whether it sent
// them. s.mu must be held.
func (s *Server) replay(ss *session, r *room, msgs []history.Message, err error) bool {
	if err != nil {
		s.log.Error("Reading history failed", "room", r.name, "err", err)
		s.fail(ss, protocol.CodeStoreError, "the history of #%s can't be read right now", r.name)
		return false
	}
	for _, m := range msgs {
		s.sendTo(ss, historyEvent(m))
	}
	return true
}

// history answers /history: a page of r's messages before c.Before. s.mu
// must be held.
func (s *Server) history(ss *session, c protocol.Command) {
	r, ok := s.joined(ss, c.Room)
	if !ok {
		return
	}
	n := c.Limit
	if n <= 0 {
		n = max(s.opts.HistoryOnJoin, 1)
	}
	n = min(n, s.opts.MaxHistoryPage)
	before := c.Before
	if before == 0 || before > r.delivered {
		before = r.delivered + 1
	}
	msgs, err := s.opts.History.Before(r.name, before, n)
	if !s.replay(ss, r, msgs, err) {
		return
	}
	end := &protocol.Event{Type: protocol.TypeHistory, Room: r.name, Count: len(msgs)}
	if len(msgs) > 0 {
		// Older ones remain unless this page reached the oldest stored.
		if oldest, _, err := s.opts.History.Bounds(r.name); err == nil && msgs[0].Seq > oldest {
			end.More, end.Before = true, msgs[0].Seq
		}
	}
	s.sendTo(ss, end)
}

// resume answers /resume: r's messages after c.After, as far as delivered
// and at most a page of them. The closing event's Seq is the last message
// replayed, from which to resume again if More is set. s.mu must be held.
func (s *Server) resume(ss *session, c protocol.Command) {
	r, ok := s.joined(ss, c.Room)
	if !ok {
		return
	}
	end := &protocol.Event{Type: protocol.TypeResumed, Room: r.name, After: c.After, Seq: c.After}
	if c.After < r.delivered {
		oldest, _, err := s.opts.History.Bounds(r.name)
		var msgs []history.Message
		if err == nil {
			msgs, err = s.opts.History.After(r.name, c.After, s.opts.MaxHistoryPage)
		}
		// Only what has been delivered: later messages are on their way live.
		if i := slices.IndexFunc(msgs, func(m history.Message) bool { return m.Seq > r.delivered }); i >= 0 {
			msgs = msgs[:i]
		}
		if !s.replay(ss, r, msgs, err) {
			return
		}
		if len(msgs) > 0 {
			end.Count, end.Seq = len(msgs), msgs[len(msgs)-1].Seq
		}
		end.Trimmed = oldest > c.After+1
	}
	end.More = end.Seq < r.delivered
	s.sendTo(ss, end)
}
