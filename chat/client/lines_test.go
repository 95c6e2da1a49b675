package client_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/client"
	"github.com/natter-chat/natter/chat/protocol"
)

// largestEvents are the largest events a server with the default limits
// can send, each field as long as the limits allow and made of the
// character encoding/json writes longest ("<" becomes "\u003c").
func largestEvents() []protocol.Event {
	long := func(n int) string { return strings.Repeat("<", n) }
	name := func(i, n int) string { return fmt.Sprintf("r%0*d", n-1, i) }
	rooms := make([]protocol.RoomInfo, chat.DefaultMaxRooms)
	for i := range rooms {
		rooms[i] = protocol.RoomInfo{Name: name(i, chat.DefaultMaxRoomNameLength), Members: chat.DefaultMaxClients,
			Topic: long(chat.DefaultMaxTopicBytes)}
	}
	members := make([]string, chat.DefaultMaxClients) // all in the lobby
	for i := range members {
		members[i] = name(i, chat.DefaultMaxNickLength)
	}
	return []protocol.Event{
		{Type: protocol.TypeRooms, Rooms: rooms},
		{Type: protocol.TypeWho, Room: protocol.DefaultRoom, Members: members},
		{Type: protocol.TypeMessage, Room: name(0, chat.DefaultMaxRoomNameLength), Seq: 1<<64 - 1,
			From: name(0, chat.DefaultMaxNickLength), Text: long(chat.DefaultMaxLineBytes), Time: "2026-11-26T08:21:42.031Z"},
	}
}

func TestMaxServerLineBytesHoldsTheLargestEvents(t *testing.T) {
	for _, ev := range largestEvents() {
		// Room to spare, for servers with larger limits and for clusters,
		// whose /rooms and /who span every node.
		const spare = 8
		if n := len(ev.AppendJSON(nil)) - 1; n*spare > client.MaxServerLineBytes {
			t.Errorf("the largest %s event is %d bytes: %d times that is over MaxServerLineBytes, %d", ev.Type, n, spare, client.MaxServerLineBytes)
		}
	}
}

func TestRunShowsTheLargestEvents(t *testing.T) {
	c, s := dial(t, newPipes(), "", func(s *server) { s.greet("guest-1", nil) })
	out := &output{}
	input, done := run(c, out)
	defer func() {
		input.Close()
		s.conn.Close()
		wait(t, done)
	}()
	for _, ev := range largestEvents() {
		go s.conn.Write(ev.AppendJSON(nil)) // as the client reads it
		want := string(ev.AppendText(nil, protocol.View{Me: "guest-1", Current: protocol.DefaultRoom}))
		out.waitFor(t, want)
	}
}

func TestRunReportsTheLinesItCantTake(t *testing.T) {
	c, s := dial(t, newPipes(), "", func(s *server) { s.greet("guest-1", nil) })
	out := &output{}
	input, done := run(c, out)
	go func() {
		io.WriteString(s.conn, `{"type":"notice","text":"`+strings.Repeat("x", client.MaxServerLineBytes)+`"}`+"\n")
		io.WriteString(s.conn, "a text line with a \x1b[2J control character\n")
		io.WriteString(s.conn, `{"type":"notice","text":"a raw C1 control: `+"\u009b"+`2J"}`+"\n")
		io.WriteString(s.conn, "not UTF-8: \xff\n")
		s.conn.Write((&protocol.Event{Type: protocol.TypeNotice, Text: "the end"}).AppendJSON(nil))
	}()
	// Reading MaxServerLineBytes takes seconds with the race detector.
	out.waitForWithin(t, "*** the end\n", 30*time.Second)
	want := fmt.Sprintf("*** skipped a line from the server: line too long (the limit is %d bytes)\n", client.MaxServerLineBytes) +
		"*** skipped a line from the server: line contains a control character\n" +
		"*** skipped a line from the server: line contains a control character\n" +
		"*** skipped a line from the server: line is not valid UTF-8\n" +
		"*** the end\n"
	if got := out.String(); !strings.HasSuffix(got, want) {
		t.Errorf("Run printed %q; want it to end with %q", got, want)
	}
	endInput(t, input, s, done)
}
