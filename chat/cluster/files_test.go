package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/chat/files"
)

// fileNodes joins two nodes to a new NATS, each with its files store of
// maxBytes.
func fileNodes(t *testing.T, maxBytes int64) (a, b *fileStore) {
	t.Helper()
	ns := startNATS(t)
	return filesOf(t, ns, maxBytes), filesOf(t, ns, maxBytes)
}

// filesOf joins a node to ns and opens its files store, closing it at
// cleanup (before the node), and checks that Close ends its watch.
func filesOf(t *testing.T, ns *natsserver.Server, maxBytes int64) *fileStore {
	t.Helper()
	n := joinWith(t, ns, Config{Timeout: 2 * time.Second})
	st, err := n.Files(context.Background(), maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*fileStore)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		select {
		case <-s.done:
		default:
			t.Error("Close returned before the watch ended")
		}
		if err := s.Close(); err != nil { // idempotent
			t.Error(err)
		}
		if _, err := n.Topic("lobby"); err != nil { // the node is still open
			t.Errorf("the node after the store's Close: %v", err)
		}
	})
	return s
}

// blob returns n bytes of seeded noise.
func blob(seed uint64, n int) []byte {
	r := mrand.New(mrand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// add stores data, made at created, through s, and checks that its
// temporary file is gone.
func add(t *testing.T, s files.Store, data []byte, created time.Time) (string, files.Record) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "upload")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	rec := files.Record{Hash: hex.EncodeToString(sum[:]), Name: "a.bin", Size: int64(len(data)), MIME: "application/octet-stream", Created: created}
	token, err := s.Add(tmp, rec)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary file is still there: %v", err)
	}
	return token, rec
}

// readAll opens hash through s and reads it from offset.
func readAll(t *testing.T, s files.Store, hash string, offset int64) []byte {
	t.Helper()
	f, err := s.Open(hash)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer f.Close()
	if offset != 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			t.Fatal(err)
		}
	}
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return got
}

func refs(t *testing.T, s *fileStore, hash string) (int, bool) {
	t.Helper()
	e, err := s.kv.Get(context.Background(), "b."+hash)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var b blobCount
	if err := json.Unmarshal(e.Value(), &b); err != nil {
		t.Fatal(err)
	}
	return b.Refs, true
}

func wantGone(t *testing.T, s files.Store, hash string) {
	t.Helper()
	if _, err := s.Open(hash); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a removed blob = %v; want fs.ErrNotExist", err)
	}
}

