package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Command names, shared by the text form ("/join games") and the JSON form
// ({"type":"join","room":"games"}). Say is a plain chat line.
const (
	CmdSay      = "say"
	CmdMe       = "me"
	CmdMsg      = "msg"
	CmdNick     = "nick"
	CmdJoin     = "join"
	CmdPart     = "part"
	CmdRooms    = "rooms"
	CmdWho      = "who"
	CmdTopic    = "topic"
	CmdQuit     = "quit"
	CmdHelp     = "help"
	CmdFormat   = "format"
	CmdHistory  = "history"
	CmdResume   = "resume"
	CmdPong     = "pong"
	CmdRegister = "register"
	CmdLogin    = "login"
	CmdUpload   = "upload"
)

// Command is one request from a client, parsed from either format.
type Command struct {
	Name string // one of the Cmd constants

	Room   string // join, part, who, topic; say and me (empty: the current room)
	Nick   string // nick; msg (the recipient)
	Text   string // say, me, msg, topic (the new topic), quit and part (the reason)
	Format string // format

	// SetTopic tells "/topic" (show it) from "/topic TEXT" (set it).
	SetTopic bool

	Password string // register, login

	Limit  int    // history: how many messages (0: the server's default)
	Before uint64 // history: only messages numbered below this (0: the newest)
	After  uint64 // resume: only messages numbered above this

	Next string // rooms, who: list from after this name, a page's Next ("": from the start)

	File FileOffer // upload; Nick names the recipient of a private file
}

// usage is each command's text form and what it does, in /help order.
var usage = []struct{ name, syntax, help string }{
	{CmdNick, "/nick NAME", "change your nickname"},
	{CmdRegister, "/register NAME PASSWORD", "register NAME as your nickname, with a password of 8 to 72 bytes"},
	{CmdLogin, "/login NAME PASSWORD", "log in to the account NAME and take its nickname"},
	{CmdJoin, "/join ROOM", "join a room (created if new) and talk in it; joining a room you are in switches to it"},
	{CmdPart, "/part [ROOM] [REASON]", "leave a room (default: the current one)"},
	{CmdRooms, "/rooms [FROM]", "list rooms with their member counts, a page at a time (FROM: where the last page said to go on)"},
	{CmdWho, "/who [ROOM] [FROM]", "list the members of a room (default: the current one), a page at a time"},
	{CmdTopic, "/topic [TEXT]", "show, or set, the current room's topic"},
	{CmdMsg, "/msg NICK TEXT", "send a private message"},
	{CmdMe, "/me ACTION", "describe what you are doing"},
	{CmdUpload, "/upload [@NICK] NAME SIZE [SHA256]", "ask for a link to upload a file of SIZE bytes to, shared with the current room (or NICK) once uploaded"},
	{CmdQuit, "/quit [REASON]", "leave the chat"},
	{CmdHelp, "/help", "list the commands"},
	{CmdHistory, "/history [N] [before SEQ]", "show the N messages of the current room before message SEQ (default: the newest)"},
	{CmdResume, "/resume ROOM SEQ", "replay the messages of ROOM after message SEQ"},
	{CmdFormat, "/format text|json", "switch between text and JSON events"},
}

// Usage of commands that /help does not list.
var unlisted = []struct{ name, syntax string }{
	{CmdPong, "/pong"},
	{CmdSay, "TEXT (a line that is not a command; JSON: a non-blank \"text\")"},
}

// Usage returns the text syntax of the named command, such as
// "/msg NICK TEXT".
func Usage(name string) string {
	for _, u := range usage {
		if u.name == name {
			return u.syntax
		}
	}
	for _, u := range unlisted {
		if u.name == name {
			return u.syntax
		}
	}
	return ""
}

// CommandNames returns every command's text form ("/nick", ...), in /help
// order.
func CommandNames() []string {
	names := make([]string, len(usage))
	for i, u := range usage {
		names[i] = "/" + u.name
	}
	return names
}

