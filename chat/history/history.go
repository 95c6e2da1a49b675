// Package history stores every chat message a server accepts, numbered per
// room, so that clients can page back through a room and pick up where they
// left off.
//
// A [Store] appends messages in batches: one call is one transaction, and
// the bolt store makes it durable (fdatasync) before Append returns. Each
// message gets its room's next sequence number; numbers start at 1, grow by
// one, and are never reused, so a gap in what a client received is visible
// and can be filled from the store. A failed Append stores nothing and
// uses up no numbers.
package history

import (
	"errors"
	"time"
)

// Message is one stored chat message.
type Message struct {
	Room string    `json:"room"`
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Kind string    `json:"kind"` // "message" or "action"
	From string    `json:"from"`
	Text string    `json:"text"`
}

// Retention bounds what a store keeps. Zero fields keep everything.
type Retention struct {
	// MaxMessages is how many of a room's newest messages are kept.
	MaxMessages int
	// MaxAge is how long a message is kept.
	MaxAge time.Duration
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
	// Bounds returns the numbers of room's oldest and newest stored
	// messages, and the newest number ever given out in room (which is
	// newest unless retention removed everything). All are 0 for a room
	// with no messages ever.
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
