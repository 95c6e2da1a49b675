package files

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DBName is the name of the metadata database in Config.Dir.
const DBName = "files.db"

// tombstoneTTL is how long a removed download token answers 410 rather than
// 404.
const tombstoneTTL = 90 * 24 * time.Hour

// Buckets of the metadata database.
var (
	bucketTokens     = []byte("tokens")     // download token → record (JSON)
	bucketByTime     = []byte("bytime")     // created (8 bytes BE) + token → nothing
	bucketBlobs      = []byte("blobs")      // hash → blobRecord (JSON)
	bucketGone       = []byte("gone")       // removed token → removal time (8 bytes BE)
	bucketGoneByTime = []byte("gonebytime") // removal time + token → nothing
)

// errNoRoom is a blob that can't fit in MaxBytes even with everything else
// evicted.
var errNoRoom = errors.New("the file does not fit in the disk budget")

// Record is the metadata of one download token.
type Record struct {
	Hash    string    `json:"hash"`
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	MIME    string    `json:"mime"`
	Created time.Time `json:"created"`
	Private bool      `json:"private"`
}

// blobRecord is the metadata of one stored blob.
type blobRecord struct {
	Size int64 `json:"size"`
	Refs int   `json:"refs"` // download tokens referring to it
}

// store keeps blobs as files under dir/blobs and their metadata in bbolt.
// mu serializes the changes, so that a blob file exists exactly when its
// blobs record does, and total is the sum of the blob records' sizes.
type store struct {
	dir string
	max int64
	db  *bolt.DB

	mu    sync.Mutex
	total int64

	// live indexes the download tokens and when each was made, so that
	// alive answers from memory: a caller holding a lock of its own (the
	// chat server's, replaying history) never waits for the disk.
	// liveMu is never held across I/O.
	liveMu sync.RWMutex
	live   map[string]time.Time
}

// openStore opens (creating if needed) the store in dir, whose blobs may
// take up to max bytes.
func openStore(dir string, max int64) (*store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "blobs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
	}
	path := filepath.Join(dir, DBName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("files: %s is in use by another process", path)
		}
		return nil, fmt.Errorf("files: opening %s: %w", path, err)
	}
	st := &store{dir: dir, max: max, db: db, live: make(map[string]time.Time)}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketTokens, bucketByTime, bucketBlobs, bucketGone, bucketGoneByTime} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		err := tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var rec Record
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			st.live[string(k)] = rec.Created
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketBlobs).ForEach(func(_, v []byte) error {
			var b blobRecord
			if err := json.Unmarshal(v, &b); err != nil {
				return err
			}
			st.total += b.Size
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("files: reading %s: %w", path, err)
	}
	if err := st.removeOrphans(); err != nil {
		db.Close()
		return nil, fmt.Errorf("files: removing blobs left by a crash: %w", err)
	}
	return st, nil
}

func (st *store) Close() error { return st.db.Close() }

// alive reports whether token is stored, and when it was made, from
// memory.
func (st *store) Alive(token string) (time.Time, bool) {
	st.liveMu.RLock()
	defer st.liveMu.RUnlock()
	t, ok := st.live[token]
	return t, ok
}

// remember indexes token, made at t, once its record is committed.
func (st *store) remember(token string, t time.Time) {
	st.liveMu.Lock()
	defer st.liveMu.Unlock()
	st.live[token] = t
}

// forget drops tokens from the index, once their removal is committed.
func (st *store) forget(tokens []string) {
	st.liveMu.Lock()
	defer st.liveMu.Unlock()
	for _, t := range tokens {
		delete(st.live, t)
	}
}

func (st *store) tmpDir() string { return filepath.Join(st.dir, "tmp") }

// Open opens the blob of hash.
func (st *store) Open(hash string) (io.ReadSeekCloser, error) { return os.Open(st.blobPath(hash)) }

// blobPath is where the blob of a hash is stored.
func (st *store) blobPath(hash string) string {
	return filepath.Join(st.dir, "blobs", hash[:2], hash)
}

func timeKey(t time.Time, token string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())), token...)
}

func keyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k[:8])) }

