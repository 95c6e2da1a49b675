package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/chat/files"
)

// The files of a deployment are kept in JetStream, so that every node
// serves every download link: records in the key-value bucket
// natter_<name>_files, blobs in the object store natter_<name>_blobs, one
// object per blob, named by its SHA-256.
//
// The bucket's keys:
//
//	t.<token>  the files.Record of a download token (JSON)
//	g.<token>  the tombstone of a removed token: its removal time, in
//	           Unix nanoseconds (decimal)
//	b.<hash>   the blob's {"size":N,"refs":K}: how many tokens refer to it;
//	           {"refs":0,"dying":true} while its last token's remover
//	           deletes the object
//
// Keys are removed by purging them (with a marker that expires, as the
// presence keys are), so that the bucket does not keep a delete marker for
// every token ever made.
//
// A blob's refs change by compare-and-set at the revision read, so that
// nodes adding and dropping the same blob at once count right. Add counts
// its reference before it stores the object, and the last reference's
// remover marks the count dying before it deletes the object, so that a
// blob being deleted is never taken for stored: an Add that finds a dying
// count waits for the remover to finish (and takes the count over if it
// stays dying for twice Timeout, its remover presumably gone), then stores
// the object again.
//
// A request that times out may have been carried out all the same: a
// reference counted twice leaves a blob stored after its last token goes
// (until a token of the same blob is added and removed again); the other
// way round, the store errs on that side wherever it can.

// Bounds of the files store.
const (
	// casTries bounds the compare-and-set attempts of one change of a
	// blob's count made by several nodes at once.
	casTries = 10
	// bytesPerTimeout is how much of a blob storing it may take, per
	// Timeout: a blob of 1 GiB has 16 Timeouts.
	bytesPerTimeout = 64 << 20
	// downloadTimeout bounds the reading of a blob from one position:
	// a download has to be done within it (or be resumed with a range).
	downloadTimeout = 12 * time.Hour
	// objectOverhead is what the object store adds to each chunk (its
	// subject and headers) and to each object (its meta message),
	// estimated high, for the budget.
	objectOverhead = 256
	// chunkSize is the object store's default chunk size.
	chunkSize = 128 * 1024
)

// errNoRoom is a blob that can't fit in the store's budget even with every
// other upload evicted.
var errNoRoom = errors.New("cluster: the file does not fit in the file store's budget")

// errStoreClosed is returned by a files store that was closed.
var errStoreClosed = errors.New("cluster: files store closed")

// fileStore is the cluster's files.Store.
type fileStore struct {
	n    *Node
	kv   jetstream.KeyValue
	obs  jetstream.ObjectStore
	max  int64 // of the object store, <= 0 for no limit
	ctx  context.Context
	stop context.CancelFunc // ends ctx: Close
	done chan struct{}      // closed when watch has returned

	// mu guards the index of the tokens, which the watch keeps up to
	// date: Alive, Expire and eviction read it. It is never held across a
	// request to NATS.
	mu    sync.Mutex
	index map[string]tokenEntry
	// removed holds the tokens this node removed whose removal the watch
	// has yet to see, by the revision removed, so that the watch does not
	// bring them back meanwhile.
	removed map[string]uint64
	// watchRev is the revision of the last entry the watch passed on.
	watchRev uint64
}

// tokenEntry is what the index keeps of a download token.
type tokenEntry struct {
	created time.Time
	hash    string
	rev     uint64 // of its t. key
}

// blobCount is a b. key's value.
type blobCount struct {
	Size  int64 `json:"size"`
	Refs  int   `json:"refs"`
	Dying bool  `json:"dying,omitempty"`
}

var _ files.Store = (*fileStore)(nil)

