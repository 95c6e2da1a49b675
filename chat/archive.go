package chat

import (
	"errors"
	"slices"
	"time"

	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// accepted is a chat message the server has taken from a client but not yet
// stored or delivered.
type accepted struct {
	room *room
	ev   *protocol.Event // Seq still 0
	from *session
	at   time.Time // when it was accepted
}

// commitLoop stores accepted messages and then delivers them: commit before
// broadcast, so that whatever any client has seen is in the history. It
// takes whatever has queued up while the previous transaction was on disk
// and stores it in one transaction (group commit), so under load many
// messages share one disk sync, and when idle a message waits for no one.
// Messages are delivered in the order they were accepted, which is the
// order of their numbers.
//
// Every TrimInterval it also applies the store's age limit, one small
// transaction at a time between commits, so trimming a large backlog never
// holds up live messages for long. It returns when s.commits is closed and
// drained.
func (s *Server) commitLoop() {
	batch := make([]accepted, 0, s.opts.CommitBatch)
	msgs := make([]history.Message, 0, s.opts.CommitBatch)
	tick := time.NewTicker(s.opts.TrimInterval)
	defer tick.Stop()
	trimming := false
	for {
		var (
			first accepted
			ok    bool
		)
		if trimming {
			select {
			case first, ok = <-s.commits:
			default:
				trimming = s.trimStep()
				continue
			}
		} else {
			select {
			case first, ok = <-s.commits:
			case <-tick.C:
				trimming = true
				continue
			}
		}
		if !ok {
			return
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < cap(batch) {
			select {
			case a, ok := <-s.commits:
				if !ok {
					break fill
				}
				batch = append(batch, a)
			default:
				break fill
			}
		}
		s.commit(batch, msgs[:0])
		clear(batch) // let delivered events go
		if trimming {
			trimming = s.trimStep()
		}
	}
}

// commit stores batch in one transaction, then delivers it, or refuses it
// if it could not be stored.
func (s *Server) commit(batch []accepted, msgs []history.Message) {
	for _, a := range batch {
		t, _ := time.Parse(protocol.TimeLayout, a.ev.Time)
		msgs = append(msgs, history.Message{Room: a.room.name, Time: t, Kind: a.ev.Type, From: a.ev.From, Text: a.ev.Text})
	}
	start := time.Now()
	err := s.opts.History.Append(msgs)
	s.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	s.metrics.commitBatch.Observe(float64(len(msgs)))

	s.mu.Lock()
	if err != nil {
		s.log.Error("Storing messages failed; refusing them", "count", len(batch), "err", err)
		why := "your message could not be stored, so it was not sent: %v"
		if errors.Is(err, history.ErrUnconfirmed) {
			why = "your message was not confirmed as stored, so it may not have been sent: %v"
		}
		for _, a := range batch {
			s.fail(a.from, codeStoreError, why, err)
		}
	} else if s.opts.Cluster == nil { // a cluster delivers through deliverStored
		s.batching = true
		for i, a := range batch {
			a.ev.Seq = msgs[i].Seq
			a.room.delivered = msgs[i].Seq
			s.deliverRoom(a.room, a.ev)
			s.metrics.deliverySeconds.Observe(time.Since(a.at).Seconds())
		}
		s.batching = false
		for _, ss := range s.toWake {
			ss.toWake = false
			ss.wake()
		}
		clear(s.toWake)
		s.toWake = s.toWake[:0]
	}
	s.mu.Unlock()
	for _, a := range batch {
		a.from.inflight.Done()
	}
}

// trimBatch bounds the messages one trim transaction removes.
const trimBatch = 1000

// trimStep removes up to trimBatch messages past the store's age limit,
// and reports whether there may be more.
func (s *Server) trimStep() bool {
	n, err := s.opts.History.Trim(time.Now(), trimBatch)
	if err != nil {
		s.log.Error("Trimming history failed", "err", err)
		return false
	}
	return n == trimBatch
}

// deliverStored delivers a message the cluster stored, on this node or
// another, to its room's members here. Messages arrive in the cluster's
// order; one numbered at or below what the room has delivered was replayed
// to its members already.
func (s *Server) deliverStored(m history.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[protocol.Fold(m.Room)]
	if r == nil || m.Seq <= r.delivered {
		return
	}
	r.delivered = m.Seq
	ev := historyEvent(m)
	ev.History, ev.Room = false, r.name
	s.deliverRoom(r, ev)
}

// clusterStatus tells every client that the cluster has been lost, so
// messages are refused (nothing can be sent that the other nodes would
// not see), or that it is back.
func (s *Server) clusterStatus(up bool) {
	ev := &protocol.Event{Type: protocol.TypeNotice, Code: codeClusterDown,
		Text: "the cluster is unreachable: messages can't be sent until it is back"}
	if up {
		ev = &protocol.Event{Type: protocol.TypeNotice, Code: "cluster_back", Text: "the cluster is back: messages can be sent again"}
		s.log.Info("Cluster reachable again")
	} else {
		s.log.Warn("Cluster unreachable; refusing messages until it is back")
	}
	d := delivery{ev: ev}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		ss.enqueue(d.itemFor(ss))
	}
}

// historyEvent turns a stored message into the event that replays it.
func historyEvent(m history.Message) *protocol.Event {
	return &protocol.Event{
		Type: m.Kind, Seq: m.Seq, History: true, Time: protocol.Stamp(m.Time),
		Room: m.Room, From: m.From, Text: m.Text,
	}
}

// openRoom makes a room, its numbering carrying on from its stored
// history. s.mu must be held.
func (s *Server) openRoom(name string) *room {
	r := newRoom(name)
	_, newest, err := s.opts.History.Bounds(name)
	if err != nil {
		s.log.Error("Reading history failed", "room", name, "err", err)
	}
	r.delivered = newest
	if s.opts.Cluster != nil {
		if r.topic, err = s.opts.Cluster.Topic(name); err != nil {
			s.log.Error("Reading a topic from the cluster failed", "room", name, "err", err)
		}
	}
	return r
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
// them.
func (s *Server) replay(ss *session, r *room, msgs []history.Message, err error) bool {
	if err != nil {
		s.log.Error("Reading history failed", "room", r.name, "err", err)
		s.fail(ss, codeStoreError, "the history of #%s can't be read right now", r.name)
		return false
	}
	for _, m := range msgs {
		s.sendTo(ss, historyEvent(m))
	}
	return true
}

// history answers /history: a page of r's messages before c.Before.
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
// replayed, from which to resume again if More is set.
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