func TestFilesAddedOnOneNodeAreServedByAnother(t *testing.T) {
	a, b := fileNodes(t, 0)
	data := blob(1, 300<<10+17) // three chunks, the last partial
	created := time.Now().Round(0)
	token, rec := add(t, a, data, created)

	got, ok, gone, err := b.Lookup(token)
	if err != nil || !ok || gone || got.Hash != rec.Hash || got.Size != rec.Size || !got.Created.Equal(created) {
		t.Fatalf("Lookup on b = %+v, %v, %v, %v", got, ok, gone, err)
	}
	if !bytes.Equal(readAll(t, b, rec.Hash, 0), data) {
		t.Error("the blob read on b differs")
	}
	if got := readAll(t, b, rec.Hash, 200_000); !bytes.Equal(got, data[200_000:]) {
		t.Errorf("read from 200000: %d bytes, not the blob's tail", len(got))
	}

	f, err := b.Open(rec.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if size, err := f.Seek(0, io.SeekEnd); err != nil || size != int64(len(data)) {
		t.Errorf("Seek(0, SeekEnd) = %d, %v; want %d", size, err, len(data))
	}
	if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want io.EOF", n, err)
	}
	// As http.ServeContent does for a range: the end, then the start.
	if _, err := f.Seek(-10, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	if _, err := io.ReadFull(f, p); err != nil || !bytes.Equal(p, data[len(data)-10:len(data)-6]) {
		t.Errorf("read of 4 bytes from the end-10 = %v, %v", p, err)
	}
	if pos, _ := f.Seek(2, io.SeekCurrent); pos != int64(len(data))-4 {
		t.Errorf("Seek(2, SeekCurrent) = %d", pos)
	}
	if rest, err := io.ReadAll(f); err != nil || !bytes.Equal(rest, data[len(data)-4:]) {
		t.Errorf("the last 4 bytes = %v, %v", rest, err)
	}
	if _, err := f.Seek(1, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(f); err != nil || !bytes.Equal(rest, data[1:]) {
		t.Errorf("read from 1 after the end: %d bytes, %v", len(rest), err)
	}
	f.Close()

	if _, ok := a.Alive(token); !ok {
		t.Error("not alive on a right after Add")
	}
	waitFor(t, 5*time.Second, "alive on b", func() bool {
		at, ok := b.Alive(token)
		return ok && at.Equal(created)
	})
	if err := a.Drop(token); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Alive(token); ok {
		t.Error("alive on a after Drop")
	}
	waitFor(t, 5*time.Second, "dead on b", func() bool { _, ok := b.Alive(token); return !ok })
	if _, ok, gone, err := b.Lookup(token); ok || gone || err != nil {
		t.Errorf("Lookup of a dropped token = %v, %v, %v; want unknown (no tombstone)", ok, gone, err)
	}
	wantGone(t, b, rec.Hash)
	if _, ok := refs(t, a, rec.Hash); ok {
		t.Error("the blob's count outlived its last token")
	}
	if _, ok, gone, err := b.Lookup("NOSUCHTOKEN"); ok || gone || err != nil {
		t.Errorf("Lookup of an unknown token = %v, %v, %v", ok, gone, err)
	}
}

func TestFilesIdenticalBlobsAreStoredOnce(t *testing.T) {
	a, b := fileNodes(t, 0)
	data := blob(2, 1000)
	now := time.Now()
	t1, rec := add(t, a, data, now)
	t2, _ := add(t, b, data, now)
	if t1 == t2 {
		t.Fatal("the same token twice")
	}
	if n, _ := refs(t, a, rec.Hash); n != 2 {
		t.Fatalf("refs = %d; want 2", n)
	}
	objs, err := a.obs.List(context.Background())
	if err != nil || len(objs) != 1 {
		t.Fatalf("objects: %d, %v; want 1", len(objs), err)
	}
	if err := a.Drop(t1); err != nil {
		t.Fatal(err)
	}
	if n, _ := refs(t, a, rec.Hash); n != 1 {
		t.Fatalf("refs after a Drop = %d; want 1", n)
	}
	if !bytes.Equal(readAll(t, b, rec.Hash, 0), data) {
		t.Error("the blob's other token no longer serves it")
	}
	if _, ok, _, err := b.Lookup(t2); !ok || err != nil {
		t.Errorf("Lookup of the other token = %v, %v", ok, err)
	}
	if err := b.Drop(t2); err != nil {
		t.Fatal(err)
	}
	wantGone(t, a, rec.Hash)
}

func TestFilesExpireRemovesOldTokensOnceAcrossNodes(t *testing.T) {
	a, b := fileNodes(t, 0)
	now := time.Now()
	old, recent := now.Add(-2*time.Hour), now.Add(-time.Minute)
	shared, alone := blob(3, 5000), blob(4, 6000)
	oldShared, recShared := add(t, a, shared, old)
	recentShared, _ := add(t, a, shared, recent)
	oldAlone, recAlone := add(t, b, alone, old)
	for _, s := range []*fileStore{a, b} {
		waitFor(t, 5*time.Second, "every token indexed", func() bool {
			_, x := s.Alive(oldShared)
			_, y := s.Alive(recentShared)
			_, z := s.Alive(oldAlone)
			return x && y && z
		})
	}

	// Both nodes at once: each token goes once, each reference once.
	cutoff := now.Add(-time.Hour)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*fileStore{a, b} {
		wg.Go(func() { errs[i] = s.Expire(cutoff, now) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{oldShared, oldAlone} {
		if _, ok, gone, err := b.Lookup(tok); ok || !gone || err != nil {
			t.Errorf("Lookup of an expired token = %v, %v, %v; want gone", ok, gone, err)
		}
		if _, ok := a.Alive(tok); ok {
			t.Error("an expired token is alive")
		}
	}
	if n, _ := refs(t, a, recShared.Hash); n != 1 {
		t.Errorf("refs of the shared blob = %d; want 1", n)
	}
	if !bytes.Equal(readAll(t, b, recShared.Hash, 0), shared) {
		t.Error("the shared blob no longer reads")
	}
	wantGone(t, b, recAlone.Hash)

	// Tombstones go once old enough.
	if err := a.PruneGone(now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, _, gone, _ := b.Lookup(oldAlone); !gone {
		t.Error("a recent tombstone was pruned")
	}
	if err := a.PruneGone(now); err != nil {
		t.Fatal(err)
	}
	if _, ok, gone, err := b.Lookup(oldAlone); ok || gone || err != nil {
		t.Errorf("Lookup after PruneGone = %v, %v, %v; want unknown", ok, gone, err)
	}
	if _, ok, _, _ := b.Lookup(recentShared); !ok {
		t.Error("the recent token went")
	}
}

func TestFilesAFullStoreEvictsTheOldestUploads(t *testing.T) {
	const max = 700 << 10
	a, b := fileNodes(t, max)
	now := time.Now()
	t1, r1 := add(t, a, blob(5, 250<<10), now.Add(-3*time.Minute))
	t2, r2 := add(t, b, blob(6, 250<<10), now.Add(-2*time.Minute))
	waitFor(t, 5*time.Second, "b's upload indexed on a", func() bool { _, ok := a.Alive(t2); return ok })
	t3, r3 := add(t, a, blob(7, 250<<10), now.Add(-time.Minute))
	if _, ok, gone, err := b.Lookup(t1); ok || !gone || err != nil {
		t.Errorf("Lookup of the evicted upload = %v, %v, %v; want gone", ok, gone, err)
	}
	wantGone(t, b, r1.Hash)
	for _, r := range []files.Record{r2, r3} {
		if got := readAll(t, b, r.Hash, 0); int64(len(got)) != r.Size {
			t.Errorf("a kept blob reads %d bytes", len(got))
		}
	}
	if _, ok, _, _ := b.Lookup(t3); !ok {
		t.Error("the new upload is not stored")
	}

	// Larger than the whole budget: refused, nothing evicted.
	tmp := filepath.Join(t.TempDir(), "big")
	big := blob(8, max+1)
	if err := os.WriteFile(tmp, big, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(big)
	hash := hex.EncodeToString(sum[:])
	if _, err := a.Add(tmp, files.Record{Hash: hash, Size: int64(len(big)), Created: now}); !errors.Is(err, errNoRoom) {
		t.Errorf("Add past the budget = %v; want errNoRoom", err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the refused upload's temporary file is still there")
	}
	if _, ok := refs(t, a, hash); ok {
		t.Error("the refused blob is counted")
	}
	for _, tok := range []string{t2, t3} {
		if _, ok, _, _ := b.Lookup(tok); !ok {
			t.Error("an upload was evicted for one that does not fit")
		}
	}
}