// Files returns the deployment's file store, shared by all its nodes, for
// files.Config.Store: the records in the bucket natter_<name>_files, the
// blobs in the object store natter_<name>_blobs, which may hold maxBytes
// (no limit if maxBytes <= 0; every node must give the same). It loads
// the index of the download tokens, for Alive, before it returns; ctx
// bounds that. The store's Close stops its watch, not the node; closing
// the node ends the store too.
//
// Past its budget, Add evicts the oldest uploads (by Record.Created) until
// the blob fits, leaving tombstones as Expire does; a blob larger than the
// whole budget is refused. The budget counts the object store's bytes, so
// nodes adding at once may still find it full: that Add fails.
func (n *Node) Files(ctx context.Context, maxBytes int64) (files.Store, error) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	kv, err := bucket(ctx, n.js, n.cfg, "files", 0)
	if err != nil {
		return nil, err
	}
	name := "natter_" + strings.ToLower(n.cfg.Name) + "_blobs"
	obs, err := n.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:   name,
		MaxBytes: max(maxBytes, 0),
		Storage:  jetstream.FileStorage,
		Replicas: n.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: object store %s: %w", name, err)
	}
	s := &fileStore{
		n:       n,
		kv:      kv,
		obs:     obs,
		max:     maxBytes,
		done:    make(chan struct{}),
		index:   make(map[string]tokenEntry),
		removed: make(map[string]uint64),
	}
	// The watch lasts as long as the store, and no longer than the node.
	s.ctx, s.stop = context.WithCancel(n.ctx)
	w, err := kv.Watch(s.ctx, "t.>")
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("cluster: watching files: %w", err)
	}
	if err := s.load(ctx, w); err != nil {
		w.Stop()
		s.stop()
		return nil, err
	}
	go s.watch(w)
	return s, nil
}

// op bounds one request to NATS by Timeout, the node's life and the
// store's.
func (s *fileStore) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.n.cfg.Timeout)
}

// load takes in w's entries up to the end of its initial values.
func (s *fileStore) load(ctx context.Context, w jetstream.KeyWatcher) error {
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("cluster: the watch of the files ended while loading")
			case e == nil:
				return nil
			}
			s.saw(e)
		case <-ctx.Done():
			return fmt.Errorf("cluster: loading the files: %w", ctx.Err())
		}
	}
}

// watch keeps the index up to date until Close.
func (s *fileStore) watch(w jetstream.KeyWatcher) {
	defer close(s.done)
	defer w.Stop()
	for e := range w.Updates() {
		if e != nil {
			s.saw(e)
		}
	}
}

// saw takes in a change of a t. key.
func (s *fileStore) saw(e jetstream.KeyValueEntry) {
	token, ok := strings.CutPrefix(e.Key(), "t.")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchRev = max(s.watchRev, e.Revision())
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.index, token)
		delete(s.removed, token)
		return
	}
	if rev, ok := s.removed[token]; ok && e.Revision() <= rev {
		return
	}
	var rec files.Record
	if json.Unmarshal(e.Value(), &rec) != nil {
		return
	}
	s.index[token] = tokenEntry{created: rec.Created, hash: rec.Hash, rev: e.Revision()}
}

// remember indexes a token this node made, unless the watch passed it on
// already (and perhaps its removal after it).
func (s *fileStore) remember(token string, e tokenEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.rev > s.watchRev {
		s.index[token] = e
	}
}

// forget drops a token this node removed, at revision rev, from the index.
func (s *fileStore) forget(token string, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.index[token]; ok && e.rev == rev {
		delete(s.index, token)
		s.removed[token] = rev // until the watch sees the removal
	}
}

// Alive implements files.Store from the index.
func (s *fileStore) Alive(token string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[token]
	return e.created, ok
}

