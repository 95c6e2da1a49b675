package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseText(t *testing.T) {
	tests := []struct {
		line string
		want Command
		err  error
	}{
		{"hello", Command{Name: CmdSay, Text: "hello"}, nil},
		{"//etc/passwd is a path", Command{Name: CmdSay, Text: "/etc/passwd is a path"}, nil},
		{"/nick alice", Command{Name: CmdNick, Nick: "alice"}, nil},
		{"/NICK alice", Command{Name: CmdNick, Nick: "alice"}, nil},
		{"/nick", Command{}, ErrUsage},
		{"/nick two words", Command{}, ErrUsage},
		{"/join #games", Command{Name: CmdJoin, Room: "games"}, nil},
		{"/join", Command{}, ErrUsage},
		{"/part", Command{Name: CmdPart}, nil},
		{"/part games see you", Command{Name: CmdPart, Room: "games", Text: "see you"}, nil},
		{"/rooms", Command{Name: CmdRooms}, nil},
		{"/rooms now", Command{Name: CmdRooms, Next: "now"}, nil},
		{"/rooms #r0", Command{Name: CmdRooms, Next: "r0"}, nil},
		{"/rooms now then", Command{}, ErrUsage},
		{"/who #lobby bob", Command{Name: CmdWho, Room: "lobby", Next: "bob"}, nil},
		{"/who lobby bob carol", Command{}, ErrUsage},
		{"/who", Command{Name: CmdWho}, nil},
		{"/who #lobby", Command{Name: CmdWho, Room: "lobby"}, nil},
		{"/topic", Command{Name: CmdTopic}, nil},
		{"/topic Rust vs Go", Command{Name: CmdTopic, Text: "Rust vs Go", SetTopic: true}, nil},
		{"/msg bob hi there", Command{Name: CmdMsg, Nick: "bob", Text: "hi there"}, nil},
		{"/msg bob", Command{}, ErrUsage},
		{"/me waves", Command{Name: CmdMe, Text: "waves"}, nil},
		{"/me", Command{}, ErrUsage},
		{"/quit", Command{Name: CmdQuit}, nil},
		{"/quit off to bed", Command{Name: CmdQuit, Text: "off to bed"}, nil},
		{"/help", Command{Name: CmdHelp}, nil},
		{"/format json", Command{Name: CmdFormat, Format: "json"}, nil},
		{"/format xml", Command{}, ErrUsage},
		{"/history", Command{Name: CmdHistory}, nil},
		{"/history 50", Command{Name: CmdHistory, Limit: 50}, nil},
		{"/history 50 before 123", Command{Name: CmdHistory, Limit: 50, Before: 123}, nil},
		{"/history before 9", Command{Name: CmdHistory, Before: 9}, nil},
		{"/history lots", Command{}, ErrUsage},
		{"/history 5 after 3", Command{}, ErrUsage},
		{"/resume #lobby 41", Command{Name: CmdResume, Room: "lobby", After: 41}, nil},
		{"/resume lobby", Command{}, ErrUsage},
		{"/dance", Command{}, ErrUnknownCommand},
		{"/", Command{}, ErrUnknownCommand},
	}
	for _, tt := range tests {
		got, err := ParseText(tt.line)
		if !errors.Is(err, tt.err) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseText(%q) = %+v, %v; want %+v, %v", tt.line, got, err, tt.want, tt.err)
		}
	}
}

