package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/natter-chat/natter/chat/line"
	"github.com/natter-chat/natter/chat/protocol"
)

// commands are the command names these tests know the arguments of.
var commands = []string{
	protocol.CmdSay, protocol.CmdMe, protocol.CmdMsg, protocol.CmdNick,
	protocol.CmdJoin, protocol.CmdPart, protocol.CmdRooms, protocol.CmdWho,
	protocol.CmdTopic, protocol.CmdQuit, protocol.CmdHelp, protocol.CmdFormat,
	protocol.CmdHistory, protocol.CmdResume, protocol.CmdPong,
}

// isCommand reports whether name is a command: one of the above, or one
// added since that has a usage.
func isCommand(name string) bool {
	return slices.Contains(commands, name) || protocol.Usage(name) != ""
}

// checkFields checks that a parsed command sets only the fields its command
// uses, and the fields it needs. room tells whether any command may carry a
// room (the JSON form reads "room" for every command). It reports false for
// a command whose arguments these tests don't know.
func checkFields(t *testing.T, input any, c protocol.Command, room bool) bool {
	t.Helper()
	rest := c
	rest.Name = ""
	if room {
		rest.Room = ""
	}
	switch c.Name {
	case protocol.CmdSay:
		rest.Room, rest.Text = "", ""
	case protocol.CmdMe:
		rest.Room, rest.Text = "", ""
		if strings.TrimSpace(c.Text) == "" {
			t.Errorf("%q: /me without text: %+v", input, c)
		}
	case protocol.CmdMsg:
		rest.Nick, rest.Text = "", ""
		if c.Nick == "" || strings.TrimSpace(c.Text) == "" {
			t.Errorf("%q: /msg without recipient or text: %+v", input, c)
		}
	case protocol.CmdNick:
		rest.Nick = ""
		if c.Nick == "" {
			t.Errorf("%q: /nick without a name: %+v", input, c)
		}
	case protocol.CmdJoin:
		rest.Room = ""
	case protocol.CmdWho:
		rest.Room, rest.Next = "", ""
	case protocol.CmdPart:
		rest.Room, rest.Text = "", ""
	case protocol.CmdQuit:
		rest.Text = ""
	case protocol.CmdRooms:
		rest.Next = ""
	case protocol.CmdHelp, protocol.CmdPong:
	case protocol.CmdTopic:
		rest.Room, rest.Text, rest.SetTopic = "", "", false
		if c.Text != "" && !c.SetTopic {
			t.Errorf("%q: /topic with text that does not set it: %+v", input, c)
		}
	case protocol.CmdFormat:
		rest.Format = ""
		if _, ok := protocol.ParseFormat(c.Format); !ok {
			t.Errorf("%q: /format with format %q", input, c.Format)
		}
	case protocol.CmdHistory:
		rest.Limit, rest.Before = 0, 0
		if c.Limit < 0 {
			t.Errorf("%q: /history with a negative limit: %+v", input, c)
		}
	case protocol.CmdResume:
		rest.Room, rest.After = "", 0
	default:
		return false
	}
	if rest != (protocol.Command{}) {
		t.Errorf("%q: %s command sets fields it does not use: %+v", input, c.Name, c)
	}
	return true
}

// checkError checks that err is one of the parse errors. badJSON tells
// whether ErrBadJSON is allowed.
func checkError(t *testing.T, input any, c protocol.Command, err error, badJSON bool) {
	t.Helper()
	if c != (protocol.Command{}) {
		t.Errorf("%q: error %v comes with command %+v", input, err, c)
	}
	var ue *protocol.UsageError
	var ce *protocol.UnknownCommandError
	n := 0
	if errors.Is(err, protocol.ErrUsage) {
		n++
		if !errors.As(err, &ue) || !isCommand(ue.Command) {
			t.Errorf("%q: usage error %v is not a *UsageError for a known command", input, err)
		}
	}
	if errors.Is(err, protocol.ErrUnknownCommand) {
		n++
		if !errors.As(err, &ce) || isCommand(ce.Name) && ce.Name != protocol.CmdSay {
			t.Errorf("%q: unknown-command error %v is not an *UnknownCommandError for an unknown command", input, err)
		}
	}
	if errors.Is(err, protocol.ErrBadJSON) {
		n++
		if !badJSON {
			t.Errorf("%q: text parse returned %v", input, err)
		}
	}
	if n != 1 {
		t.Errorf("%q: error %v (%T) matches %d of the parse errors; want exactly 1", input, err, err, n)
	}
	if err.Error() == "" {
		t.Errorf("%q: error with no message", input)
	}
}