// Add implements files.Store. It counts the reference to the blob, stores
// the blob if it is not stored (evicting the oldest uploads if the budget
// asks), then records the token. If a step fails, the steps before it are
// undone, as far as NATS answers: the reference is uncounted (and the
// object deleted if it was the only one), a record that may have been
// made is removed.
func (s *fileStore) Add(tmp string, rec files.Record) (string, error) {
	defer os.Remove(tmp)
	if s.ctx.Err() != nil {
		return "", errStoreClosed
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	if err := s.incref(rec.Hash, rec.Size); err != nil {
		return "", fmt.Errorf("cluster: counting a blob's reference: %w", err)
	}
	if err := s.storeBlob(tmp, rec); err != nil {
		s.decref(rec.Hash)
		return "", fmt.Errorf("cluster: storing a blob: %w", err)
	}
	token := rand.Text()
	ctx, cancel := s.op()
	rev, err := s.kv.Create(ctx, "t."+token, data)
	cancel()
	if err != nil {
		if !answered(err) {
			// Perhaps made all the same: removed before the reference
			// goes, so that no record outlives its reference.
			ctx, cancel := s.op()
			perr := s.kv.Purge(ctx, "t."+token, jetstream.PurgeTTL(markerTTL))
			cancel()
			if perr != nil {
				return "", fmt.Errorf("cluster: recording an upload: %w", err)
			}
		}
		s.decref(rec.Hash)
		return "", fmt.Errorf("cluster: recording an upload: %w", err)
	}
	s.remember(token, tokenEntry{created: rec.Created, hash: rec.Hash, rev: rev})
	return token, nil
}

// incref counts one more reference to the blob of hash, of size bytes.
func (s *fileStore) incref(hash string, size int64) error {
	key := "b." + hash
	var dyingRev uint64
	var dyingSince time.Time
	for tries := 0; tries < casTries; {
		ctx, cancel := s.op()
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = s.kv.Create(ctx, key, mustJSON(blobCount{Size: size, Refs: 1}))
		case err != nil:
		default:
			var b blobCount
			if err = json.Unmarshal(e.Value(), &b); err != nil {
				break
			}
			if b.Dying {
				if e.Revision() != dyingRev {
					dyingRev, dyingSince = e.Revision(), time.Now()
				}
				if time.Since(dyingSince) < 2*s.n.cfg.Timeout {
					// Its remover deletes the object, then the key.
					cancel()
					if err := s.pause(20 * time.Millisecond); err != nil {
						return err
					}
					continue
				}
				b = blobCount{} // its remover is gone: taken over
			}
			b.Size, b.Refs = size, max(b.Refs, 0)+1
			_, err = s.kv.Update(ctx, key, mustJSON(b), e.Revision())
		}
		cancel()
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		tries++
	}
	return errors.New("too many nodes changing it at once")
}

// decref counts one reference to the blob of hash less, and deletes the
// blob if that was the last.
func (s *fileStore) decref(hash string) error {
	key := "b." + hash
	for range casTries {
		ctx, cancel := s.op()
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			cancel()
			return nil
		}
		var b blobCount
		if err == nil {
			err = json.Unmarshal(e.Value(), &b)
		}
		if err != nil {
			cancel()
			return err
		}
		if b.Dying {
			cancel()
			return nil // being deleted already
		}
		if b.Refs--; b.Refs <= 0 {
			b = blobCount{Size: b.Size, Dying: true}
		}
		rev, err := s.kv.Update(ctx, key, mustJSON(b), e.Revision())
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrKeyExists):
			continue
		case err != nil:
			return err
		case b.Dying:
			return s.deleteBlob(hash, rev)
		}
		return nil
	}
	return errors.New("too many nodes changing it at once")
}

// deleteBlob deletes the object of hash, whose count was marked dying at
// revision rev, then the count. A failure leaves the count dying, and the
// object perhaps stored, until the blob is added again.
func (s *fileStore) deleteBlob(hash string, rev uint64) error {
	ctx, cancel := s.op()
	defer cancel()
	if err := s.obs.Delete(ctx, hash); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return err
	}
	err := s.kv.Purge(ctx, "b."+hash, jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL))
	if err != nil && !answered(err) {
		return err
	}
	return nil // or counted again meanwhile, by an Add that took it over
}

// storeBlob stores the blob of rec from the file tmp, unless stored.
func (s *fileStore) storeBlob(tmp string, rec files.Record) error {
	ctx, cancel := s.op()
	_, err := s.obs.GetInfo(ctx, rec.Hash)
	cancel()
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return err
	}
	if err := s.makeRoom(rec.Size); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	// Streamed from the file, a chunk at a time, with Timeout per
	// bytesPerTimeout.
	ctx, cancel = context.WithTimeout(s.ctx, s.n.cfg.Timeout*time.Duration(1+rec.Size/bytesPerTimeout))
	defer cancel()
	_, err = s.obs.Put(ctx, jetstream.ObjectMeta{Name: rec.Hash}, f)
	return err
}

// makeRoom evicts the oldest uploads until a blob of size bytes fits in
// the budget.
func (s *fileStore) makeRoom(size int64) error {
	if s.max <= 0 {
		return nil
	}
	need := size + (size/chunkSize+2)*objectOverhead
	if need > s.max {
		return errNoRoom
	}
	tried := make(map[string]bool)
	for {
		ctx, cancel := s.op()
		st, err := s.obs.Status(ctx)
		cancel()
		if err != nil {
			return err
		}
		if int64(st.Size())+need <= s.max {
			return nil
		}
		token, e, ok := s.oldest(tried)
		if !ok {
			return errNoRoom
		}
		tried[token] = true
		if err := s.remove(token, e, true, time.Now()); err != nil {
			return fmt.Errorf("evicting an upload: %w", err)
		}
	}
}

