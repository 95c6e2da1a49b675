package chat

// This file is the commit loop: accepted messages are stored, a batch at a
// time, before anyone receives them.

import (
	"errors"
	"sync"
	"time"

	"github.com/natter-chat/natter/chat/files"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// accepted is a chat message the server has taken from a client but not yet
// stored or delivered. Its room is named in ev.Room, and is looked up again
// when the message is delivered. On a cluster node it may be a room event
// instead (see announce.go), with no from, in rooms.
type accepted struct {
	ev    *protocol.Event // Seq still 0
	from  *session
	at    time.Time // when it was accepted
	rooms []string  // a room event's
	// file is a file post's (PostFile): it comes from the file service,
	// not from its sender's reader, which does not wait for it.
	file *files.File
}

// done tells a's sender's reader that a was delivered, or refused.
func (a accepted) done() {
	if a.file == nil {
		a.from.inflight.Done()
	}
}

// pipelineDepth bounds the batches written and waiting to be durable and
// delivered: while the store syncs one, the commit loop goes on writing the
// next ones, up to this many, and one sync carries them all.
const pipelineDepth = 4

// written is a batch on its way through the pipeline: numbered and written
// by commitLoop, made durable by syncLoop and delivered by deliverLoop.
type written struct {
	batch  []accepted
	msgs   []history.Message
	ticket history.Ticket
	err    error     // the Write's, or the Commit's
	start  time.Time // of the Write
	stored time.Time // when the batch was durable (or failed)
}

// commitLoop numbers and writes accepted messages, and hands them on to be
// synced (syncLoop) and then delivered (deliverLoop): commit before
// broadcast, so that whatever any client has seen is in the history. It
// takes whatever has queued up while it was busy and writes it as one
// batch (group commit), so under load many messages share one disk sync,
// and when idle a message waits for no one. With a store that can overlap
// its writes and syncs (history.Pipeliner), the next batches are written
// while the last one syncs. Messages are delivered in the order they were
// accepted, which is the order of their numbers.
//
// Every TrimInterval it also applies the store's age limit, one small
// transaction at a time between batches, so trimming a large backlog never
// holds up live messages for long. It returns when s.commits is closed and
// drained, and the stages after it have delivered everything.
func (s *Server) commitLoop() {
	store := history.Pipeline(s.opts.History)
	free := make(chan *written, pipelineDepth)
	for range pipelineDepth {
		free <- &written{
			batch: make([]accepted, 0, s.opts.CommitBatch),
			msgs:  make([]history.Message, 0, s.opts.CommitBatch),
		}
	}
	// Written batches go to be synced, then delivered: each stage its own
	// goroutine, so that a batch syncs while the one before it is being
	// delivered. A store with nothing to sync (it was durable on Write)
	// has no sync stage.
	pipe := make(chan *written, pipelineDepth)
	toDeliver := pipe
	var stages sync.WaitGroup
	if _, ok := s.opts.History.(history.Pipeliner); ok {
		toDeliver = make(chan *written, pipelineDepth)
		stages.Go(func() {
			defer close(toDeliver)
			syncLoop(store, pipe, toDeliver)
		})
	}
	stages.Go(func() { s.deliverLoop(toDeliver, free) })
	defer func() {
		close(pipe)
		stages.Wait()
	}()

	tick := time.NewTicker(s.opts.TrimInterval)
	defer tick.Stop()
	trimming := false
	warned := false // of unreadable records, this trimming round
	for {
		var (
			first accepted
			ok    bool
		)
		events := false // the outbox has room events for the batch
		if trimming {
			select {
			case first, ok = <-s.commits:
			case <-s.outboxReady:
				events, ok = true, true
			default:
				trimming = s.trimStep(&warned)
				continue
			}
		} else {
			select {
			case first, ok = <-s.commits:
			case <-s.outboxReady:
				events, ok = true, true
			case <-tick.C:
				trimming, warned = true, false
				continue
			}
		}
		w := <-free
		batch := w.batch[:0]
		if !ok {
			// Room events of the last departures still go out.
			if batch = s.takeOutbox(batch); len(batch) > 0 {
				w.batch = batch
				s.write(store, w)
				pipe <- w
			}
			return
		}
		// Whatever a reader sent comes after the events queued before it
		// sent it: a client's rename or join goes ahead of the lines it
		// sent after it. So the outbox is looked at after each receive.
		if s.outboxed.Load() {
			batch = s.takeOutbox(batch)
		}
		if !events {
			batch = append(batch, first)
		}
		if len(batch) == 0 {
			free <- w
			continue // taken by the batch before
		}
	fill:
		for len(batch) < s.opts.CommitBatch {
			select {
			case a, ok := <-s.commits:
				if !ok {
					break fill
				}
				if s.outboxed.Load() {
					batch = s.takeOutbox(batch)
				}
				batch = append(batch, a)
			default:
				break fill
			}
		}
		w.batch = batch
		s.write(store, w)
		pipe <- w
		if trimming {
			trimming = s.trimStep(&warned)
		}
	}
}

// write numbers and writes w's batch, noting in w how it went.
func (s *Server) write(store history.Pipeliner, w *written) {
	msgs := w.msgs[:0]
	for _, a := range w.batch {
		t, _ := time.Parse(protocol.TimeLayout, a.ev.Time)
		if a.from == nil {
			msgs = append(msgs, eventMessage(a, t))
			continue
		}
		m := history.Message{Room: a.ev.Room, Time: t, Kind: a.ev.Type, From: a.ev.From, Text: a.ev.Text}
		if a.file != nil {
			m.File = storedFile(a.file)
		}
		msgs = append(msgs, m)
	}
	w.msgs = msgs
	w.start = time.Now()
	w.ticket, w.err = store.Write(msgs)
	w.stored = time.Now() // unless a sync stage has yet to make it durable
}

// syncLoop takes the batches commitLoop wrote, in order, waits for each to
// be durable, and passes it on. One sync makes every batch written before
// it durable, so the batches behind the first pass through at once. It
// returns when written is closed and drained.
func syncLoop(store history.Pipeliner, written <-chan *written, synced chan<- *written) {
	for w := range written {
		if w.err == nil {
			w.err = store.Commit(w.ticket)
		}
		w.stored = time.Now()
		synced <- w
	}
}

// deliverLoop takes the batches that were stored, or failed to be, in
// order, and delivers each (or refuses it), handing its buffers back on
// free. It returns when pipe is closed and drained.
func (s *Server) deliverLoop(pipe <-chan *written, free chan<- *written) {
	for w := range pipe {
		err := w.err
		s.metrics.commitSeconds.Observe(w.stored.Sub(w.start).Seconds())
		s.metrics.commitBatch.Observe(float64(len(w.msgs)))
		s.settle(w.batch, w.msgs, err)
		clear(w.batch) // let delivered events go
		clear(w.msgs)
		free <- w
	}
}

// settle delivers a batch that was stored, or refuses it if it could not
// be (err). In a cluster the messages come back through deliverStored, on
// every node, to be delivered; until then their senders wait for them
// (awaitDelivery).
func (s *Server) settle(batch []accepted, msgs []history.Message, err error) {
	if err != nil {
		s.log.Error("Storing messages failed; refusing them", "count", len(batch), "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		why := "your message could not be stored, so it was not sent: %v"
		if errors.Is(err, history.ErrUnconfirmed) {
			why = "your message was not confirmed as stored, so it may not have been sent: %v"
		}
		for _, a := range batch {
			if a.from == nil { // a room event, heard here already
				s.metrics.eventsUnpublished.Inc()
				continue
			}
			s.fail(a.from, protocol.CodeStoreError, why, err)
			a.done()
		}
	case s.opts.Cluster != nil:
		for i, a := range batch {
			if a.from != nil && a.file == nil {
				s.awaitDelivery(msgs[i].Seq, a.from, a.at)
			}
		}
	default:
		s.beginBatch()
		for i, a := range batch {
			a.ev.Seq = msgs[i].Seq
			s.deliverNumbered(a.ev)
			s.metrics.deliverySeconds.Observe(time.Since(a.at).Seconds())
			a.done()
		}
		s.endBatch()
	}
}

// trimBatch bounds the messages one trim transaction removes.
const trimBatch = 1000

// trimStep removes up to trimBatch messages past the store's age limit,
// and reports whether there may be more. Records the store skipped because
// it could not read them (history.ErrCorrupt) don't stop the trimming; it
// warns of them unless *warned, and sets *warned.
func (s *Server) trimStep(warned *bool) bool {
	n, err := s.opts.History.Trim(time.Now(), trimBatch)
	if errors.Is(err, history.ErrCorrupt) {
		if !*warned {
			s.log.Warn("Trimming history skipped records it can't read", "err", err)
			*warned = true
		}
		err = nil
	}
	if err != nil {
		s.log.Error("Trimming history failed", "err", err)
		return false
	}
	return n == trimBatch
}