func TestUsageErrorsCarryTheUsage(t *testing.T) {
	_, err := ParseText("/msg bob")
	if got, want := err.Error(), "usage: /msg NICK TEXT"; got != want {
		t.Fatalf("error = %q; want %q", got, want)
	}
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		line string
		want Command
		err  error
	}{
		{`{"type":"say","text":"hi"}`, Command{Name: CmdSay, Text: "hi"}, nil},
		{`{"type":"say","room":"#games","text":"hi"}`, Command{Name: CmdSay, Room: "games", Text: "hi"}, nil},
		{`{"type":"say"}`, Command{}, ErrUsage},
		{`{"type":"msg","to":"bob","text":"psst"}`, Command{Name: CmdMsg, Nick: "bob", Text: "psst"}, nil},
		{`{"type":"topic","room":"lobby"}`, Command{Name: CmdTopic, Room: "lobby"}, nil},
		{`{"type":"topic","topic":""}`, Command{Name: CmdTopic, SetTopic: true}, nil},
		{`{"type":"quit","reason":"bye"}`, Command{Name: CmdQuit, Text: "bye"}, nil},
		{`{"type":"format","format":"text"}`, Command{Name: CmdFormat, Format: "text"}, nil},
		{`{"type":"nick","nick":"alice","future":true}`, Command{Name: CmdNick, Nick: "alice"}, nil},
		{`{"type":"history","limit":10,"before":5}`, Command{Name: CmdHistory, Limit: 10, Before: 5}, nil},
		{`{"type":"resume","room":"lobby","after":3}`, Command{Name: CmdResume, Room: "lobby", After: 3}, nil},
		{`{"type":"resume","after":3}`, Command{}, ErrUsage},
		{`{"type":"fly"}`, Command{}, ErrUnknownCommand},
		{`{"text":"no type"}`, Command{}, ErrBadJSON},
		{`{"type":"say",`, Command{}, ErrBadJSON},
		{`{"type":"say","text":"a"} {}`, Command{}, ErrBadJSON},
		{`{"type":7}`, Command{}, ErrBadJSON},
		{`{"type":"say","text":"hi\n*** server shutting down"}`, Command{}, ErrBadJSON},
		{`{"type":"say","text":"\u001b[2J"}`, Command{}, ErrBadJSON},
		{`{"type":"topic","topic":"\u009b"}`, Command{}, ErrBadJSON},
		{`{"type":"help"}]`, Command{}, ErrBadJSON},
		{`{"type":"say","text":"tabs\tare fine"}`, Command{Name: CmdSay, Text: "tabs\tare fine"}, nil},
	}
	for _, tt := range tests {
		got, err := DecodeJSON([]byte(tt.line))
		if !errors.Is(err, tt.err) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("DecodeJSON(%s) = %+v, %v; want %+v, %v", tt.line, got, err, tt.want, tt.err)
		}
	}
}

func TestCheckNick(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"alice", nil},
		{"Bob_the-2nd", nil},
		{"", ErrNameLength},
		{strings.Repeat("a", 25), ErrNameLength},
		{"al ice", ErrNameChars},
		{"alice:", ErrNameChars},
		{"[pm]", ErrNameChars},
		{"élise", ErrNameChars},
		{"2pac", ErrNameChars},
		{"guest-7", ErrNameReserved},
		{"Server", ErrNameReserved},
		{"n4tter", ErrNameReserved},
		{"Adrnin", ErrNameReserved},
		{"SERV3R", ErrNameReserved},
		{"adm1n", ErrNameReserved},
		{"sys_tem", ErrNameReserved},
	}
	for _, tt := range tests {
		if err := CheckNick(tt.name, 24); !errors.Is(err, tt.err) {
			t.Errorf("CheckNick(%q) = %v; want %v", tt.name, err, tt.err)
		}
	}
}

func TestAppendText(t *testing.T) {
	v := View{Me: "bob", Current: "lobby"}
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Type: TypeMessage, Room: "lobby", From: "alice", Text: "hi"}, "alice: hi\n"},
		{Event{Type: TypeMessage, Room: "games", From: "alice", Text: "gg"}, "[#games] alice: gg\n"},
		{Event{Type: TypeAction, Room: "LOBBY", From: "alice", Text: "waves"}, "* alice waves\n"},
		{Event{Type: TypePrivate, From: "alice", To: "bob", Text: "psst"}, "[pm] alice: psst\n"},
		{Event{Type: TypePrivate, From: "bob", To: "alice", Text: "psst"}, "[pm to alice] bob: psst\n"},
		{Event{Type: TypeJoin, Room: "games", Nick: "alice"}, "*** alice joined #games\n"},
		{Event{Type: TypePart, Room: "games", Nick: "alice", Reason: "bye"}, "*** alice left #games (bye)\n"},
		{Event{Type: TypeQuit, Nick: "alice"}, "*** alice quit\n"},
		{Event{Type: TypeNick, Old: "guest-7", Nick: "alice"}, "*** guest-7 is now alice\n"},
		{Event{Type: TypeRooms, Rooms: []RoomInfo{{Name: "lobby", Members: 2}, {Name: "games", Members: 1}}}, "*** rooms: #lobby (2), #games (1)\n"},
		{Event{Type: TypeWho, Room: "lobby", Members: []string{"alice", "bob"}}, "*** in #lobby (2): alice, bob\n"},
		{Event{Type: TypeError, Text: "usage: /me ACTION"}, "*** error: usage: /me ACTION\n"},
		{Event{Type: TypeHelp, Commands: []string{"/a - x", "/b - y"}}, "*** /a - x\n*** /b - y\n"},
		{Event{Type: TypeMessage, Seq: 7, History: true, Room: "lobby", From: "alice", Text: "old"}, "[history 7] alice: old\n"},
		{Event{Type: TypeMessage, Seq: 7, History: true, Room: "games", From: "alice", Text: "old"}, "[history #games 7] alice: old\n"},
	}
	for _, tt := range tests {
		if got := string(tt.ev.AppendText(nil, v)); got != tt.want {
			t.Errorf("AppendText(%+v) = %q; want %q", tt.ev, got, tt.want)
		}
	}
}

