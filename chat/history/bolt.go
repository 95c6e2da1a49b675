package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the name of the database file in a data directory.
const FileName = "history.db"

// BoltStore is a Store in a bbolt database file: one bucket per room, keyed
// by the message number in big-endian order, so appends go to the end of the
// B+tree and range reads are cursor walks. It was the server's store before
// the LogStore, which takes its messages over (see OpenLog), and is kept as
// the baseline BenchmarkAppend measures the log against: a commit costs two
// syncs and page writes, where the log's costs one sync of the data.
type BoltStore struct {
	db        *bolt.DB
	retention Retention
	id        string
}

var _ Store = (*BoltStore)(nil)

// OpenBolt opens (creating if needed) the store in dir. If another process
// has the store open, it fails after waiting a second for it, rather than
// wait for as long as that process runs.
func OpenBolt(dir string, r Retention) (*BoltStore, error) {
	db, id, err := openBoltFile(dir)
	if err != nil {
		return nil, err
	}
	return &BoltStore{db: db, retention: r, id: id}, nil
}

// bucketName is the name of room's bucket: a top-level bucket named by the
// room, lowercased.
func bucketName(room string) []byte { return []byte(strings.ToLower(room)) }

// isRoomBucket reports whether the top-level bucket name is a room's. The
// buckets of other stores sharing the file have a "/" in their names (see
// DB), which Append refuses in a room's.
func isRoomBucket(name []byte) bool { return !bytes.ContainsRune(name, '/') }

func key(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Append implements Store.
func (s *BoltStore) Append(msgs []Message) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i := range msgs {
			m := &msgs[i]
			if strings.Contains(m.Room, "/") {
				return fmt.Errorf("room name %q has a \"/\"", m.Room)
			}
			b, err := tx.CreateBucketIfNotExists(bucketName(m.Room))
			if err != nil {
				return err
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			m.Seq = seq
			v, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := b.Put(key(seq), v); err != nil {
				return err
			}
		}
		if max := s.retention.MaxMessages; max > 0 {
			// Count retention costs at most one deletion per message
			// appended, so it never holds up the commit for long.
			for _, m := range msgs {
				if m.Seq > uint64(max) {
					if err := tx.Bucket(bucketName(m.Room)).Delete(key(m.Seq - uint64(max))); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		for i := range msgs {
			msgs[i].Seq = 0
		}
		return fmt.Errorf("history: append: %w", err)
	}
	return nil
}

// Before implements Store.
func (s *BoltStore) Before(room string, before uint64, n int) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(room))
		if b == nil || n <= 0 {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			k, _ = c.Seek(key(before))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		var err error
		out, err = collect(k, v, c.Prev, n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("history: read: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// After implements Store.
func (s *BoltStore) After(room string, after uint64, n int) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(room))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.Seek(key(after + 1))
		var err error
		out, err = collect(k, v, c.Next, n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("history: read: %w", err)
	}
	return out, nil
}

// Bounds implements Store.
func (s *BoltStore) Bounds(room string) (oldest, newest uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(room))
		if b == nil {
			return nil
		}
		newest = b.Sequence()
		if k, _ := b.Cursor().First(); k != nil {
			oldest = binary.BigEndian.Uint64(k)
		} else {
			oldest = newest + 1 // everything was trimmed
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("history: read: %w", err)
	}
	return oldest, newest, nil
}

// Trim implements Store. It removes messages older than the retention's
// MaxAge, oldest first, at most limit of them in one transaction, so a
// caller can trim in small steps between appends. It walks the rooms'
// buckets only (see DB). A record it can't decode is left where it is and
// skipped; Trim then still commits what it removed, and returns it with an
// error wrapping ErrCorrupt that says how many records it skipped.
func (s *BoltStore) Trim(now time.Time, limit int) (int, error) {
	if s.retention.MaxAge <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-s.retention.MaxAge)
	removed, skipped := 0, 0
	var bad error // the first record skipped
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !isRoomBucket(name) {
				return nil
			}
			var old [][]byte
			c := b.Cursor()
			for k, v := c.First(); k != nil && removed+len(old) < limit; k, v = c.Next() {
				if v == nil {
					continue // a nested bucket, not a message
				}
				m, err := decode(v)
				if err != nil {
					if skipped++; bad == nil {
						bad = fmt.Errorf("#%s %x: %w", name, k, err) // the key may be corrupt too: not decoded
					}
					continue
				}
				if !m.Time.Before(cutoff) {
					break
				}
				old = append(old, bytes.Clone(k))
			}
			// Deleted after the walk: a cursor's Next after its Delete
			// can skip a key.
			for _, k := range old {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			removed += len(old)
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("history: trim: %w", err)
	}
	if skipped > 0 {
		return removed, fmt.Errorf("history: trim: skipped %d records that can't be read, the first %w", skipped, bad)
	}
	return removed, nil
}

// Close implements Store.
func (s *BoltStore) Close() error { return s.db.Close() }

// DB returns the database, so that other stores (accounts) can keep their
// buckets in the same file. Their bucket names must have a "/" in them:
// rooms are letters, digits, "-" and "_", Append refuses a room name with
// a "/", and Trim leaves buckets with one alone.
func (s *BoltStore) DB() *bolt.DB { return s.db }

// collect decodes up to n messages, starting at the cursor position k, v
// and moving with step. Values are copied out of the transaction by decode.
func collect(k, v []byte, step func() ([]byte, []byte), n int) ([]Message, error) {
	var out []Message
	for ; k != nil && len(out) < n; k, v = step() {
		m, err := decode(v)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func decode(v []byte) (Message, error) {
	var m Message
	dec := json.NewDecoder(bytes.NewReader(v))
	if err := dec.Decode(&m); err != nil {
		return Message{}, corruptError{err}
	}
	return m, nil
}

// corruptError is the error for a record that can't be decoded: it wraps
// both ErrCorrupt and why.
type corruptError struct{ err error }

func (e corruptError) Error() string   { return "corrupt record: " + e.err.Error() }
func (e corruptError) Unwrap() []error { return []error{ErrCorrupt, e.err} }
