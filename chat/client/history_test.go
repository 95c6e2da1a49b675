package client_test

import (
	"strings"
	"testing"

	"github.com/natter-chat/natter/chat/protocol"
)

func TestRunStartsItsNumbersOverWhenTheHistoryChanges(t *testing.T) {
	p := newPipes()
	c, s := dial(t, p, "alice", func(s *server) {
		s.greetWith(protocol.Event{Type: protocol.TypeWelcome, Nick: "guest-1", Room: protocol.DefaultRoom, HistoryID: "one"})
		s.expect(`{"type":"nick","nick":"alice"}`)
	})
	c.Reconnect = 2
	out := &output{}
	input, done := run(c, out)

	s.send(protocol.Event{Type: protocol.TypeNick, Old: "guest-1", Nick: "alice"})
	s.send(protocol.Event{Type: protocol.TypeJoin, Room: "games", Nick: "alice"})
	s.send(protocol.Event{Type: protocol.TypeCurrent, Room: "games"})
	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "games", Seq: 12, From: "bob", Text: "gg"})
	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", Seq: 40, From: "bob", Text: "in the lobby"})
	out.waitFor(t, "bob: in the lobby\n")

	// Reconnecting to the same history, the numbers carry on.
	s.conn.Close()
	s = p.accept(t)
	s.greetWith(protocol.Event{Type: protocol.TypeWelcome, Nick: "guest-2", Room: protocol.DefaultRoom, HistoryID: "one"})
	s.expect(`{"type":"nick","nick":"alice"}`)
	s.expect(`{"type":"join","room":"games"}`)
	s.expect(`{"type":"resume","room":"games","after":12}`)
	s.expect(`{"type":"resume","room":"lobby","after":40}`)
	s.expect(`{"type":"join","room":"games"}`)
	s.send(protocol.Event{Type: protocol.TypeNick, Old: "guest-2", Nick: "alice"})
	s.send(protocol.Event{Type: protocol.TypeJoin, Room: "games", Nick: "alice"})
	s.send(protocol.Event{Type: protocol.TypeCurrent, Room: "games"})
	out.waitFor(t, "*** you are now talking in #games\n")

	// Reconnecting to another history, they start over.
	s.conn.Close()
	s = p.accept(t)
	s.greetWith(protocol.Event{Type: protocol.TypeWelcome, Nick: "guest-1", Room: protocol.DefaultRoom, HistoryID: "two"})
	s.expect(`{"type":"nick","nick":"alice"}`)
	s.expect(`{"type":"join","room":"games"}`) // which replays games' latest messages
	s.expect(`{"type":"history","room":"lobby"}`)
	s.expect(`{"type":"join","room":"games"}`)
	out.waitFor(t, protocol.SystemPrefix+"reconnected to server:1\n"+
		protocol.SystemPrefix+"the server's history is not the one before: its messages are numbered anew\n")

	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "games", Seq: 1, From: "bob", Text: "new game", History: true})
	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", Seq: 2, From: "bob", Text: "anyone?", History: true})
	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "games", Seq: 2, From: "bob", Text: "after the restart"})
	// The server has not said the client's current room is games again.
	out.waitFor(t, "[history #games 1] bob: new game\n[history 2] bob: anyone?\n[#games] bob: after the restart\n")
	if n := strings.Count(out.String(), "gg"); n != 1 {
		t.Errorf("message 12 of the first history shown %d times; want once", n)
	}

	endInput(t, input, s, done)
}
