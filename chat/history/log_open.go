package history

// This file is a LogStore's opening: migrating an earlier version's data,
// reading the checkpoint, replaying the segments into the index, cutting
// off a torn last record.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// logBucket holds a LogStore's records in history.db: formatKey, once the
// log holds the messages, and for each room (by lowercased name) the
// checkpoint of its numbering, 16 bytes: its newest number and its oldest
// kept, big-endian. Its name has a "/", so it can't be a room's.
var (
	logBucket = []byte("natter/log")
	formatKey = []byte("/format")
)

// openBoltFile opens (creating if needed) dir/history.db and returns it
// with the history's id.
func openBoltFile(dir string) (*bolt.DB, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("history: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, "", fmt.Errorf("history: %s is in use by another process", path)
		}
		return nil, "", fmt.Errorf("history: opening %s: %w", path, err)
	}
	id, err := boltID(db)
	if err != nil {
		db.Close()
		return nil, "", err
	}
	return db, id, nil
}

// open builds the index from history.db's checkpoint and the segments,
// first migrating the messages of an earlier version's history.db.
func (s *LogStore) open(now time.Time) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	migrated := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(logBucket)
		migrated = b != nil && b.Get(formatKey) != nil
		return nil
	})
	if err == nil && !migrated {
		err = s.migrate()
	}
	if err != nil {
		return err
	}
	floors := map[*logRoom]uint64{}
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(logBucket).ForEach(func(k, v []byte) error {
			if len(v) != 16 {
				return nil // formatKey
			}
			r := s.room(string(k))
			r.newest = binary.BigEndian.Uint64(v)
			r.durable = r.newest
			floors[r] = binary.BigEndian.Uint64(v[8:])
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("history: reading the checkpoint: %w", err)
	}
	names, err := segmentNames(s.dir)
	if err != nil {
		return err
	}
	torn := false
	for _, name := range names {
		if torn {
			// Written after the torn write, so never synced: Commit
			// syncs the segments in order, and a sync of the torn one
			// would have made it whole. No one saw them.
			if err := s.dropSegment(name); err != nil {
				return err
			}
			continue
		}
		var err error
		if torn, err = s.replay(name, floors); err != nil {
			return err
		}
	}
	if len(s.segs) == 0 {
		seg, err := createSegment(s.dir, 1, s.segmentBytes)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
	}
	for _, r := range s.rooms {
		if keep := s.retention.MaxMessages; keep > 0 {
			for len(r.entries) > 0 && r.entries[0].seq+uint64(keep) <= r.durable {
				s.dropOldestLocked(r)
			}
		}
	}
	if s.retention.MaxAge > 0 {
		cutoff := now.Add(-s.retention.MaxAge).UnixNano()
		for _, r := range s.rooms {
			for len(r.entries) > 0 && r.entries[0].at < cutoff {
				s.dropOldestLocked(r)
			}
		}
	}
	return nil
}

// segmentNames returns the segment files in dir, oldest first.
func segmentNames(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	slices.Sort(names) // fixed-width hex numbers
	return names, nil
}

func segmentPath(dir string, num uint32) string {
	return filepath.Join(dir, fmt.Sprintf("%08x.seg", num))
}

// createSegment creates segment num in dir, size bytes of zeros, and
// makes it and its name durable. The zeros are where records will go: a
// record's length is never 0, so they read as the end of the log.
func createSegment(dir string, num uint32, size int64) (*segment, error) {
	f, err := os.OpenFile(segmentPath(dir, num), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	err = zero(f, 0, size)
	if err == nil {
		err = fdatasync(f)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("history: making a segment: %w", err)
	}
	return &segment{num: num, f: f}, nil
}

// zero writes zeros over f's bytes from from to to.
func zero(f *os.File, from, to int64) error {
	zeros := make([]byte, min(to-from, 1<<20))
	for off := from; off < to; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), to-off)], off); err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes the names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// replay reads the segment at path into the index, leaving out the