func TestAppendJSONIsOneLine(t *testing.T) {
	ev := Event{Type: TypeMessage, Room: "lobby", From: "alice", Text: "a \"quoted\"\nline"}
	got := string(ev.AppendJSON(nil))
	want := `{"type":"message","room":"lobby","from":"alice","text":"a \"quoted\"\nline"}` + "\n"
	if got != want {
		t.Fatalf("AppendJSON = %s; want %s", got, want)
	}
}

func TestCommandAppendJSON(t *testing.T) {
	tests := []struct {
		c    Command
		want string // the object, without its newline
	}{
		{Command{Name: CmdSay, Text: "hi"}, `{"type":"say","text":"hi"}`},
		{Command{Name: CmdSay, Room: "games", Text: "<b>&</b>"}, `{"type":"say","room":"games","text":"<b>&</b>"}`},
		{Command{Name: CmdMe, Text: "waves"}, `{"type":"me","text":"waves"}`},
		{Command{Name: CmdMe, Room: "games", Text: "waves"}, `{"type":"me","room":"games","text":"waves"}`},
		{Command{Name: CmdMsg, Nick: "bob", Text: "a \"quoted\" word"}, `{"type":"msg","to":"bob","text":"a \"quoted\" word"}`},
		{Command{Name: CmdNick, Nick: "alice"}, `{"type":"nick","nick":"alice"}`},
		{Command{Name: CmdJoin, Room: "games"}, `{"type":"join","room":"games"}`},
		{Command{Name: CmdJoin, Room: "#games"}, `{"type":"join","room":"##games"}`},
		{Command{Name: CmdPart}, `{"type":"part"}`},
		{Command{Name: CmdPart, Room: "games", Text: "see you"}, `{"type":"part","room":"games","reason":"see you"}`},
		{Command{Name: CmdRooms}, `{"type":"rooms"}`},
		{Command{Name: CmdWho}, `{"type":"who"}`},
		{Command{Name: CmdWho, Room: "lobby"}, `{"type":"who","room":"lobby"}`},
		{Command{Name: CmdTopic}, `{"type":"topic"}`},
		{Command{Name: CmdTopic, Room: "games"}, `{"type":"topic","room":"games"}`},
		{Command{Name: CmdTopic, Text: "Rust vs Go", SetTopic: true}, `{"type":"topic","topic":"Rust vs Go"}`},
		{Command{Name: CmdTopic, SetTopic: true}, `{"type":"topic","topic":""}`},
		{Command{Name: CmdQuit}, `{"type":"quit"}`},
		{Command{Name: CmdQuit, Text: "off to bed"}, `{"type":"quit","reason":"off to bed"}`},
		{Command{Name: CmdHelp}, `{"type":"help"}`},
		{Command{Name: CmdFormat, Format: "text"}, `{"type":"format","format":"text"}`},
		{Command{Name: CmdUpload, Nick: "bob", File: FileOffer{Name: "a b.txt", Size: 0}}, `{"type":"upload","to":"bob","name":"a b.txt","size":0}`},
		{Command{Name: CmdFormat, Format: "json"}, `{"type":"format","format":"json"}`},
		{Command{Name: CmdHistory}, `{"type":"history"}`},
		{Command{Name: CmdHistory, Limit: 50, Before: 123}, `{"type":"history","limit":50,"before":123}`},
		{Command{Name: CmdHistory, Room: "games", Before: 9}, `{"type":"history","room":"games","before":9}`},
		{Command{Name: CmdResume, Room: "lobby"}, `{"type":"resume","room":"lobby"}`},
		{Command{Name: CmdResume, Room: "lobby", After: 18446744073709551615}, `{"type":"resume","room":"lobby","after":18446744073709551615}`},
		{Command{Name: CmdPong}, `{"type":"pong"}`},
		{Command{Name: CmdRegister, Nick: "alice", Password: "correct horse"}, `{"type":"register","nick":"alice","password":"correct horse"}`},
		{Command{Name: CmdLogin, Nick: "alice", Password: "p\"w\\d"}, `{"type":"login","nick":"alice","password":"p\"w\\d"}`},
	}
	covered := make(map[string]bool)
	for _, tt := range tests {
		covered[tt.c.Name] = true
		const prev = "earlier\n"
		out := tt.c.AppendJSON([]byte(prev))
		if !strings.HasPrefix(string(out), prev) {
			t.Fatalf("AppendJSON(%q) overwrote what it appended to", prev)
		}
		if got := string(out[len(prev):]); got != tt.want+"\n" {
			t.Errorf("%+v.AppendJSON = %s; want %s", tt.c, got, tt.want)
		}
		if back, err := DecodeJSON(out[len(prev):]); err != nil || back != tt.c {
			t.Errorf("%+v encoded as %s decodes as %+v, %v", tt.c, out[len(prev):], back, err)
		}
	}
	names := append(CommandNames(), "/"+CmdPong, "/"+CmdSay)
	for _, n := range names {
		if !covered[strings.TrimPrefix(n, "/")] {
			t.Errorf("no AppendJSON test for the command %s", n)
		}
	}
}