// HelpLines returns one line per command: its syntax and what it does.
func HelpLines() []string {
	lines := make([]string, 0, len(usage)+1)
	for _, u := range usage {
		lines = append(lines, u.syntax+" - "+u.help)
	}
	return append(lines, "//TEXT - send a line that starts with /")
}

// Errors returned by the parsers. A *UsageError also matches ErrUsage.
var (
	ErrUnknownCommand = errors.New("unknown command")
	ErrUsage          = errors.New("wrong arguments")
	ErrBadJSON        = errors.New("not a valid JSON command")
)

// UsageError reports a command with wrong arguments, and its usage.
type UsageError struct {
	Command string // the command name
}

func (e *UsageError) Error() string {
	return fmt.Sprintf("usage: %s", Usage(e.Command))
}

// Is makes errors.Is(err, ErrUsage) true.
func (e *UsageError) Is(target error) bool { return target == ErrUsage }

// UnknownCommandError reports a command name the server does not know.
type UnknownCommandError struct {
	Name string
}

func (e *UnknownCommandError) Error() string {
	return fmt.Sprintf("unknown command /%s; /help lists the commands", e.Name)
}

// Is makes errors.Is(err, ErrUnknownCommand) true.
func (e *UnknownCommandError) Is(target error) bool { return target == ErrUnknownCommand }

// ParseText parses a line in the text format. A line that does not start
// with "/" is a chat line; "//" starts a chat line that begins with "/".
func ParseText(line string) (Command, error) {
	if !strings.HasPrefix(line, "/") {
		return Command{Name: CmdSay, Text: line}, nil
	}
	if strings.HasPrefix(line, "//") {
		return Command{Name: CmdSay, Text: line[1:]}, nil
	}
	name, rest, _ := strings.Cut(line[1:], " ")
	name = strings.ToLower(name)
	rest = strings.TrimSpace(rest)
	first, tail, _ := strings.Cut(rest, " ")
	tail = strings.TrimSpace(tail)
	bad := func() (Command, error) { return Command{}, &UsageError{Command: name} }

	switch name {
	case CmdNick:
		if first == "" || tail != "" {
			return bad()
		}
		return Command{Name: name, Nick: first}, nil
	case CmdJoin:
		if first == "" || tail != "" {
			return bad()
		}
		return Command{Name: name, Room: roomArg(first)}, nil
	case CmdPart:
		// "/part", "/part #room", "/part #room reason", "/part #room" and
		// also "/part reason..." is ambiguous, so a reason needs a room.
		return Command{Name: name, Room: roomArg(first), Text: tail}, nil
	case CmdWho:
		if strings.ContainsAny(tail, " \t") {
			return bad()
		}
		return Command{Name: name, Room: roomArg(first), Next: tail}, nil
	case CmdRooms:
		if tail != "" {
			return bad()
		}
		return Command{Name: name, Next: roomArg(first)}, nil
	case CmdHelp, CmdPong:
		if rest != "" {
			return bad()
		}
		return Command{Name: name}, nil
	case CmdTopic:
		return Command{Name: name, Text: rest, SetTopic: rest != ""}, nil
	case CmdMsg:
		if first == "" || tail == "" {
			return bad()
		}
		return Command{Name: name, Nick: first, Text: tail}, nil
	case CmdRegister, CmdLogin:
		// The password is everything after the name, spaces inside it
		// included, leading and trailing spaces not.
		if first == "" || tail == "" {
			return bad()
		}
		return Command{Name: name, Nick: first, Password: tail}, nil
	case CmdMe:
		if rest == "" {
			return bad()
		}
		return Command{Name: name, Text: rest}, nil
	case CmdQuit:
		return Command{Name: name, Text: rest}, nil
	case CmdFormat:
		if _, ok := ParseFormat(strings.ToLower(first)); !ok || tail != "" {
			return bad()
		}
		return Command{Name: name, Format: strings.ToLower(first)}, nil
	case CmdHistory:
		return parseHistory(strings.Fields(rest))
	case CmdUpload:
		return parseUpload(strings.Fields(rest))
	case CmdResume:
		after, err := strconv.ParseUint(tail, 10, 64)
		if first == "" || err != nil {
			return bad()
		}
		return Command{Name: name, Room: roomArg(first), After: after}, nil
	}
	return Command{}, &UnknownCommandError{Name: name}
}

