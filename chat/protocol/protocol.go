// Package protocol defines natter's wire protocol: the commands a client
// sends and the events the server sends, in the two formats a connection
// can use. It depends only on the standard library.
//
// Every connection starts in the text format, which a person can type and
// read with nc: a line is a chat message or a /command, and every line the
// server sends is an event rendered for people. A connection switches to the
// JSON format with the command "/format json"; from then on every event is
// one JSON object per line, and a line that starts with "{" is a command
// object, which [Command.AppendJSON] writes and [DecodeJSON] reads. Error
// and notice events carry a code saying why, one of the Code constants. The
// full reference is chat/PROTOCOL.md.
package protocol

// Format is how a connection's events are encoded.
type Format uint8

// The formats.
const (
	Text Format = iota
	JSON
)

// String returns "text" or "json".
func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "text"
}

// ParseFormat parses "text" or "json".
func ParseFormat(s string) (Format, bool) {
	switch s {
	case "text":
		return Text, true
	case "json":
		return JSON, true
	}
	return Text, false
}

// SystemPrefix starts every text-format line that comes from the server
// itself rather than from a client.
const SystemPrefix = "*** "

// DefaultRoom is the room every client is in when it connects, or, on a
// server that requires a login, once it has logged in. It always exists.
const DefaultRoom = "lobby"

// DefaultMaxLineBytes is the longest line, not counting its line ending,
// that a server accepts from a client unless configured otherwise. The
// welcome event announces the server's own limit in Limits.LineBytes.
const DefaultMaxLineBytes = 4096