// messages numbered below their room's floor, the checkpoint's oldest kept.
// A record that is cut short or fails its checksum ends the log, and replay
// reports it torn: it is what a crash left of a write no one saw, and is
// cut off, as is everything written after it (see open). But if a whole
// record follows it in the segment, it is damage, not a crash's doing, and
// opening fails.
func (s *LogStore) replay(path string, floors map[*logRoom]uint64) (torn bool, err error) {
	var num uint32
	if _, err := fmt.Sscanf(filepath.Base(path), "%08x.seg", &num); err != nil {
		return false, fmt.Errorf("history: %s is not a segment's name", path)
	}
	if n := len(s.segs); n > 0 && s.segs[n-1].num+1 != num {
		return false, fmt.Errorf("history: segment %s does not follow %s: %w", path, s.segs[n-1].f.Name(), ErrCorrupt)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("history: %w", err)
	}
	seg := &segment{num: num, f: f}
	s.segs = append(s.segs, seg)
	var head struct {
		Room string    `json:"room"`
		Seq  uint64    `json:"seq"`
		Time time.Time `json:"time"`
	}
	off := 0
	// Read through a buffer that holds the largest record, not the whole
	// file: a segment is mostly zeros until it fills.
	br := bufio.NewReaderSize(f, recordHeader+maxRecord)
	for {
		b, _ := br.Peek(recordHeader)
		if len(b) == recordHeader {
			if n := binary.BigEndian.Uint32(b); n > 0 && n <= maxRecord {
				b, _ = br.Peek(recordHeader + int(n))
			}
		}
		payload, n, err := readRecord(b)
		if err != nil {
			if _, zerr := io.Copy(zeros{}, br); zerr == nil {
				break // the end of what was written: zeros, or the file's end
			}
			data, rerr := readFrom(f, int64(off))
			if rerr != nil {
				return false, fmt.Errorf("history: %w", rerr)
			}
			end := len(bytes.TrimRight(data, "\x00")) // what is left but zeros
			if wholeRecordAfter(data[1:]) {
				return false, fmt.Errorf("history: %s at %d: %w", path, off, corruptError{err})
			}
			if err := zero(f, int64(off), int64(off+end)); err != nil {
				return false, fmt.Errorf("history: cutting off a torn record: %w", err)
			}
			if err := fdatasync(f); err != nil {
				return false, fmt.Errorf("history: cutting off a torn record: %w", err)
			}
			s.repairs = append(s.repairs, fmt.Sprintf("cut off %d bytes of an incomplete record at the end of %s, left by a crash", end, path))
			torn = true
			break
		}
		head.Room, head.Seq = "", 0
		if err := json.Unmarshal(payload, &head); err != nil || head.Room == "" || head.Seq == 0 {
			return false, fmt.Errorf("history: %s at %d: %w", path, off, corruptError{fmt.Errorf("not a message: %v", err)})
		}
		r := s.room(head.Room)
		switch {
		case head.Seq < floors[r]:
			// Trimmed before the checkpoint, in a segment that was not
			// empty enough to go.
		case len(r.entries) > 0 && head.Seq != r.entries[len(r.entries)-1].seq+1:
			return false, fmt.Errorf("history: %s at %d: #%s %d where %d was due: %w", path, off, head.Room, head.Seq, r.entries[len(r.entries)-1].seq+1, ErrCorrupt)
		default:
			r.entries = append(r.entries, logEntry{seq: head.Seq, at: head.Time.UnixNano(), seg: num, off: uint32(off), size: uint32(n)})
			seg.live++
		}
		r.newest = max(r.newest, head.Seq)
		r.durable = r.newest
		off += n
		br.Discard(n)
	}
	seg.size = int64(off)
	seg.synced = seg.size
	return torn, nil
}

