package chat

import (
	"slices"
	"strings"

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

// nicks returns the members' nicknames, sorted case-insensitively.
func (r *room) nicks() []string {
	nicks := make([]string, 0, len(r.members))
	for ss := range r.members {
		nicks = append(nicks, ss.nick)
	}
	slices.SortFunc(nicks, func(a, b string) int {
		return strings.Compare(protocol.Fold(a), protocol.Fold(b))
	})
	return nicks
}

// itemFor returns the queue item carrying the event to ss. Server.mu must
// be held.
func (d *delivery) itemFor(ss *session) item {
	// A numbered message, live or replayed, carries its room and number.
	return item{b: d.bytesFor(ss), room: d.ev.Room, seq: d.ev.Seq}
}

// delivery is one event on its way to many sessions. It encodes the event
// at most once per form it is needed in (JSON; text for readers whose
// current room is the event's room; text for the others), never once per
// receiver, and the receivers share those bytes.
type delivery struct {
	ev   *protocol.Event
	json []byte
	text [2][]byte // [0]: in the reader's current room (or no room); [1]: another room
}

// bytesFor returns the encoding of the event for ss. Server.mu must be
// held.
func (d *delivery) bytesFor(ss *session) []byte {
	if ss.jsonOut.Load() {
		if d.json == nil {
			d.json = d.ev.AppendJSON(nil)
		}
		return d.json
	}
	i, current := 0, ""
	if ss.current != nil {
		current = ss.current.name
	}
	if d.ev.Room != "" && !strings.EqualFold(d.ev.Room, current) {
		i = 1
	}
	if d.text[i] == nil {
		d.text[i] = d.ev.AppendText(nil, protocol.View{Me: ss.nick, Current: current})
	}
	return d.text[i]
}