// oldest returns the oldest token of the index not in skip.
func (s *fileStore) oldest(skip map[string]bool) (string, tokenEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var token string
	var found tokenEntry
	for t, e := range s.index {
		if skip[t] {
			continue
		}
		if token == "" || e.created.Before(found.created) || e.created.Equal(found.created) && t < token {
			token, found = t, e
		}
	}
	return token, found, token != ""
}

// remove removes token, whose record is e, at its revision, so that of
// nodes removing it at once, only one does; leaves a tombstone dated now
// if asked; and counts its reference to its blob less.
func (s *fileStore) remove(token string, e tokenEntry, tombstone bool, now time.Time) error {
	ctx, cancel := s.op()
	err := s.kv.Purge(ctx, "t."+token, jetstream.LastRevision(e.rev), jetstream.PurgeTTL(markerTTL))
	cancel()
	if wrongRevision(err) {
		s.forget(token, e.rev)
		return nil // removed by another node
	}
	if err != nil {
		return err
	}
	s.forget(token, e.rev)
	var tombErr error
	if tombstone {
		ctx, cancel := s.op()
		_, tombErr = s.kv.Put(ctx, "g."+token, []byte(strconv.FormatInt(now.UnixNano(), 10)))
		cancel()
	}
	return errors.Join(tombErr, s.decref(e.hash))
}

// wrongRevision reports whether err is NATS refusing a change made at a
// revision that is no longer the last.
func wrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// pause waits d, or until the store ends.
func (s *fileStore) pause(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.ctx.Done():
		return errStoreClosed
	}
}

// Drop implements files.Store.
func (s *fileStore) Drop(token string) error {
	if s.ctx.Err() != nil {
		return errStoreClosed
	}
	rec, rev, ok, err := s.record(token)
	if err != nil || !ok {
		return err
	}
	if err := s.remove(token, tokenEntry{created: rec.Created, hash: rec.Hash, rev: rev}, false, time.Time{}); err != nil {
		return fmt.Errorf("cluster: dropping an upload: %w", err)
	}
	return nil
}

// record reads token's record, and its revision.
func (s *fileStore) record(token string) (files.Record, uint64, bool, error) {
	ctx, cancel := s.op()
	defer cancel()
	e, err := s.kv.Get(ctx, "t."+token)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		return files.Record{}, 0, false, nil
	case err != nil:
		return files.Record{}, 0, false, fmt.Errorf("cluster: reading a file's record: %w", err)
	}
	var rec files.Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return files.Record{}, 0, false, fmt.Errorf("cluster: reading a file's record: %w", err)
	}
	return rec, e.Revision(), true, nil
}

// Lookup implements files.Store.
func (s *fileStore) Lookup(token string) (rec files.Record, ok, gone bool, err error) {
	if s.ctx.Err() != nil {
		return files.Record{}, false, false, errStoreClosed
	}
	if rec, _, ok, err = s.record(token); ok || err != nil {
		return rec, ok, false, err
	}
	ctx, cancel := s.op()
	defer cancel()
	_, err = s.kv.Get(ctx, "g."+token)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		return files.Record{}, false, false, nil
	case err != nil:
		return files.Record{}, false, false, fmt.Errorf("cluster: reading a tombstone: %w", err)
	}
	return files.Record{}, false, true, nil
}