// dropSegment takes the segment at path, written after a torn write, as
// empty, zeroing whatever records it holds.
func (s *LogStore) dropSegment(path string) error {
	var num uint32
	if _, err := fmt.Sscanf(filepath.Base(path), "%08x.seg", &num); err != nil || s.segs[len(s.segs)-1].num+1 != num {
		return fmt.Errorf("history: segment %s does not follow %s: %w", path, s.segs[len(s.segs)-1].f.Name(), ErrCorrupt)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	s.segs = append(s.segs, &segment{num: num, f: f})
	data, err := readFrom(f, 0)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if end := len(bytes.TrimRight(data, "\x00")); end > 0 {
		if err := zero(f, 0, int64(end)); err != nil {
			return fmt.Errorf("history: cutting off what followed a torn record: %w", err)
		}
		if err := fdatasync(f); err != nil {
			return fmt.Errorf("history: cutting off what followed a torn record: %w", err)
		}
		s.repairs = append(s.repairs, fmt.Sprintf("cut off the %d bytes of %s, written after the torn record and never synced", end, path))
	}
	return nil
}

// zeros is a Writer that takes zeros only: io.Copy to it reports whether
// what is left to read is all zeros.
type zeros struct{}

var errNotZero = errors.New("not zeros")

func (zeros) Write(b []byte) (int, error) {
	if len(bytes.TrimLeft(b, "\x00")) > 0 {
		return 0, errNotZero
	}
	return len(b), nil
}

// readFrom returns f's bytes from off to its end.
func readFrom(f *os.File, off int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data := make([]byte, max(0, fi.Size()-off))
	if _, err := f.ReadAt(data, off); err != nil && err != io.EOF {
		return nil, err
	}
	return data, nil
}

// wholeRecordAfter reports whether a whole record starts anywhere in b:
// then what came before it was damaged, not torn, as a crash tears only
// the end of the log.
func wholeRecordAfter(b []byte) bool {
	for i := range b {
		if _, _, err := readRecord(b[i:]); err == nil {
			return true
		}
	}
	return false
}

// migrate moves the messages of an earlier version's history.db, which
// kept them in a bucket per room, into the log. Until it is done, and only
// then, history.db says the log is the record (formatKey): a migration a
// crash cut short starts again from the start.
func (s *LogStore) migrate() error {
	names, err := segmentNames(s.dir)
	if err != nil {
		return err
	}
	buckets := 0
	s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if isRoomBucket(name) {
				buckets++
			}
			return nil
		})
	})
	if len(names) > 0 && buckets == 0 {
		// Not a migration cut short: history.db is not the log's.
		return fmt.Errorf("history: %s holds a log that %s has no record of (was %s replaced?): put back the %s it belongs to, or move %s away to start a new history", s.dir, FileName, FileName, FileName, s.dir)
	}
	for _, name := range names { // left by a migration cut short
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("history: %w", err)
		}
	}
	var rooms [][]byte
	marks := map[string][2]uint64{}
	seg, err := createSegment(s.dir, 1, s.segmentBytes)
	if err != nil {
		return err
	}
	defer func() { seg.f.Close() }()
	moved, skipped, dropped := 0, 0, 0
	var buf []byte
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if seg.size > 0 && seg.size+int64(len(buf)) > s.segmentBytes {
			if err := fdatasync(seg.f); err != nil {
				return err
			}
			seg.f.Close()
			if seg, err = createSegment(s.dir, seg.num+1, s.segmentBytes); err != nil {
				return err
			}
		}
		if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
			return err
		}
		seg.size += int64(len(buf))
		buf = buf[:0]
		return nil
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !isRoomBucket(name) {
				return nil
			}
			rooms = append(rooms, bytes.Clone(name))
			newest, oldest := b.Sequence(), b.Sequence()+1
			// The log's numbers run on without a gap, and the bucket's
			// may not: count retention once deleted only the message
			// max behind each new one, so lowering it left older ones
			// behind a gap. Only the run after the last gap moves.
			var run [][]byte
			var prev uint64
			err := b.ForEach(func(k, v []byte) error {
				if v == nil || len(k) != 8 {
					return nil
				}
				seq := binary.BigEndian.Uint64(k)
				if prev != 0 && seq != prev+1 {
					dropped += len(run)
					run = run[:0]
				}
				if len(run) == 0 {
					oldest = seq
				}
				prev = seq
				if _, err := decode(v); err != nil {
					// Kept in its place, as what it is, so that the
					// numbers after it still follow on.
					skipped++
					v, _ = json.Marshal(Message{Room: string(name), Seq: seq, Kind: "message", Text: "(a message that could not be read when the history was moved)"})
				}
				run = append(run, bytes.Clone(v))
				return nil
			})
			if err != nil {
				return err
			}
			for _, v := range run {
				if buf, err = appendRawRecord(buf, v); err != nil {
					return err
				}
				moved++
				if len(buf) >= 1<<20 {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			if newest > 0 {
				marks[strings.ToLower(string(name))] = [2]uint64{newest, oldest}
			}
			return nil
		})
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = fdatasync(seg.f)
	}
	if err == nil {
		err = s.db.Update(func(tx *bolt.Tx) error {
			if err := putCheckpoint(tx, marks); err != nil {
				return err
			}
			for _, name := range rooms {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
			return tx.Bucket(logBucket).Put(formatKey, []byte{1})
		})
	}
	if err != nil {
		return fmt.Errorf("history: moving the messages of %s into the log: %w", FileName, err)
	}
	if moved > 0 || len(rooms) > 0 {
		msg := fmt.Sprintf("moved %d messages of %d rooms from %s into the log", moved, len(rooms), FileName)
		if skipped > 0 {
			msg += fmt.Sprintf(", %d of them records that could not be read, kept as such", skipped)
		}
		if dropped > 0 {
			msg += fmt.Sprintf(", and left out %d older messages before a gap in their room's numbers", dropped)
		}
		s.repairs = append(s.repairs, msg)
	}
	return nil
}

// putCheckpoint records each room's newest number and oldest kept in tx.
func putCheckpoint(tx *bolt.Tx, marks map[string][2]uint64) error {
	b, err := tx.CreateBucketIfNotExists(logBucket)
	if err != nil {
		return err
	}
	for k, m := range marks {
		v := make([]byte, 16) // bolt holds on to it until the commit
		binary.BigEndian.PutUint64(v, m[0])
		binary.BigEndian.PutUint64(v[8:], m[1])
		if err := b.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}