// textForm writes c back in the text form, the way a person would type it.
func textForm(c protocol.Command) string {
	switch c.Name {
	case protocol.CmdSay:
		if strings.HasPrefix(c.Text, "/") {
			return "/" + c.Text
		}
		return c.Text
	case protocol.CmdMe:
		return "/me " + c.Text
	case protocol.CmdMsg:
		return "/msg " + c.Nick + " " + c.Text
	case protocol.CmdNick:
		return "/nick " + c.Nick
	case protocol.CmdJoin:
		return "/join #" + c.Room
	case protocol.CmdPart:
		switch {
		case c.Text != "":
			return "/part #" + c.Room + " " + c.Text
		case c.Room != "":
			return "/part #" + c.Room
		}
		return "/part"
	case protocol.CmdWho:
		switch {
		case c.Next != "":
			return "/who #" + c.Room + " " + c.Next
		case c.Room != "":
			return "/who #" + c.Room
		}
		return "/who"
	case protocol.CmdRooms:
		if c.Next != "" {
			return "/rooms #" + c.Next
		}
		return "/rooms"
	case protocol.CmdTopic:
		if c.SetTopic {
			return "/topic " + c.Text
		}
		return "/topic"
	case protocol.CmdQuit:
		if c.Text != "" {
			return "/quit " + c.Text
		}
		return "/quit"
	case protocol.CmdFormat:
		return "/format " + c.Format
	case protocol.CmdHistory:
		s := "/history"
		if c.Limit != 0 {
			s += " " + strconv.Itoa(c.Limit)
		}
		if c.Before != 0 {
			s += " before " + strconv.FormatUint(c.Before, 10)
		}
		return s
	case protocol.CmdResume:
		return "/resume #" + c.Room + " " + strconv.FormatUint(c.After, 10)
	}
	return "/" + c.Name
}

