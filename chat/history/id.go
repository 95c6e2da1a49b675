package history

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ID returns the id of the history s holds, if s has one (a Store may
// implement interface{ ID() string }), or "". Two stores with the same id
// hold the same history, numbered alike; a history with another id may
// number its messages anew. The stores of this package and the cluster's
// have ids.
func ID(s Store) string {
	if s, ok := s.(interface{ ID() string }); ok {
		return s.ID()
	}
	return ""
}

// newID returns a random id: 16 hex digits, never 0.
func newID() uint64 {
	for {
		var b [8]byte
		rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

func formatID(id uint64) string { return fmt.Sprintf("%016x", id) }

// ID returns the id of the history s holds: random, made when s was.
func (s *MemoryStore) ID() string { return s.id }

// ID returns the id of the history s holds: random, made when the database
// was created (or first opened by a version that has ids) and kept in it.
func (s *BoltStore) ID() string { return s.id }

// idBucket keeps a bolt store's id as its sequence number, and holds no
// keys. Its name has a "/", like the accounts', so it can't be a room's
// and Trim passes it by.
var idBucket = []byte("natter/history-id")

// boltID returns the id kept in db, first making one if db has none.
func boltID(db *bolt.DB) (string, error) {
	var id uint64
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(idBucket)
		if err != nil {
			return err
		}
		if id = b.Sequence(); id == 0 {
			id = newID()
			return b.SetSequence(id)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("history: the history's id: %w", err)
	}
	return formatID(id), nil
}