// Expire implements files.Store, for the tokens of the index. Nodes
// expiring at once remove each token once.
func (s *fileStore) Expire(cutoff, now time.Time) error {
	if s.ctx.Err() != nil {
		return errStoreClosed
	}
	type victim struct {
		token string
		e     tokenEntry
	}
	var victims []victim
	s.mu.Lock()
	for t, e := range s.index {
		if !e.created.After(cutoff) {
			victims = append(victims, victim{t, e})
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, v := range victims {
		if err := s.remove(v.token, v.e, true, now); err != nil {
			errs = append(errs, err)
			if s.ctx.Err() != nil {
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: removing expired files: %w", err)
	}
	return nil
}

// PruneGone implements files.Store: it lists the tombstones, and removes
// those dated at or before cutoff.
func (s *fileStore) PruneGone(cutoff time.Time) error {
	if s.ctx.Err() != nil {
		return errStoreClosed
	}
	ctx, cancel := s.op()
	l, err := s.kv.ListKeysFiltered(ctx, "g.>")
	var keys []string
	if err == nil {
		for k := range l.Keys() {
			keys = append(keys, k)
		}
		err = ctx.Err() // the listing ended early
	}
	cancel()
	if err != nil {
		return fmt.Errorf("cluster: listing tombstones: %w", err)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := s.prune(k, cutoff); err != nil {
			return fmt.Errorf("cluster: pruning tombstones: %w", err)
		}
	}
	return nil
}

// prune removes the tombstone k if dated at or before cutoff.
func (s *fileStore) prune(k string, cutoff time.Time) error {
	ctx, cancel := s.op()
	defer cancel()
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	at, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err == nil && at > cutoff.UnixNano() {
		return nil
	}
	err = s.kv.Purge(ctx, k, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(markerTTL))
	if wrongRevision(err) {
		return nil // written again, or pruned by another node
	}
	return err
}

// Close implements files.Store: it stops the watch and waits for it. The
// node stays open. Downloads already opened go on, until the node closes.
func (s *fileStore) Close() error {
	s.stop()
	<-s.done
	return nil
}

// Open implements files.Store. The blob is read from JetStream as it is
// read from the reader, from its position, so that Seek costs nothing
// until the next Read (which then skips the bytes before the position).
func (s *fileStore) Open(hash string) (io.ReadSeekCloser, error) {
	if s.ctx.Err() != nil {
		return nil, errStoreClosed
	}
	ctx, cancel := s.op()
	defer cancel()
	info, err := s.obs.GetInfo(ctx, hash)
	if err != nil {
		return nil, blobErr(hash, err)
	}
	return &blobReader{obs: s.obs, ctx: s.n.ctx, hash: hash, size: int64(info.Size)}, nil
}

// blobErr wraps err, of reading the blob of hash, as fs.ErrNotExist if the
// object is gone.
func blobErr(hash string, err error) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("cluster: blob %s: %w", hash, fs.ErrNotExist)
	}
	return fmt.Errorf("cluster: blob %s: %w", hash, err)
}

// blobReader reads a blob from the object store. Its methods are for one
// goroutine at a time.
type blobReader struct {
	obs  jetstream.ObjectStore
	ctx  context.Context // the node's
	hash string
	size int64

	pos    int64                  // of the next Read
	r      jetstream.ObjectResult // reading from rpos, or nil
	rpos   int64
	cancel context.CancelFunc // r's
	closed bool
}

// Seek implements io.Seeker: it sets the position of the next Read.
func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	if b.closed {
		return 0, os.ErrClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = b.pos + offset
	case io.SeekEnd:
		abs = b.size + offset
	default:
		return 0, errors.New("cluster: blob: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("cluster: blob: negative position")
	}
	b.pos = abs
	return abs, nil
}

// Read implements io.Reader.
func (b *blobReader) Read(p []byte) (int, error) {
	if b.closed {
		return 0, os.ErrClosed
	}
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.r != nil && b.rpos != b.pos {
		b.stopReading()
	}
	if b.r == nil {
		if err := b.startReading(); err != nil {
			return 0, err
		}
	}
	n, err := b.r.Read(p[:min(int64(len(p)), b.size-b.pos)])
	b.pos += int64(n)
	b.rpos = b.pos
	switch {
	case err == io.EOF && b.pos < b.size:
		err = io.ErrUnexpectedEOF
	case err == io.EOF:
		err = nil // the next Read says so
	case errors.Is(err, jetstream.ErrObjectNotFound):
		err = blobErr(b.hash, err)
	}
	if err != nil {
		b.stopReading()
	}
	return n, err
}

// startReading gets the object, and skips to the position.
func (b *blobReader) startReading() error {
	ctx, cancel := context.WithTimeout(b.ctx, downloadTimeout)
	r, err := b.obs.Get(ctx, b.hash)
	if err != nil {
		cancel()
		return blobErr(b.hash, err)
	}
	b.r, b.cancel, b.rpos = r, cancel, 0
	if b.pos > 0 {
		n, err := io.CopyN(io.Discard, r, b.pos)
		b.rpos = n
		if err != nil {
			b.stopReading()
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return blobErr(b.hash, err)
		}
	}
	return nil
}

func (b *blobReader) stopReading() {
	if b.r != nil {
		b.r.Close()
		b.cancel()
		b.r, b.cancel = nil, nil
	}
}

// Close implements io.Closer.
func (b *blobReader) Close() error {
	b.stopReading()
	b.closed = true
	return nil
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}
