package chat

// This file is delivery: an event is encoded once per form it is needed
// in and queued, under the server's lock, for everyone who should see it.

import (
	"fmt"
	"strings"

	"github.com/natter-chat/natter/chat/protocol"
)

// delivery is one event on its way to many sessions. It encodes the event
// at most once per form it is needed in (JSON; text for readers whose
// current room is the event's room; text for the others), never once per
// receiver, and the receivers share those bytes.
type delivery struct {
	ev   *protocol.Event
	seq  uint64 // ev.Seq if ev is a numbered room message, else 0
	json []byte
	text [2][]byte // [0]: in the reader's current room (or no room); [1]: another room
}

// newDelivery returns the delivery of ev.
func newDelivery(ev *protocol.Event) delivery {
	return delivery{ev: ev, seq: fetchable(ev)}
}

// fetchable returns ev.Seq if ev is a numbered room message, which a
// client that loses it can fetch again, else 0. A resumed event that says
// there is more is not a message, but losing it would stall the replay, as
// the client asks for the next page when it gets it: it is marked
// (resumeMark) with the number of the next message to fetch, so that losing
// it tells the client to resume from there, not counted as a lost message.
// Other events with a number are not messages to fetch again.
func fetchable(ev *protocol.Event) uint64 {
	switch {
	case ev.Type == protocol.TypeMessage || ev.Type == protocol.TypeAction || ev.Type == protocol.TypeFile && ev.Room != "":
		return ev.Seq
	case ev.Type == protocol.TypeResumed && ev.More:
		return (ev.Seq + 1) | resumeMark
	}
	return 0
}

// resumeMark marks a queued item's seq as a resumed event's, see
// fetchable: message numbers never reach it.
const resumeMark = 1 << 63

// bytesFor returns the encoding of the event for ss. Server.mu must be
// held.
func (d *delivery) bytesFor(ss *session) []byte {
	if ss.jsonOut.Load() {
		if d.json == nil {
			d.json = appendJSON(*d.ev)
		}
		return d.json
	}
	i, v := textView(d.ev, ss)
	if d.text[i] == nil {
		d.text[i] = ss.srv.renderText(d.ev, v)
	}
	return d.text[i]
}

// textView returns which of an event's two text renderings ss takes (0 if
// the event is in ss's current room or in no room, 1 if in another) and
// the view it is rendered for. s.mu must be held.
func textView(ev *protocol.Event, ss *session) (int, protocol.View) {
	i, current := 0, ""
	if ss.current != nil {
		current = ss.current.name
	}
	if ev.Room != "" && !strings.EqualFold(ev.Room, current) {
		i = 1
	}
	return i, protocol.View{Me: ss.nick, Current: current}
}

// appendJSON returns ev encoded as JSON. It takes ev by value because the
// encoder keeps hold of what it encodes: that moves this copy to the heap,
// and only when a JSON client needs it, so an event sent to text clients
// alone (every arrival's welcome) can stay on its sender's stack.
func appendJSON(ev protocol.Event) []byte { return ev.AppendJSON(nil) }

// maxScratch is the largest rendering buffer the server keeps between
// events: room for any ordinary event, not for a rare long one.
const maxScratch = 16 << 10

// renderText returns ev rendered for v in a slice of its own, as long as
// the text. It renders into s.scratch first and copies the result, so
// that one allocation of the right size is made instead of the several,
// and the garbage, of a slice grown from nothing. s.mu must be held.
func (s *Server) renderText(ev *protocol.Event, v protocol.View) []byte {
	s.scratch = ev.AppendText(s.scratch[:0], v)
	b := append([]byte(nil), s.scratch...)
	if cap(s.scratch) > maxScratch {
		s.scratch = nil
	}
	return b
}

// itemFor returns the queue item carrying the event to ss. Server.mu must
// be held.
func (d *delivery) itemFor(ss *session) item {
	// A numbered message, live or replayed, carries its room and number.
	return item{b: d.bytesFor(ss), room: d.ev.Room, seq: d.seq}
}

// sendTo queues ev for ss alone. s.mu must be held.
//
// It encodes ev itself rather than through a delivery, which has nothing
// to share with one receiver: the compiler can then see that ev is not
// kept, so the caller's event can stay on its stack.
func (s *Server) sendTo(ss *session, ev *protocol.Event) {
	var b []byte
	if ss.jsonOut.Load() {
		b = appendJSON(*ev)
	} else {
		_, v := textView(ev, ss)
		b = s.renderText(ev, v)
	}
	ss.enqueue(item{b: b, room: ev.Room, seq: fetchable(ev)})
	s.metrics.deliveries.Inc()
}

