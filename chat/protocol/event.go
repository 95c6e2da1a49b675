package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event types.
const (
	TypeWelcome = "welcome" // on connecting, and after switching format
	TypeMessage = "message" // a chat line in a room
	TypeAction  = "action"  // a /me line in a room
	TypePrivate = "private" // a private message, to its recipient and echoed to its sender
	TypeJoin    = "join"    // someone joined a room
	TypePart    = "part"    // someone left a room
	TypeQuit    = "quit"    // someone left the server
	TypeNick    = "nick"    // someone changed nickname
	TypeTopic   = "topic"   // a room's topic, when set or asked for
	TypeCurrent = "current" // your current room changed
	TypeRooms   = "rooms"   // reply to /rooms
	TypeWho     = "who"     // reply to /who
	TypeHelp    = "help"    // reply to /help
	TypeFormat  = "format"  // your format changed
	TypeMissed  = "missed"  // messages were dropped because you read too slowly
	TypeHistory = "history" // ends a page of history sent for /history
	TypeResumed = "resumed" // ends the messages sent for /resume
	TypePing    = "ping"    // are you there? answer with a pong command (JSON format only)
	TypeNotice  = "notice"  // any other news from the server
	TypeError   = "error"   // a command or line was refused
	TypeFile    = "file"    // a file shared in a room, or with one person (To)
	TypeUpload  = "upload"  // answers /upload: where to upload the file, until when
)