// add stores the file at tmp, whose metadata is rec, under a new download
// token, and returns the token. If the blob is already stored, tmp is removed
// and the blob is shared. To stay within the budget, the oldest uploads are
// evicted first (they then answer 410).
func (st *store) Add(tmp string, rec Record) (string, error) {
	token := rand.Text()
	st.mu.Lock()
	defer st.mu.Unlock()
	var existed bool
	if err := st.db.View(func(tx *bolt.Tx) error {
		existed = tx.Bucket(bucketBlobs).Get([]byte(rec.Hash)) != nil
		return nil
	}); err != nil {
		return "", fmt.Errorf("files: reading metadata: %w", err)
	}
	path := st.blobPath(rec.Hash)
	if existed {
		os.Remove(tmp)
	} else if err := placeBlob(tmp, path); err != nil {
		return "", err
	}
	var total int64
	var freed, evicted []string
	err := st.db.Update(func(tx *bolt.Tx) error {
		total, freed, evicted = st.total, nil, nil
		blobs := tx.Bucket(bucketBlobs)
		var b blobRecord
		for {
			b = blobRecord{Size: rec.Size}
			v := blobs.Get([]byte(rec.Hash))
			if v != nil {
				if err := json.Unmarshal(v, &b); err != nil {
					return err
				}
			}
			need := rec.Size
			if v != nil {
				need = 0
			}
			if total+need <= st.max {
				break
			}
			k, _ := tx.Bucket(bucketByTime).Cursor().First()
			if k == nil {
				return errNoRoom
			}
			h, n, err := removeTx(tx, string(k[8:]), true, rec.Created, &evicted)
			if err != nil {
				return err
			}
			if h != "" {
				total -= n
				freed = append(freed, h)
			}
		}
		if b.Refs == 0 {
			total += rec.Size
		}
		b.Refs++
		if err := putJSON(blobs, []byte(rec.Hash), b); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketTokens), []byte(token), rec); err != nil {
			return err
		}
		return tx.Bucket(bucketByTime).Put(timeKey(rec.Created, token), nil)
	})
	if err != nil {
		if !existed {
			os.Remove(path)
		}
		return "", fmt.Errorf("files: recording the upload: %w", err)
	}
	st.total = total
	st.forget(evicted)
	st.remember(token, rec.Created)
	st.removeBlobs(freed, rec.Hash)
	return token, nil
}

// placeBlob renames tmp to path, making the directory, and syncs the
// directory so that the rename survives a crash.
func placeBlob(tmp, path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("files: storing the blob: %w", err)
		}
		// The new directory's entry must survive a crash too.
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("files: storing the blob: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("files: storing the blob: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("files: storing the blob: %w", err)
	}
	return nil
}

// syncDir syncs a directory, so that the entries made in it survive a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeOrphans removes the blob files no record refers to: a crash
// between a blob's rename into place and the commit of its record leaves
// one, which the budget does not count. It runs when the store opens.
func (st *store) removeOrphans() error {
	known := make(map[string]bool)
	if err := st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).ForEach(func(k, _ []byte) error {
			known[string(k)] = true
			return nil
		})
	}); err != nil {
		return err
	}
	return filepath.WalkDir(filepath.Join(st.dir, "blobs"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !known[d.Name()] {
			return os.Remove(path)
		}
		return nil
	})
}

// removeBlobs removes the files of the blobs whose last token went, except
// keep's (which was stored again in the same transaction).
func (st *store) removeBlobs(hashes []string, keep string) {
	for _, h := range hashes {
		if h != keep {
			os.Remove(st.blobPath(h))
		}
	}
}