func TestCommandAppendJSONLeavesOutUnusedFields(t *testing.T) {
	c := Command{Name: CmdRooms, Nick: "bob", Text: "x", Format: "json", Password: "secret", Limit: 1, After: 2}
	if got, want := string(c.AppendJSON(nil)), `{"type":"rooms"}`+"\n"; got != want {
		t.Fatalf("AppendJSON = %s; want %s", got, want)
	}
}

// TestAppendTextEscapesWhatWouldActOnATerminal checks that no field of an
// event, whoever sent it, can reach a terminal as a control character or a
// line break: each is written as a Go escape, on the one line the event
// renders as.
func TestAppendTextEscapesWhatWouldActOnATerminal(t *testing.T) {
	v := View{Me: "bob", Current: "lobby"}
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Type: TypeMessage, Room: "lobby", From: "alice", Text: "hi\x1b]0;owned\a\x1b[2J\r*** fake"},
			`alice: hi\x1b]0;owned\a\x1b[2J\r*** fake` + "\n"},
		{Event{Type: TypeMessage, Room: "lobby", From: "alice", Text: "one\n*** server shutting down"},
			`alice: one\n*** server shutting down` + "\n"},
		{Event{Type: TypeMessage, Room: "lobby", From: "ali\x08\x08\x08\x08\x08mallory", Text: "tab\tstays"},
			`ali\b\b\b\b\bmallory: tab` + "\t" + "stays\n"},
		{Event{Type: TypeAction, Room: "g\u0085ames", From: "alice", Text: "del\x7f nul\x00 esc\x1b vt\v ff\f"},
			`[#g\u0085ames] * alice del\x7f nul\x00 esc\x1b vt\v ff\f` + "\n"},
		{Event{Type: TypePrivate, From: "alice", To: "bob", Text: "csi\u009b2J txt.\u202eexe \u2066x\u2069 \u2028\u2029"},
			`[pm] alice: csi\u009b2J txt.\u202eexe \u2066x\u2069 \u2028\u2029` + "\n"},
		{Event{Type: TypeMessage, Room: "lobby", From: "alice", Text: "not utf-8: \x9b\xff"},
			`alice: not utf-8: \x9b\xff` + "\n"},
		{Event{Type: TypeTopic, Room: "games", Text: "a\r\n*** alice is now root"},
			`*** topic of #games: a\r\n*** alice is now root` + "\n"},
		{Event{Type: TypeRooms, Rooms: []RoomInfo{{Name: "x\ny", Members: 1}}}, `*** rooms: #x\ny (1)` + "\n"},
		{Event{Type: TypeWho, Room: "lobby", Members: []string{"a\x07", "b"}}, `*** in #lobby (2): a\a, b` + "\n"},
		{Event{Type: TypeQuit, Nick: "alice", Reason: "bye\n*** bob quit"}, `*** alice quit (bye\n*** bob quit)` + "\n"},
		{Event{Type: TypeHelp, Commands: []string{"/a\n*** /b", "/c\x1b[31m"}}, `*** /a\n*** /b` + "\n" + `*** /c\x1b[31m` + "\n"},
		{Event{Type: TypeNotice, Text: "\x1b[1A\x1b[2K*** alice: (edited)"}, `*** \x1b[1A\x1b[2K*** alice: (edited)` + "\n"},
		{Event{Type: TypeWelcome, Nick: "x\ny", Commands: []string{"/nick\r"}},
			`*** Welcome, x\ny! You are in no room. Type a line to chat; commands: /nick\r. Limits: lines of 0 bytes, nicknames of 0 characters, room names of 0 characters, 0 rooms per client, 0 members per room.` + "\n"},
	}
	for _, tt := range tests {
		const prev = "earlier\x1b\n"
		got := string(tt.ev.AppendText([]byte(prev), v))
		if got != prev+tt.want {
			t.Errorf("AppendText(%+v) = %q; want %q", tt.ev, got, prev+tt.want)
		}
	}
}
