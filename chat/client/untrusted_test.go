package client_test

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/natter-chat/natter/chat/protocol"
)

// hostile are events a server that can't be trusted sends, with control
// characters and line breaks in every field the client renders, and the
// lines the client must print for them.
var hostile = []struct {
	ev   protocol.Event
	want string
}{
	{protocol.Event{Type: protocol.TypeMessage, Room: "lobby", Seq: 1, From: "bob", Text: "hi\x1b]0;owned\a\x1b[2J\r*** fake"},
		`bob: hi\x1b]0;owned\a\x1b[2J\r*** fake`},
	{protocol.Event{Type: protocol.TypeMessage, Room: "lobby", Seq: 2, From: "bob\n*** server", Text: "one\n*** server shutting down"},
		`bob\n*** server: one\n*** server shutting down`},
	{protocol.Event{Type: protocol.TypeAction, Room: "lob\u0085by", Seq: 1, From: "bob", Text: "waves\u009b2J"},
		`[#lob\u0085by] * bob waves\u009b2J`},
	{protocol.Event{Type: protocol.TypePrivate, From: "bob", To: "alice", Text: "see txt.\u202eexe"},
		`[pm] bob: see txt.\u202eexe`},
	{protocol.Event{Type: protocol.TypeTopic, Room: "lobby", From: "bob", Text: "a\r\n*** alice is now root"},
		`*** bob set the topic of #lobby: a\r\n*** alice is now root`},
	{protocol.Event{Type: protocol.TypeWho, Room: "lobby", Members: []string{"bob\x07", "carol\x7f"}},
		`*** in #lobby (2): bob\a, carol\x7f`},
	{protocol.Event{Type: protocol.TypeRooms, Rooms: []protocol.RoomInfo{{Name: "x\x1b[8m", Members: 1}}},
		`*** rooms: #x\x1b[8m (1)`},
	{protocol.Event{Type: protocol.TypePart, Room: "lobby", Nick: "bob", Reason: "bye\x1b[1A"},
		`*** bob left #lobby (bye\x1b[1A)`},
	{protocol.Event{Type: protocol.TypeNick, Old: "bob\b\b\b", Nick: "admin\u2028"},
		`*** bob\b\b\b is now admin\u2028`},
	{protocol.Event{Type: protocol.TypeHelp, Commands: []string{"/nick\n*** you are banned"}},
		`*** /nick\n*** you are banned`},
	{protocol.Event{Type: protocol.TypeNotice, Text: "\x1b[1A\x1b[2K*** alice: (edited)"},
		`*** \x1b[1A\x1b[2K*** alice: (edited)`},
	{protocol.Event{Type: protocol.TypeError, Code: "x", Text: "no\x00pe"},
		`*** error: no\x00pe`},
}

// colorCode is an ANSI colour escape of the client's own.
var colorCode = regexp.MustCompile("\x1b\\[[0-9]+m")

// checkInert checks that out holds no character that would act on a
// terminal rather than print, but the line ends and, with color, the
// client's own colour codes.
func checkInert(t *testing.T, out string, color bool) {
	t.Helper()
	if color {
		out = colorCode.ReplaceAllString(out, "")
	}
	for i, r := range strings.ReplaceAll(out, "\n", "") {
		if r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 || r >= 0x202a && r <= 0x202e || r == 0x2028 || r == 0x2029 || r == utf8.RuneError {
			t.Errorf("output holds %U at %d: %q", r, i, out)
			return
		}
	}
}

// sendEscaped sends ev with every character but printable ASCII escaped
// in its JSON, as JSON allows: encoding/json leaves DEL, C1 and most other
// runes as they are, and a line holding those raw is refused whole.
func (s *server) sendEscaped(ev protocol.Event) {
	s.t.Helper()
	var b strings.Builder
	for _, r := range string(ev.AppendJSON(nil)) {
		if r >= 0x7f {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	if _, err := io.WriteString(s.conn, b.String()); err != nil {
		s.t.Fatal(err)
	}
}

func TestRunEscapesControlCharactersFromTheServer(t *testing.T) {
	for _, color := range []bool{false, true} {
		c, s := dial(t, newPipes(), "", func(s *server) {
			s.greetWith(protocol.Event{Type: protocol.TypeWelcome, Nick: "alice\x1b]2;title\a", Room: protocol.DefaultRoom,
				Commands: []string{"/nick\r\n"}})
		})
		c.Color = color
		out := &output{}
		input, done := run(c, out)
		for _, h := range hostile {
			s.sendEscaped(h.ev)
		}
		s.send(protocol.Event{Type: protocol.TypeNotice, Text: "the end"})
		out.waitFor(t, "the end")
		endInput(t, input, s, done)

		got := out.String()
		checkInert(t, got, color)
		if color {
			got = colorCode.ReplaceAllString(got, "")
		}
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != len(hostile)+2 {
			t.Fatalf("color %v: %d events printed as %d lines; want a line each:\n%s", color, len(hostile)+2, len(lines), got)
		}
		if want := `*** Welcome, alice\x1b]2;title\a! You are in #lobby. Type a line to chat; commands: /nick\r\n. `; !strings.HasPrefix(lines[0], want) {
			t.Errorf("color %v: welcome printed as %q; want it to start %q", color, lines[0], want)
		}
		for i, h := range hostile {
			if lines[i+1] != h.want {
				t.Errorf("color %v: %s event printed as %q; want %q", color, h.ev.Type, lines[i+1], h.want)
			}
		}
	}
}