// sendEncoded encodes ev for ss without s.mu, then queues it for ss
// alone. It is for a long reply (a listing), whose encoding must not hold
// up everyone else; ev must not depend on ss's current room or nickname,
// which may change meanwhile. It is called without s.mu.
func (s *Server) sendEncoded(ss *session, ev *protocol.Event) {
	var b []byte
	if ss.jsonOut.Load() {
		b = ev.AppendJSON(nil)
	} else {
		b = ev.AppendText(nil, protocol.View{})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.enqueue(item{b: b})
	s.metrics.deliveries.Inc()
}

// fail sends ss an error event. s.mu must be held.
func (s *Server) fail(ss *session, code, format string, args ...any) {
	s.sendTo(ss, refusal(code, format, args...))
}

// refusal returns an error event.
func refusal(code, format string, args ...any) *protocol.Event {
	return &protocol.Event{Type: protocol.TypeError, Code: code, Text: fmt.Sprintf(format, args...)}
}

// deliverRoom queues ev for every member of r. s.mu must be held.
func (s *Server) deliverRoom(r *room, ev *protocol.Event) { s.deliverRoomExcept(r, ev, nil) }

// deliverRoomExcept queues ev for every member of r but except (nil for
// none). s.mu must be held.
func (s *Server) deliverRoomExcept(r *room, ev *protocol.Event, except *session) {
	d := newDelivery(ev)
	n := 0
	for ss := range r.members {
		if ss != except {
			ss.enqueue(d.itemFor(ss))
			n++
		}
	}
	s.metrics.deliveries.Add(float64(n))
}

// deliverAll queues ev for every client. s.mu must be held.
func (s *Server) deliverAll(ev *protocol.Event) {
	d := newDelivery(ev)
	for ss := range s.sessions {
		ss.enqueue(d.itemFor(ss))
	}
	s.metrics.deliveries.Add(float64(len(s.sessions)))
}

// deliverNumbered delivers a stored, numbered message to the members of
// its room, resolved by name now rather than when the message was
// accepted: a room emptied and made anew in between is the room its
// members are in. A message numbered at or below what the room has
// delivered was in the history when the room was opened, and replayed to
// whoever joined it, so it is not delivered again. s.mu must be held.
func (s *Server) deliverNumbered(ev *protocol.Event) {
	r := s.rooms[protocol.Fold(ev.Room)]
	if r == nil {
		s.skipped.Add(1)
		return
	}
	if ev.Seq <= r.delivered {
		return
	}
	r.delivered = ev.Seq
	ev.Room = r.name
	s.deliverRoom(r, ev)
}

// beginBatch makes the deliveries that follow, until endBatch, wake each
// receiver's writer once, at endBatch, rather than once per event, so a
// batch goes out in one write per receiver (of up to maxWriteBytes). s.mu
// must be held.
func (s *Server) beginBatch() { s.batching = true }

// endBatch wakes the writer of every receiver of the batch. s.mu must be
// held.
func (s *Server) endBatch() {
	s.batching = false
	for _, ss := range s.toWake {
		ss.toWake = false
		ss.wake()
	}
	clear(s.toWake)
	s.toWake = s.toWake[:0]
}

// deliverAround queues ev once for everyone who shares a room with ss, and
// for ss itself unless skipSelf. Only the rooms that in accepts count;
// a nil in accepts every room. s.mu must be held.
func (s *Server) deliverAround(ss *session, ev *protocol.Event, skipSelf bool, in func(*room) bool) {
	d := newDelivery(ev)
	seen := map[*session]bool{ss: true}
	n := 0
	if !skipSelf {
		ss.enqueue(d.itemFor(ss))
		n++
	}
	n += deliverInRooms(&d, ss.rooms, in, seen)
	s.metrics.deliveries.Add(float64(n))
}

// deliverInRooms queues d once for every member of the rooms that in
// accepts (nil accepts all) not in seen, marking each seen, and returns
// how many it queued d for. A nil seen is for one room, where no one is
// met twice. s.mu must be held.
func deliverInRooms(d *delivery, rooms []*room, in func(*room) bool, seen map[*session]bool) int {
	n := 0
	for _, r := range rooms {
		if in != nil && !in(r) {
			continue
		}
		for m := range r.members {
			if seen != nil {
				if seen[m] {
					continue
				}
				seen[m] = true
			}
			m.enqueue(d.itemFor(m))
			n++
		}
	}
	return n
}
