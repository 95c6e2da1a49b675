package files

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// An upload its sender may no longer post is refused before it is
// stored, so it can't evict anyone's file to make room.
func TestAnUploadThatCanNotBePostedEvictsNothing(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		refuse := errors.New("ann left #go")
		var check error
		e := newEnv(t, tr, func(c *Config) {
			c.MaxBytes = 100
			c.Check = func(Offer) error { return check }
		})
		kept := e.upload("kept", bytes.Repeat([]byte("k"), 80))
		check = refuse
		sl := e.offer(Offer{Name: "evictor", Size: 80, Room: "#go", From: "ann"})
		resp, body := e.do("PUT", sl.URL, bytes.NewReader(bytes.Repeat([]byte("e"), 80)))
		wantStatus(t, resp, body, http.StatusConflict)
		if !has(body, "ann left #go") {
			t.Errorf("the refusal says %q", body)
		}
		resp, body = e.do("GET", kept.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
	})
}

// A file stored and then not posted (evictions may have made room for it)
// keeps its quota charge: failing uploads on purpose costs the uploader.
func TestAnUploadStoredButNotPostedIsNotRefunded(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, func(c *Config) { c.QuotaBytes, c.MaxFileBytes = 100, 100 })
		e.setPostErr(errors.New("no one to post to"))
		sl := e.offer(Offer{Name: "a", Size: 60, Room: "#go", From: "ann"})
		resp, body := e.do("PUT", sl.URL, bytes.NewReader(bytes.Repeat([]byte("a"), 60)))
		wantStatus(t, resp, body, http.StatusConflict)
		var qe *QuotaError
		if _, err := e.s.Offer(Offer{Name: "b", Size: 60, Quota: "ann"}); !errors.As(err, &qe) {
			t.Fatalf("Offer after a stored, unposted upload: %v, want a QuotaError", err)
		}
	})
}

func TestOneUploaderHasAtMostMaxOpenSlots(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		for range MaxOpenSlots {
			e.offer(Offer{Name: "a", Size: 1})
		}
		if _, err := e.s.Offer(Offer{Name: "a", Size: 1, Quota: "ann"}); !errors.Is(err, ErrTooManyUploads) {
			t.Fatalf("Offer past MaxOpenSlots: %v, want ErrTooManyUploads", err)
		}
		if _, err := e.s.Offer(Offer{Name: "a", Size: 1, Quota: "bob"}); err != nil {
			t.Fatalf("another uploader's offer: %v", err)
		}
	})
}

// A blob a crash left without its record (renamed into place, record not
// committed) is removed when the store opens again; recorded ones stay.
func TestABlobLeftByACrashIsRemovedOnOpening(t *testing.T) {
	dir := t.TempDir()
	st, err := openStore(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(st.tmpDir(), "x.part")
	if err := os.WriteFile(tmp, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash := sum([]byte("kept"))
	if _, err := st.Add(tmp, Record{Hash: hash, Name: "kept", Size: 4, Created: epoch}); err != nil {
		t.Fatal(err)
	}
	orphan := st.blobPath(sum([]byte("orphan")))
	if err := os.MkdirAll(filepath.Dir(orphan), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte("orphan"), 0o600); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = openStore(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the orphan is still there: %v", err)
	}
	if _, err := os.Stat(st.blobPath(hash)); err != nil {
		t.Errorf("the recorded blob is gone: %v", err)
	}
}