// parseHistory parses the arguments of "/history [N] [before SEQ]".
func parseHistory(args []string) (Command, error) {
	c := Command{Name: CmdHistory}
	bad := &UsageError{Command: CmdHistory}
	if len(args) > 0 && args[0] != "before" {
		n, err := strconv.Atoi(args[0])
		if err != nil || n <= 0 {
			return Command{}, bad
		}
		c.Limit, args = n, args[1:]
	}
	switch {
	case len(args) == 0:
	case len(args) == 2 && args[0] == "before":
		seq, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil || seq == 0 {
			return Command{}, bad
		}
		c.Before = seq
	default:
		return Command{}, bad
	}
	return c, nil
}

// roomArg accepts a room written with or without its "#".
func roomArg(s string) string { return strings.TrimPrefix(s, "#") }

// jsonCommand is the JSON form of a command, read by DecodeJSON and
// written by AppendJSON. An absent field decodes as its zero value, so
// AppendJSON leaves out zero fields.
type jsonCommand struct {
	Type     string  `json:"type"`
	Room     string  `json:"room,omitempty"`
	Nick     string  `json:"nick,omitempty"`
	To       string  `json:"to,omitempty"`
	Text     string  `json:"text,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	Format   string  `json:"format,omitempty"`
	Topic    *string `json:"topic,omitempty"`
	Password string  `json:"password,omitempty"`
	Limit    int     `json:"limit,omitempty"`
	Next     string  `json:"next,omitempty"`
	Before   uint64  `json:"before,omitempty"`
	After    uint64  `json:"after,omitempty"`
	Name     string  `json:"name,omitempty"`
	Size     *int64  `json:"size,omitempty"`
	SHA256   string  `json:"sha256,omitempty"`
}

// AppendJSON appends c in the JSON format, as one object and a newline,
// and returns the extended buffer. DecodeJSON parses what it writes back
// into c, for every Command that DecodeJSON returns: the object carries
// the fields c.Name's command uses, and Room for every command, as
// DecodeJSON reads it for every command. Fields the command does not use
// are left out.
//
// AppendJSON checks nothing: a Command DecodeJSON would refuse, such as a
// say without text or a field holding a control character, is encoded as
// it is, for the server to refuse. Bytes of c that are not UTF-8 are
// written as U+FFFD, as encoding/json does.
func (c Command) AppendJSON(b []byte) []byte {
	j := jsonCommand{Type: c.Name, Room: c.Room}
	if strings.HasPrefix(c.Room, "#") {
		// DecodeJSON drops one leading "#", written or not.
		j.Room = "#" + c.Room
	}
	switch c.Name {
	case CmdSay, CmdMe:
		j.Text = c.Text
	case CmdMsg:
		j.To, j.Text = c.Nick, c.Text
	case CmdNick:
		j.Nick = c.Nick
	case CmdRegister, CmdLogin:
		j.Nick, j.Password = c.Nick, c.Password
	case CmdPart, CmdQuit:
		j.Reason = c.Text
	case CmdTopic:
		if c.SetTopic {
			j.Topic = &c.Text
		}
	case CmdFormat:
		j.Format = c.Format
	case CmdHistory:
		j.Limit, j.Before = c.Limit, c.Before
	case CmdResume:
		j.After = c.After
	case CmdWho:
		j.Next = c.Next
	case CmdUpload:
		j.To, j.Name, j.Size, j.SHA256 = c.Nick, c.File.Name, &c.File.Size, c.File.SHA256
	case CmdRooms:
		j.Next = c.Next
		if strings.HasPrefix(c.Next, "#") {
			j.Next = "#" + c.Next // as for Room
		}
	}
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&j); err != nil { // Encode ends the object with "\n"
		// Every field is a string, a number or a pointer to a string.
		panic(fmt.Sprintf("protocol: encoding %s command: %v", c.Name, err))
	}
	return buf.Bytes()
}

// DecodeJSON parses a command in the JSON format: one object with a "type"
// naming the command, and its arguments as fields (see chat/PROTOCOL.md).
// Unknown fields are ignored, so clients may send newer fields.
func DecodeJSON(line []byte) (Command, error) {
	var j jsonCommand
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&j); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	if len(bytes.TrimSpace(line[dec.InputOffset():])) > 0 {
		return Command{}, fmt.Errorf("%w: more than one value on the line", ErrBadJSON)
	}
	// JSON escapes could smuggle in what the line reader refuses in raw
	// bytes: line breaks, escape sequences and other control characters.
	topic := ""
	if j.Topic != nil {
		topic = *j.Topic
	}
	for _, s := range []string{j.Type, j.Room, j.Nick, j.To, j.Text, j.Reason, j.Format, j.Password, topic, j.Next, j.Name, j.SHA256} {
		if hasControl(s) {
			return Command{}, fmt.Errorf("%w: control characters (line breaks, escapes) are not allowed", ErrBadJSON)
		}
	}
	bad := func() (Command, error) { return Command{}, &UsageError{Command: j.Type} }
	c := Command{Name: j.Type, Room: roomArg(j.Room)}
	switch j.Type {
	case CmdSay, CmdMe:
		if strings.TrimSpace(j.Text) == "" {
			return bad()
		}
		c.Text = j.Text
	case CmdMsg:
		if j.To == "" || strings.TrimSpace(j.Text) == "" {
			return bad()
		}
		c.Nick, c.Text = j.To, j.Text
	case CmdNick:
		if j.Nick == "" {
			return bad()
		}
		c.Nick = j.Nick
	case CmdRegister, CmdLogin:
		if j.Nick == "" || j.Password == "" {
			return bad()
		}
		c.Nick, c.Password = j.Nick, j.Password
	case CmdJoin:
		if c.Room == "" {
			return bad()
		}
	case CmdPart, CmdQuit:
		c.Text = j.Reason
	case CmdWho:
		c.Next = j.Next
	case CmdRooms:
		c.Next = roomArg(j.Next)
	case CmdHelp, CmdPong:
	case CmdTopic:
		if j.Topic != nil {
			c.Text, c.SetTopic = *j.Topic, true
		}
	case CmdFormat:
		if _, ok := ParseFormat(j.Format); !ok {
			return bad()
		}
		c.Format = j.Format
	case CmdHistory:
		if j.Limit < 0 {
			return bad()
		}
		c.Limit, c.Before = j.Limit, j.Before
	case CmdResume:
		if c.Room == "" {
			return bad()
		}
		c.After = j.After
	case CmdUpload:
		if j.Name == "" || j.Size == nil || *j.Size < 0 {
			return bad()
		}
		c.Nick, c.File = j.To, FileOffer{Name: j.Name, Size: *j.Size, SHA256: j.SHA256}
	case "":
		return Command{}, fmt.Errorf("%w: missing \"type\"", ErrBadJSON)
	default:
		return Command{}, &UnknownCommandError{Name: j.Type}
	}
	return c, nil
}

// hasControl reports whether s holds a control character other than tab:
// C0, DEL or C1, the characters the line reader refuses in raw input.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\t' || r >= 0x7f && r <= 0x9f {
			return true
		}
	}
	return false
}