// jsonForm writes c as a JSON command object, per chat/PROTOCOL.md. A room
// is written with its "#", so a room that itself starts with "#" survives.
func jsonForm(t *testing.T, c protocol.Command) []byte {
	t.Helper()
	m := map[string]any{"type": c.Name}
	if c.Room != "" {
		m["room"] = "#" + c.Room
	}
	switch c.Name {
	case protocol.CmdSay, protocol.CmdMe:
		m["text"] = c.Text
	case protocol.CmdMsg:
		m["to"], m["text"] = c.Nick, c.Text
	case protocol.CmdNick:
		m["nick"] = c.Nick
	case protocol.CmdPart, protocol.CmdQuit:
		m["reason"] = c.Text
	case protocol.CmdTopic:
		if c.SetTopic {
			m["topic"] = c.Text
		}
	case protocol.CmdFormat:
		m["format"] = c.Format
	case protocol.CmdHistory:
		m["limit"], m["before"] = c.Limit, c.Before
	case protocol.CmdResume:
		m["after"] = c.After
	case protocol.CmdWho:
		m["next"] = c.Next
	case protocol.CmdRooms:
		m["next"] = "#" + c.Next
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkAppendJSON checks that c, which DecodeJSON accepts in some form,
// encodes with AppendJSON as one line that decodes back to c.
func checkAppendJSON(t *testing.T, input any, c protocol.Command) {
	t.Helper()
	const prev = "earlier\n"
	out := c.AppendJSON([]byte(prev))
	if !strings.HasPrefix(string(out), prev) {
		t.Fatalf("%q: AppendJSON(%q) overwrote what it appended to", input, prev)
	}
	j := out[len(prev):]
	if bytes.IndexByte(j, '\n') != len(j)-1 {
		t.Fatalf("%q: %+v encoded as %q: want one line ending in \\n", input, c, j)
	}
	if back, err := protocol.DecodeJSON(j); back != c || err != nil {
		t.Fatalf("%q: %+v encoded by AppendJSON as %s decodes as %+v, %v", input, c, j, back, err)
	}
}

func FuzzParseText(f *testing.F) {
	for _, s := range []string{
		"", " ", "hello", "  leading space", "/", "//", "///", "//etc/passwd is a path", "/ nick alice",
		"/nick alice", "/NICK alice", "/Nick  alice  ", "/nick", "/nick two words", "/nick\talice", "/nic\u212a alice",
		"/join #games", "/join games", "/join #", "/join ##x", "/join", "/join a b",
		"/part", "/part games", "/part #games see  you ", "/part # bye", "/part\u00a0x",
		"/rooms", "/rooms now", "/ROOMS ", "/help", "/help me",
		"/who", "/who #lobby", "/who a b", "/who a b c", "/who #lobby #x", "/rooms games", "/rooms #games", "/rooms a b",
		"/topic", "/topic   ", "/topic Rust vs Go", "/topic \u0085x\u0085",
		"/msg bob hi there", "/msg bob", "/msg bob   ", "/msg  bob  hi ", "/msg bob\u00a0hi",
		"/me waves", "/me", "/me  \t", "/me\twaves",
		"/quit", "/quit off to bed", "/quit  ",
		"/format json", "/format JSON", "/format text", "/format xml", "/format", "/format json x",
		"/history", "/history 50", "/history +50", "/history 050 before 0123", "/history 50 before 123", "/history before 9",
		"/history 0", "/history -1", "/history lots", "/history 5 after 3", "/history before", "/history before 0",
		"/history 9223372036854775808", "/history before 18446744073709551616", "/history 1 before 2 before 3",
		"/resume #lobby 41", "/resume lobby", "/resume lobby 0", "/resume # 1", "/resume lobby -1", "/resume lobby 18446744073709551615",
		"/resume lobby 1 2", "/pong", "/PONG ", "/pong 1", "/say hi", "/dance", "/\x00", "/\xff", "/nick \xff", "\xff\xfe", "\x1b[2J", "/me \u202eevil",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := protocol.ParseText(s)
		c2, err2 := protocol.ParseText(s)
		if c != c2 || (err == nil) != (err2 == nil) || err != nil && (err.Error() != err2.Error() || reflect.TypeOf(err) != reflect.TypeOf(err2)) {
			t.Fatalf("ParseText(%q) not deterministic: %+v, %v then %+v, %v", s, c, err, c2, err2)
		}

		switch {
		case !strings.HasPrefix(s, "/"):
			if want := (protocol.Command{Name: protocol.CmdSay, Text: s}); c != want || err != nil {
				t.Fatalf("ParseText(%q) = %+v, %v; want %+v", s, c, err, want)
			}
		case strings.HasPrefix(s, "//"):
			if want := (protocol.Command{Name: protocol.CmdSay, Text: s[1:]}); c != want || err != nil {
				t.Fatalf("ParseText(%q) = %+v, %v; want %+v", s, c, err, want)
			}
		case err == nil && c.Name == protocol.CmdSay:
			t.Fatalf("ParseText(%q) = %+v: a /command parsed as a chat line", s, c)
		}

		if err != nil {
			checkError(t, s, c, err, false)
			var ue *protocol.UsageError
			if errors.As(err, &ue) && protocol.Usage(ue.Command) == "" {
				t.Errorf("ParseText(%q): usage error for %q, which has no usage", s, ue.Command)
			}
			return
		}
		if !isCommand(c.Name) {
			t.Fatalf("ParseText(%q) = %+v: unknown command", s, c)
		}
		if !checkFields(t, s, c, false) {
			return
		}

		// Written back the canonical way, the command parses the same.
		text := textForm(c)
		if back, err := protocol.ParseText(text); back != c || err != nil {
			t.Fatalf("ParseText(%q) = %+v; but its text form %q parses as %+v, %v", s, c, text, back, err)
		}

		// The JSON form of the command decodes to the same command, except
		// where the JSON form is documented to be stricter: "say" needs
		// text that isn't blank, "join" and "resume" a room, and no field
		// may hold a control character (in the text form the line reader
		// refuses those before ParseText sees them).
		if !utf8.ValidString(s) {
			return // JSON strings are UTF-8
		}
		if line.HasControl([]byte(c.Text + c.Room + c.Nick + c.Password + c.Format + c.Next)) {
			if _, err := protocol.DecodeJSON(jsonForm(t, c)); !errors.Is(err, protocol.ErrBadJSON) {
				t.Fatalf("ParseText(%q) = %+v; its JSON form carries a control character, yet DecodeJSON = %v; want ErrBadJSON", s, c, err)
			}
			if _, err := protocol.DecodeJSON(c.AppendJSON(nil)); !errors.Is(err, protocol.ErrBadJSON) {
				t.Fatalf("ParseText(%q) = %+v; AppendJSON carries its control character, yet DecodeJSON = %v; want ErrBadJSON", s, c, err)
			}
			return
		}
		switch {
		case c.Name == protocol.CmdSay && strings.TrimSpace(c.Text) == "",
			(c.Name == protocol.CmdJoin || c.Name == protocol.CmdResume) && c.Room == "":
			return
		}
		j := jsonForm(t, c)
		if back, err := protocol.DecodeJSON(j); back != c || err != nil {
			t.Fatalf("ParseText(%q) = %+v; but its JSON form %s decodes as %+v, %v", s, c, j, back, err)
		}
		checkAppendJSON(t, s, c)
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"type":"say","text":"hi"}`,
		`{"type":"say","room":"#games","text":"hi"}`,
		`{"type":"say","room":"##games","text":"hi"}`,
		`{"type":"say"}`,
		`{"type":"say","text":" \t"}`,
		`{"type":"say","text":"\u0000\u001b[2J\u0085\n*** fake"}`,
		`{"type":"say","text":"\ud800"}`,
		"{\"type\":\"say\",\"text\":\"\xff\"}",
		`{"type":"me","text":"waves"}`,
		`{"type":"msg","to":"bob","text":"psst"}`,
		`{"type":"msg","to":"","text":"psst"}`,
		`{"type":"nick","nick":"alice","future":true}`,
		`{"type":"nick","nick":""}`,
		`{"type":"join","room":"games"}`,
		`{"type":"join","room":"#"}`,
		`{"type":"part","room":"games","reason":"bye"}`,
		`{"type":"rooms"}`,
		`{"type":"who","room":"lobby"}`,
		`{"type":"help"}`,
		`{"type":"pong","room":"x"}`,
		`{"type":"topic","room":"lobby"}`,
		`{"type":"topic","topic":""}`,
		`{"type":"topic","topic":null}`,
		`{"type":"quit","reason":"bye"}`,
		`{"type":"format","format":"text"}`,
		`{"type":"format","format":"JSON"}`,
		`{"type":"history","limit":10,"before":5}`,
		`{"type":"history","limit":-1}`,
		`{"type":"history","limit":1e2}`,
		`{"type":"history","limit":9223372036854775808}`,
		`{"type":"history","before":-1}`,
		`{"type":"resume","room":"lobby","after":3}`,
		`{"type":"resume","after":3}`,
		`{"type":"register","nick":"alice","password":"correct horse"}`,
		`{"type":"login","nick":"alice","password":"<\"&\">","room":"##x"}`,
		`{"type":"fly"}`,
		`{"type":"SAY","text":"x"}`,
		`{"TYPE":"say","Text":"x"}`,
		`{"type":"say","type":"me","text":"x"}`,
		`{"type":""}`,
		`{"text":"no type"}`,
		`{"type":7}`,
		`{"type":"say",`,
		`{"type":"say","text":"a"} {}`,
		`{"type":"help"}]`,
		`{"type":"help"}}`,
		` {"type":"help"} `,
		"\ufeff{\"type\":\"help\"}",
		`{}`, `[]`, `null`, `"say"`, `0`, ``, `{"type":"help","x":[[[[[[[[[[]]]]]]]]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := slices.Clone(b)
		c, err := protocol.DecodeJSON(b)
		if !bytes.Equal(b, in) {
			t.Fatalf("DecodeJSON changed its input %q to %q", in, b)
		}
		c2, err2 := protocol.DecodeJSON(b)
		if c != c2 || (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("DecodeJSON(%q) not deterministic: %+v, %v then %+v, %v", b, c, err, c2, err2)
		}
		if err != nil {
			checkError(t, b, c, err, true)
			return
		}
		if !isCommand(c.Name) {
			t.Fatalf("DecodeJSON(%q) = %+v: unknown command", b, c)
		}
		if rest := bytes.TrimLeft(b, " \t\r\n"); len(rest) == 0 || rest[0] != '{' {
			t.Fatalf("DecodeJSON(%q) = %+v: accepted something that is not an object", b, c)
		}
		// Every command DecodeJSON returns, those whose fields these tests
		// don't know included, survives AppendJSON.
		checkAppendJSON(t, b, c)
		if !checkFields(t, b, c, true) {
			return
		}
		switch c.Name {
		case protocol.CmdSay:
			if strings.TrimSpace(c.Text) == "" {
				t.Fatalf("DecodeJSON(%q) = %+v: say without text", b, c)
			}
		case protocol.CmdJoin, protocol.CmdResume:
			if c.Room == "" {
				t.Fatalf("DecodeJSON(%q) = %+v: %s without a room", b, c, c.Name)
			}
		}

		// Re-encoded from its fields, the command decodes the same.
		j := jsonForm(t, c)
		if back, err := protocol.DecodeJSON(j); back != c || err != nil {
			t.Fatalf("DecodeJSON(%q) = %+v; but re-encoded as %s it decodes as %+v, %v", b, c, j, back, err)
		}
	})
}

// eventTypes are every event type, and one this version does not know.
var eventTypes = []string{
	protocol.TypeWelcome, protocol.TypeMessage, protocol.TypeAction, protocol.TypePrivate,
	protocol.TypeJoin, protocol.TypePart, protocol.TypeQuit, protocol.TypeNick,
	protocol.TypeTopic, protocol.TypeCurrent, protocol.TypeRooms, protocol.TypeWho,
	protocol.TypeHelp, protocol.TypeFormat, protocol.TypeMissed, protocol.TypeHistory,
	protocol.TypeResumed, protocol.TypePing, protocol.TypeNotice, protocol.TypeError, "x-future",
}

// sender returns name if it can be a client's nickname (a chosen one, or a
// guest name the server gave), or else def.
func sender(name, def string) string {
	if protocol.CheckNick(name, 24) == nil {
		return name
	}
	if n, ok := strings.CutPrefix(name, protocol.GuestPrefix); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		return name
	}
	return def
}

// clientText makes s what any text field of an event can be: UTF-8, as
// JSON strings are. A natter server's events hold no control characters,
// but anyone else's may, line breaks included.
func clientText(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

// unsafeToPrint reports whether AppendText must escape r: a control
// character but tab, a line or paragraph separator, or a bidirectional
// embedding, override or isolate.
func unsafeToPrint(r rune) bool {
	return r < 0x20 && r != '\t' || r >= 0x7f && r <= 0x9f || r >= 0x2028 && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// escaped is s as AppendText writes it: each rune unsafe to print as in a
// Go rune literal.
func escaped(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unsafeToPrint(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ty is the fuzz argument that selects the event type named.
func ty(name string) uint8 { return uint8(slices.Index(eventTypes, name)) }

func FuzzAppendText(f *testing.F) {
	for i := range eventTypes {
		f.Add(uint8(i), "alice", "bob", "carol", "guest-7", "games", "some *** text", "a reason", uint64(41), 2, uint8(2), "bob", "lobby", "alice,bob")
	}
	f.Add(ty(protocol.TypeMessage), "alice", "bob", "carol", "guest-7", "lobby", "hi", "bye", uint64(7), 3, uint8(0), "bob", "lobby", "alice,bob")
	f.Add(ty(protocol.TypeMessage), "alice", "bob", "carol", "guest-7", "games", "*** server shutting down", "", uint64(7), 3, uint8(1), "bob", "lobby", "")
	f.Add(ty(protocol.TypeAction), "guest-12", "", "", "", "LOBBY", "\r*** fake", "", uint64(0), 0, uint8(1), "", "lobby", "")
	f.Add(ty(protocol.TypeMessage), "alice", "", "", "", "games", "gg", "", uint64(0), 0, uint8(0), "bob", "lobby", "")
	f.Add(ty(protocol.TypeAction), "alice", "", "", "", "games", "waves", "", uint64(3), 0, uint8(1), "bob", "", "")
	f.Add(ty(protocol.TypePrivate), "bob", "alice", "", "", "", "[pm] carol: psst", "", uint64(0), 0, uint8(0), "BOB", "", "")
	f.Add(ty(protocol.TypePrivate), "alice", "bob", "", "", "", "alice: x", "", uint64(0), 0, uint8(0), "bob", "", "")
	f.Add(ty(protocol.TypeWelcome), "", "", "alice", "", "lobby", "", "", uint64(0), 4096, uint8(0), "alice", "lobby", "")
	f.Add(ty(protocol.TypeTopic), "alice", "", "", "", "games", "new topic", "", uint64(0), 0, uint8(0), "bob", "lobby", "")
	f.Add(ty(protocol.TypeRooms), "", "", "", "", "", "", "topic", uint64(0), 2, uint8(0), "", "", "games,lobby,bad room")
	f.Add(ty(protocol.TypeHelp), "", "", "", "", "", "/nick NAME - change|/help - list|", "", uint64(0), 0, uint8(0), "", "", "")
	f.Add(ty(protocol.TypeMissed), "", "", "", "", "lobby", "", "", uint64(50), 10, uint8(2), "", "", "")
	f.Add(ty(protocol.TypeResumed), "", "", "", "", "lobby", "", "", uint64(106), 100, uint8(6), "", "", "")
	f.Add(ty(protocol.TypeMessage), "alice", "", "", "", "lobby", "\x1b]0;owned\a\r\n*** fake \u202etxt.exe \u0085\u2028", "", uint64(3), 0, uint8(0), "bob", "lobby", "")
	f.Add(ty(protocol.TypeHelp), "", "", "", "", "", "/a\n*** /b|/c\x1b[31m", "", uint64(0), 0, uint8(0), "", "", "")
	f.Add(ty("x-future"), "\u2028", "x\x00", "<&>", "", "bad room", "\x1b[2J\xff", "\u0085", uint64(1<<63), -1, uint8(7), "\xff", "\n", "a\nb")
	f.Fuzz(func(t *testing.T, typ uint8, from, to, nick, old, room, text, reason string,
		seq uint64, count int, flags uint8, me, current, list string) {
		e := protocol.Event{
			Type:    eventTypes[int(typ)%len(eventTypes)],
			Seq:     seq,
			History: flags&1 != 0,
			Time:    clientText(current),
			From:    sender(from, ""),
			To:      sender(to, "bob"),
			Nick:    sender(nick, "carol"),
			Old:     sender(old, "guest-1"),
			Text:    clientText(text),
			Reason:  clientText(reason),
			Code:    clientText(me),
			Count:   count,
			Before:  seq >> 1,
			After:   seq >> 2,
			More:    flags&2 != 0,
			Trimmed: flags&4 != 0,
			Format:  clientText(list),
		}
		if room == "" || protocol.CheckRoom(room, 32) == nil {
			e.Room = room
		} else {
			e.Room = "lobby"
		}
		for _, name := range strings.Split(list, ",") {
			if protocol.CheckRoom(name, 32) == nil {
				e.Rooms = append(e.Rooms, protocol.RoomInfo{Name: name, Members: count, Topic: e.Reason})
			}
			if n := sender(name, ""); n != "" {
				e.Members = append(e.Members, n)
			}
		}
		lines := 1
		switch e.Type {
		case protocol.TypeMessage, protocol.TypeAction, protocol.TypePrivate:
			if e.From == "" {
				e.From = "alice"
			}
		case protocol.TypeWelcome:
			e.Commands = protocol.CommandNames()
			e.Limits = &protocol.Limits{LineBytes: count, NickLength: 24, RoomNameLength: 32, TopicBytes: 300,
				RoomsPerClient: int(flags), RoomMembers: int(seq >> 54), Rooms: 1}
		case protocol.TypeHelp:
			e.Commands = strings.Split(e.Text, "|")
			lines = len(e.Commands)
		}
		v := protocol.View{Me: me, Current: current}

		const prev = "earlier\n"
		out := e.AppendText([]byte(prev), v)
		if !strings.HasPrefix(string(out), prev) {
			t.Fatalf("AppendText(%q) overwrote what it appended to", prev)
		}
		got := string(out[len(prev):])
		if !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != lines {
			t.Fatalf("%+v rendered as %q: want %d lines, each ending in \\n", e, got, lines)
		}
		if !utf8.ValidString(got) || strings.ContainsFunc(strings.ReplaceAll(got, "\n", ""), unsafeToPrint) {
			t.Fatalf("%+v rendered as %q: want UTF-8 with nothing unsafe to print but the line ends", e, got)
		}
		inRoom := ""
		other := e.Room != "" && !strings.EqualFold(e.Room, v.Current)
		switch {
		case e.History && other:
			inRoom = "[history #" + e.Room + " " + strconv.FormatUint(e.Seq, 10) + "] "
		case e.History:
			inRoom = "[history " + strconv.FormatUint(e.Seq, 10) + "] "
		case other:
			inRoom = "[#" + e.Room + "] "
		}
		want := ""
		switch e.Type {
		case protocol.TypeMessage:
			want = inRoom + e.From + ": " + escaped(e.Text) + "\n"
		case protocol.TypeAction:
			want = inRoom + "* " + e.From + " " + escaped(e.Text) + "\n"
		case protocol.TypePrivate:
			if strings.EqualFold(e.From, v.Me) {
				want = "[pm to " + e.To + "] " + e.From + ": " + escaped(e.Text) + "\n"
			} else {
				want = "[pm] " + e.From + ": " + escaped(e.Text) + "\n"
			}
		}
		if want != "" {
			if got != want || strings.HasPrefix(got, protocol.SystemPrefix) {
				t.Fatalf("%+v with %+v rendered as %q; want %q", e, v, got, want)
			}
		} else {
			for _, l := range strings.SplitAfter(strings.TrimSuffix(got, "\n"), "\n") {
				if !strings.HasPrefix(l, protocol.SystemPrefix) {
					t.Fatalf("%+v rendered as %q: line %q from the server lacks %q", e, got, l, protocol.SystemPrefix)
				}
			}
		}

		out = e.AppendJSON([]byte(prev))
		if !strings.HasPrefix(string(out), prev) {
			t.Fatalf("AppendJSON(%q) overwrote what it appended to", prev)
		}
		j := out[len(prev):]
		if bytes.IndexByte(j, '\n') != len(j)-1 {
			t.Fatalf("%+v encoded as %q: want one line ending in \\n", e, j)
		}
		if !json.Valid(j) {
			t.Fatalf("%+v encoded as invalid JSON %q", e, j)
		}
		var back protocol.Event
		if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, e) {
			t.Fatalf("%+v encoded as %s, which decodes as %+v, %v", e, j, back, err)
		}
	})
}