// TimeLayout is the layout of Event.Time.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Event is one thing the server tells a client. Which fields are set depends
// on Type; see chat/PROTOCOL.md. Events are immutable once sent.
type Event struct {
	Type     string     `json:"type"`
	Seq      uint64     `json:"seq,omitempty"`
	History  bool       `json:"history,omitempty"`
	Time     string     `json:"time,omitempty"`
	Room     string     `json:"room,omitempty"`
	From     string     `json:"from,omitempty"`
	To       string     `json:"to,omitempty"`
	Nick     string     `json:"nick,omitempty"`
	Old      string     `json:"old,omitempty"`
	Text     string     `json:"text,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Code     string     `json:"code,omitempty"`
	Count    int        `json:"count,omitempty"`
	Before   uint64     `json:"before,omitempty"`
	After    uint64     `json:"after,omitempty"`
	More     bool       `json:"more,omitempty"`
	Trimmed  bool       `json:"trimmed,omitempty"`
	Format   string     `json:"format,omitempty"`
	Rooms    []RoomInfo `json:"rooms,omitempty"`
	Members  []string   `json:"members,omitempty"`
	Next     string     `json:"next,omitempty"`
	Commands []string   `json:"commands,omitempty"`
	Limits   *Limits    `json:"limits,omitempty"`
	// HistoryID, in a welcome, names the history the server numbers room
	// messages in: while it stays the same, a message's Seq keeps its
	// meaning; when it changes (a server with its history in memory
	// restarted, say), numbering may have started over. Empty from a
	// server that does not say.
	HistoryID string `json:"history_id,omitempty"`
	// File is a file event's file, or an upload event's offer.
	File *FileInfo `json:"file,omitempty"`
	// URL and Expires, in an upload event, say where to upload the file
	// (HTTP PUT), and until when.
	URL     string `json:"url,omitempty"`
	Expires string `json:"expires,omitempty"`
}

// RoomInfo describes a room in a rooms event.
type RoomInfo struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
	Topic   string `json:"topic,omitempty"`
}

// Limits are the server's limits, announced in the welcome event.
type Limits struct {
	LineBytes      int `json:"line_bytes"`
	NickLength     int `json:"nick_length"`
	RoomNameLength int `json:"room_name_length"`
	TopicBytes     int `json:"topic_bytes"`
	RoomsPerClient int `json:"rooms_per_client"`
	RoomMembers    int `json:"room_members"`
	Rooms          int `json:"rooms"`
}

// Stamp returns t in the Event.Time layout, in UTC.
func Stamp(t time.Time) string { return t.UTC().Format(TimeLayout) }

// AppendJSON appends e as one JSON object and a newline.
func (e *Event) AppendJSON(b []byte) []byte {
	data, err := json.Marshal(e)
	if err != nil {
		// Every field is a string, number or slice of them: Marshal can't fail.
		panic(fmt.Sprintf("protocol: encoding %s event: %v", e.Type, err))
	}
	return append(append(b, data...), '\n')
}

// View is what the text rendering of an event depends on: who reads it and
// which room they are talking in.
type View struct {
	Me      string // the reader's nickname
	Current string // the reader's current room
}

// AppendText appends e rendered for people, one or more lines each ending
// in "\n". Chat lines start with the sender's nickname ("alice: hi"), or
// with "[#room] " when the room is not the reader's current room; private
// messages start with "[pm] " or "[pm to NICK] "; everything from the server
// itself starts with SystemPrefix. Nicknames and room names cannot contain
// spaces, colons or brackets, so no client text can pass for another sender
// or for the server.
//
// Whatever its fields hold, what AppendText appends is valid UTF-8 without
// a character that acts on a terminal rather than printing, or that breaks
// a line: the C0 controls but tab, DEL, the C1 controls, U+2028 and U+2029,
// the bidirectional embeddings, overrides and isolates (U+202A to U+202E,
// U+2066 to U+2069), and bytes that are not UTF-8. Each of those in a field
// is written as it would be in a Go string literal ("\x1b", "\r", "\n",
// "\u202e", "\xff"), so no field can move the cursor, retitle the
// terminal, reorder the line or start a line of its own. A natter server
// sends none of them (it refuses them in what clients send), but a client
// must not count on that.
func (e *Event) AppendText(b []byte, v View) []byte {
	start := len(b) // of the line being appended
	end := func() {
		if unsafeIndex(b[start:]) >= 0 {
			b = appendEscaped(b[:start], string(b[start:]))
		}
		b = append(b, '\n')
		start = len(b)
	}
	sys := func(format string, args ...any) {
		b = append(b, SystemPrefix...)
		b = fmt.Appendf(b, format, args...)
		end()
	}
	inRoom := func() {
		other := e.Room != "" && !strings.EqualFold(e.Room, v.Current)
		switch {
		case e.History && other:
			b = fmt.Appendf(b, "[history #%s %d] ", e.Room, e.Seq)
		case e.History:
			b = fmt.Appendf(b, "[history %d] ", e.Seq)
		case other:
			b = append(b, "[#"...)
			b = append(b, e.Room...)
			b = append(b, "] "...)
		}
	}
	switch e.Type {
	case TypeMessage:
		inRoom()
		b = append(b, e.From...)
		b = append(b, ": "...)
		b = append(b, e.Text...)
		end()
	case TypeAction:
		inRoom()
		b = append(b, "* "...)
		b = append(b, e.From...)
		b = append(b, ' ')
		b = append(b, e.Text...)
		end()
	case TypePrivate:
		if strings.EqualFold(e.From, v.Me) {
			b = append(b, "[pm to "...)
			b = append(b, e.To...)
			b = append(b, "] "...)
		} else {
			b = append(b, "[pm] "...)
		}
		b = append(b, e.From...)
		b = append(b, ": "...)
		b = append(b, e.Text...)
		end()
	case TypeFile:
		switch {
		case e.To != "" && strings.EqualFold(e.From, v.Me):
			b = append(b, "[pm to "...)
			b = append(b, e.To...)
			b = append(b, "] "...)
		case e.To != "":
			b = append(b, "[pm] "...)
		default:
			inRoom()
		}
		b = append(b, e.From...)
		b = append(b, " shared "...)
		b = appendFile(b, e.File)
		end()
	case TypeUpload:
		name, size := "", int64(0)
		if e.File != nil {
			name, size = e.File.Name, e.File.Size
		}
		// -g: curl would otherwise expand [] and {} in the file's name.
		sys("upload %s (%s) before %s: curl -g -T %s %s", name, FormatBytes(size), e.Expires, shellQuote(name), e.URL)
	case TypeWelcome:
		l := e.Limits
		if l == nil {
			l = &Limits{} // a server that sent none: show zeros rather than crash
		}
		where := "in no room"
		if e.Room != "" {
			where = "in #" + e.Room
		}
		sys("Welcome, %s! You are %s. Type a line to chat; commands: %s. Limits: lines of %d bytes, nicknames of %d characters, room names of %d characters, %d rooms per client, %d members per room.",
			e.Nick, where, strings.Join(e.Commands, " "), l.LineBytes, l.NickLength, l.RoomNameLength, l.RoomsPerClient, l.RoomMembers)
	case TypeJoin:
		sys("%s joined #%s", e.Nick, e.Room)
	case TypePart:
		sys("%s left #%s%s", e.Nick, e.Room, because(e.Reason))
	case TypeQuit:
		sys("%s quit%s", e.Nick, because(e.Reason))
	case TypeNick:
		sys("%s is now %s", e.Old, e.Nick)
	case TypeTopic:
		switch {
		case e.From != "":
			sys("%s set the topic of #%s: %s", e.From, e.Room, e.Text)
		case e.Text == "":
			sys("#%s has no topic", e.Room)
		default:
			sys("topic of #%s: %s", e.Room, e.Text)
		}
	case TypeCurrent:
		sys("you are now talking in #%s", e.Room)
	case TypeRooms:
		parts := make([]string, len(e.Rooms))
		for i, r := range e.Rooms {
			parts[i] = "#" + r.Name + " (" + strconv.Itoa(r.Members) + ")"
		}
		more := ""
		if e.Next != "" {
			more = "; more: /rooms " + e.Next
		}
		sys("rooms: %s%s", strings.Join(parts, ", "), more)
	case TypeWho:
		n, more := e.Count, ""
		if n == 0 {
			n = len(e.Members)
		}
		if e.Next != "" {
			more = "; more: /who " + e.Room + " " + e.Next
		}
		sys("in #%s (%d): %s%s", e.Room, n, strings.Join(e.Members, ", "), more)
	case TypeHelp:
		for _, c := range e.Commands {
			sys("%s", c)
		}
	case TypeFormat:
		sys("switched to the %s format", e.Format)
	case TypeMissed:
		switch {
		case e.Room != "" && e.Count == 0:
			sys("the replay of #%s was cut short because your connection could not keep up; /resume %s %d to go on", e.Room, e.Room, e.After)
		case e.Room != "":
			sys("you missed %d messages of #%s because your connection could not keep up; /resume %s %d to catch up", e.Count, e.Room, e.Room, e.After)
		default:
			sys("you missed %d messages because your connection could not keep up", e.Count)
		}
	case TypeHistory:
		switch {
		case e.More:
			sys("end of this page of #%s history (%d messages); /history %d before %d for older ones", e.Room, e.Count, e.Count, e.Before)
		default:
			sys("start of #%s history reached (%d messages)", e.Room, e.Count)
		}
	case TypeResumed:
		what := "complete"
		switch {
		case e.More:
			what = fmt.Sprintf("more to come: /resume %s %d", e.Room, e.Seq)
		case e.Trimmed:
			what = "older messages were removed by retention"
		}
		sys("resumed #%s after %d: %d messages, %s", e.Room, e.After, e.Count, what)
	case TypePing:
		sys("ping: answer /pong")
	case TypeError:
		sys("error: %s", e.Text)
	default: // TypeNotice, and any type this version does not know
		sys("%s", e.Text)
	}
	return b
}

func because(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}
