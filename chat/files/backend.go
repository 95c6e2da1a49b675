package files

import (
	"io"
	"time"
)

// Store is where a Service keeps the files it was given: the blobs, by
// their SHA-256, and a Record per download token. The default store keeps
// blobs as files under Config.Dir and records in bbolt there; a cluster
// keeps both in NATS JetStream (chat/cluster), so that every node serves
// every link. Temporary files of uploads in progress are always in
// Config.Dir/tmp.
//
// A Store's methods may be called from any goroutine. Alive must answer
// from memory, without waiting for a disk or a network: the chat server
// calls it holding its lock.
type Store interface {
	// Add stores the completed upload at tmp, described by rec, under a
	// new download token, and returns the token. tmp is moved or removed
	// either way. If the blob is already stored it is shared. Past the
	// store's budget it evicts the oldest uploads first, or fails.
	Add(tmp string, rec Record) (token string, err error)
	// Drop removes token, as if its upload never happened (no tombstone).
	Drop(token string) error
	// Lookup returns token's record; if there is none, gone says whether
	// the token was removed (by retention or eviction) rather than unknown.
	Lookup(token string) (rec Record, ok, gone bool, err error)
	// Open returns the blob of hash, to be served; fs.ErrNotExist if it
	// is no longer stored.
	Open(hash string) (io.ReadSeekCloser, error)
	// Alive reports, from memory, whether token is stored, and when it
	// was made.
	Alive(token string) (created time.Time, ok bool)
	// Expire removes the tokens made at or before cutoff, leaving
	// tombstones dated now, and the blobs left without a token.
	Expire(cutoff, now time.Time) error
	// PruneGone forgets the tombstones of tokens removed at or before
	// cutoff.
	PruneGone(cutoff time.Time) error
	// Close closes the store.
	Close() error
}

var _ Store = (*store)(nil)