// removeTx removes token, leaving a tombstone dated now if asked, adds it
// to removed (for forget, once the transaction commits), and drops its
// reference to its blob. If that was the blob's last, it returns the
// blob's hash and size, for the caller to remove the file once the
// transaction commits.
func removeTx(tx *bolt.Tx, token string, tombstone bool, now time.Time, removed *[]string) (string, int64, error) {
	tokens := tx.Bucket(bucketTokens)
	v := tokens.Get([]byte(token))
	if v == nil {
		return "", 0, nil
	}
	*removed = append(*removed, token)
	var rec Record
	if err := json.Unmarshal(v, &rec); err != nil {
		return "", 0, err
	}
	if err := tokens.Delete([]byte(token)); err != nil {
		return "", 0, err
	}
	if err := tx.Bucket(bucketByTime).Delete(timeKey(rec.Created, token)); err != nil {
		return "", 0, err
	}
	if tombstone {
		t := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
		if err := tx.Bucket(bucketGone).Put([]byte(token), t); err != nil {
			return "", 0, err
		}
		if err := tx.Bucket(bucketGoneByTime).Put(timeKey(now, token), nil); err != nil {
			return "", 0, err
		}
	}
	blobs := tx.Bucket(bucketBlobs)
	var b blobRecord
	if v := blobs.Get([]byte(rec.Hash)); v != nil {
		if err := json.Unmarshal(v, &b); err != nil {
			return "", 0, err
		}
	}
	if b.Refs--; b.Refs > 0 {
		return "", 0, putJSON(blobs, []byte(rec.Hash), b)
	}
	return rec.Hash, b.Size, blobs.Delete([]byte(rec.Hash))
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// drop removes token without a tombstone: its upload never happened.
func (st *store) Drop(token string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	var h string
	var n int64
	var removed []string
	err := st.db.Update(func(tx *bolt.Tx) (err error) {
		removed = nil
		h, n, err = removeTx(tx, token, false, time.Time{}, &removed)
		return err
	})
	if err != nil {
		return fmt.Errorf("files: dropping an upload: %w", err)
	}
	st.forget(removed)
	if h != "" {
		st.total -= n
		st.removeBlobs([]string{h}, "")
	}
	return nil
}

// lookup returns token's record; if there is none, gone says whether the
// token was removed (by retention or eviction) rather than unknown.
func (st *store) Lookup(token string) (rec Record, ok, gone bool, err error) {
	err = st.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketTokens).Get([]byte(token)); v != nil {
			ok = true
			return json.Unmarshal(v, &rec)
		}
		gone = tx.Bucket(bucketGone).Get([]byte(token)) != nil
		return nil
	})
	if err != nil {
		return Record{}, false, false, fmt.Errorf("files: reading metadata: %w", err)
	}
	return rec, ok, gone, nil
}

// sweepBatch bounds the removals of one transaction.
const sweepBatch = 256

// expire removes the tokens created at or before cutoff, leaving tombstones dated
// now, and the blobs left without a token.
func (st *store) Expire(cutoff, now time.Time) error {
	for {
		st.mu.Lock()
		var freed, removed []string
		total := st.total
		var n int
		err := st.db.Update(func(tx *bolt.Tx) error {
			freed, removed, total, n = nil, nil, st.total, 0
			var victims []string
			c := tx.Bucket(bucketByTime).Cursor()
			for k, _ := c.First(); k != nil && keyTime(k) <= cutoff.UnixNano() && len(victims) < sweepBatch; k, _ = c.Next() {
				victims = append(victims, string(k[8:]))
			}
			n = len(victims)
			for _, token := range victims {
				h, size, err := removeTx(tx, token, true, now, &removed)
				if err != nil {
					return err
				}
				if h != "" {
					total -= size
					freed = append(freed, h)
				}
			}
			return nil
		})
		if err == nil {
			st.total = total
			st.forget(removed)
			st.removeBlobs(freed, "")
		}
		st.mu.Unlock()
		if err != nil {
			return fmt.Errorf("files: removing expired files: %w", err)
		}
		if n < sweepBatch {
			return nil
		}
	}
}

// pruneGone forgets the tombstones of tokens removed at or before cutoff.
func (st *store) PruneGone(cutoff time.Time) error {
	for {
		var n int
		err := st.db.Update(func(tx *bolt.Tx) error {
			var keys [][]byte
			c := tx.Bucket(bucketGoneByTime).Cursor()
			for k, _ := c.First(); k != nil && keyTime(k) <= cutoff.UnixNano() && len(keys) < sweepBatch; k, _ = c.Next() {
				keys = append(keys, append([]byte(nil), k...))
			}
			n = len(keys)
			for _, k := range keys {
				if err := tx.Bucket(bucketGoneByTime).Delete(k); err != nil {
					return err
				}
				if err := tx.Bucket(bucketGone).Delete(k[8:]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("files: pruning tombstones: %w", err)
		}
		if n < sweepBatch {
			return nil
		}
	}
}

// usage is the bytes of the stored blobs.
func (st *store) usage() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.total
}
