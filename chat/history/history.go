// Package history stores every chat message a server accepts, numbered per
// room, so that clients can page back through a room and pick up where they
// left off.
//
// A [Store] appends messages in batches: one call is one transaction, made
// durable (fdatasync) before Append returns. The [LogStore], the server's,
// is also a [Pipeliner]: a batch can be written while the one before it is
// being synced, and no one reads a message before it is durable. Each
// message gets its room's next sequence number; numbers start at 1, grow by
// one, and are never reused, so a gap in what a client received is visible
// and can be filled from the store. (A MemoryStore bounded in bytes that
// has forgotten a room starts rooms it has no record of higher; see
// MemoryStore.) A failed Append stores nothing and uses up no numbers.
package history

import (
	"errors"
	"time"
)

// Message is one stored chat message.
//
// A cluster's stream carries a room's events in the same form, in order
// with its messages: a join or part of From in Room (Text: the reason), a
// rename of From to Text, or a quit of From (Text: the reason), in Rooms
// (the first of which is Room). Those are delivered, never stored (see
// IsChat), by every node but the one that published them (Node).
type Message struct {
	Room  string    `json:"room"`
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
	Kind  string    `json:"kind"` // "message", "action" or "file"; in a stream, an event's kind too
	From  string    `json:"from"`
	Text  string    `json:"text"`
	Rooms []string  `json:"rooms,omitempty"` // an event's rooms
	// Node names the cluster node that published an event, which
	// delivered it to its own clients already.
	Node string `json:"node,omitempty"`
	// File is a shared file's, in a message of kind "file".
	File *File `json:"file,omitempty"`
}

// File describes a file shared in a room: what its message shows, and the
// download token the file service serves it under.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	MIME   string `json:"mime,omitempty"`
	SHA256 string `json:"sha256"`
	Token  string `json:"token"`
}

// IsChat reports whether m is a chat message ("message", "action" or
// "file"), the only kinds a store keeps, rather than an event passing
// through a cluster's stream.
func (m Message) IsChat() bool { return m.Kind == "message" || m.Kind == "action" || m.Kind == "file" }

// Retention bounds what a store keeps. Zero fields keep everything.
type Retention struct {
	// MaxMessages is how many of a room's newest messages are kept.
	MaxMessages int
	// MaxAge is how long a message is kept.
	MaxAge time.Duration
	// MaxBytes bounds what a MemoryStore holds, in bytes as
	// MemoryStore.Bytes counts them; past it the oldest messages go first,
	// whatever their room. The server's in-memory history defaults to 64
	// MiB. A BoltStore ignores it.
	MaxBytes int64
}

// Store is an append-only, per-room numbered message log.
type Store interface {
	// Append stores msgs in one transaction, setting each message's Seq to
	// its room's next number. Either all are stored or none is, and no
	// numbers are used up.
	Append(msgs []Message) error
	// Before returns up to n of room's messages numbered below before
	// (before == 0 means from the newest), oldest first.
	Before(room string, before uint64, n int) ([]Message, error)
	// After returns up to n of room's messages numbered above after, oldest
	// first.
	After(room string, after uint64, n int) ([]Message, error)
	// Bounds returns the number of room's oldest stored message, and the
	// newest number given out in room, which numbering carries on from.
	// If retention removed all of room's messages, oldest is newest+1.
	// Both are 0 for a room with no messages ever; but a MemoryStore that
	// has forgotten a room's last number reports, for every room it has
	// no record of, the highest number it forgot (see MemoryStore.Bounds).
	Bounds(room string) (oldest, newest uint64, err error)
	// Trim applies the retention policy to every room, removing at most
	// limit messages, and reports how many it removed. An error wrapping
	// ErrCorrupt comes with what it did remove: it skipped records it
	// could not read, and trimming may go on.
	Trim(now time.Time, limit int) (int, error)
	// Close releases the store.
	Close() error
}

// ErrUnconfirmed is wrapped by an Append error when the store did not
// confirm the messages in time but may have kept them all the same, as a
// cluster's store can when its connection drops.
var ErrUnconfirmed = errors.New("history: not confirmed as stored")

// ErrCorrupt is wrapped by the error for a stored record that can't be
// decoded as a message.
var ErrCorrupt = errors.New("history: corrupt record")

// ErrClosed is returned by a Store that has been closed.
var ErrClosed = errors.New("history: store closed")
