package files

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

func TestDownloadErrors(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		f := e.upload("a.txt", []byte("0123456789"))
		resp, body := e.do("GET", f.URL, nil, "Range", "bytes=100-200")
		wantStatus(t, resp, body, http.StatusRequestedRangeNotSatisfiable)

		base := e.s.cfg.BaseURL
		for _, c := range []struct {
			method, path string
			code         int
		}{
			{"GET", "/f/NOSUCHTOKEN", http.StatusNotFound},
			{"HEAD", "/f/NOSUCHTOKEN", http.StatusNotFound},
			{"GET", "/", http.StatusNotFound},
			{"GET", "/f/", http.StatusNotFound},
			{"GET", "/x/" + f.Token, http.StatusNotFound},
			{"GET", "/f/" + f.Token + "/more", http.StatusNotFound},
			{"POST", "/f/" + f.Token, http.StatusMethodNotAllowed},
			{"DELETE", "/f/" + f.Token, http.StatusMethodNotAllowed},
			{"GET", "/u/SOMETOKEN", http.StatusMethodNotAllowed},
			{"POST", "/u/SOMETOKEN", http.StatusMethodNotAllowed},
		} {
			resp, body := e.do(c.method, base+c.path, nil)
			wantStatus(t, resp, body, c.code)
		}
	})
}

func TestDedup(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, func(c *Config) { c.Retain = time.Hour })
		data := []byte("the same bytes, shared twice")
		f1 := e.upload("one.txt", data)
		e.clock.Advance(30 * time.Minute)
		f2 := e.upload("two.txt", data)
		if f1.Token == f2.Token {
			t.Fatal("one token for two uploads")
		}
		if b := e.files("blobs"); len(b) != 1 {
			t.Fatalf("blobs: %v, want one", b)
		}
		if got := e.s.store.(*store).usage(); got != int64(len(data)) {
			t.Errorf("usage %d, want %d", got, len(data))
		}
		resp, _ := e.do("GET", f2.URL, nil)
		if cd := resp.Header.Get("Content-Disposition"); cd != "attachment; filename=two.txt" {
			t.Errorf("Content-Disposition %q", cd)
		}

		// The first expires; the second, sharing its blob, still serves.
		e.clock.Advance(31 * time.Minute)
		if err := e.s.Sweep(); err != nil {
			t.Fatal(err)
		}
		resp, body := e.do("GET", f1.URL, nil)
		wantStatus(t, resp, body, http.StatusGone)
		resp, body = e.do("GET", f2.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
		if body != string(data) {
			t.Errorf("GET %q", body)
		}
		if b := e.files("blobs"); len(b) != 1 {
			t.Fatalf("blobs: %v, want one", b)
		}

		e.clock.Advance(30 * time.Minute)
		e.s.Sweep()
		resp, body = e.do("GET", f2.URL, nil)
		wantStatus(t, resp, body, http.StatusGone)
		if b := e.files("blobs"); len(b) != 0 {
			t.Fatalf("blobs: %v, want none", b)
		}
		if got := e.s.store.(*store).usage(); got != 0 {
			t.Errorf("usage %d", got)
		}
	})
}

func TestRetention(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, func(c *Config) { c.Retain = time.Hour })
		f := e.upload("a.txt", []byte("short-lived"))
		resp, _ := e.do("GET", f.URL, nil)
		if got := resp.Header.Get("Cache-Control"); got != "private, max-age=3600" {
			t.Errorf("Cache-Control %q", got)
		}
		e.clock.Advance(time.Hour)
		// Before the sweep, the age is checked at the request.
		resp, body := e.do("GET", f.URL, nil)
		wantStatus(t, resp, body, http.StatusGone)
		if e.s.Live(f.Token) {
			t.Error("Live after Retain")
		}
		if err := e.s.Sweep(); err != nil {
			t.Fatal(err)
		}
		if b := e.files("blobs"); len(b) != 0 {
			t.Fatalf("blobs after the sweep: %v", b)
		}
		resp, body = e.do("HEAD", f.URL, nil)
		wantStatus(t, resp, body, http.StatusGone)

		// Tombstones are forgotten after 90 days: then 404.
		e.clock.Advance(tombstoneTTL)
		e.s.Sweep()
		resp, body = e.do("GET", f.URL, nil)
		wantStatus(t, resp, body, http.StatusNotFound)
	})
}

func TestRetainForever(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, func(c *Config) { c.Retain = -1 })
		f := e.upload("a.txt", []byte("kept"))
		e.clock.Advance(10 * 365 * 24 * time.Hour)
		e.s.Sweep()
		resp, body := e.do("GET", f.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
	})
}

func TestEviction(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, func(c *Config) { c.MaxBytes = 100 })
		up := func(name string, b byte) File {
			e.clock.Advance(time.Minute)
			return e.upload(name, bytes.Repeat([]byte{b}, 30))
		}
		a, b, c := up("a", 'a'), up("b", 'b'), up("c", 'c')
		b2 := up("b again", 'b') // shares b's blob: it needs no room
		if got := e.s.store.(*store).usage(); got != 90 {
			t.Fatalf("usage %d, want 90", got)
		}
		d := up("d", 'd')
		e.wantStatuses(map[File]int{a: 410, b: 200, c: 200, b2: 200, d: 200})

		// Evicting b's first upload frees nothing, as b2 shares the blob;
		// c goes next.
		f := up("e", 'e')
		e.wantStatuses(map[File]int{b: 410, c: 410, b2: 200, d: 200, f: 200})
		if got := e.s.store.(*store).usage(); got != 90 {
			t.Errorf("usage %d, want 90", got)
		}
		if n := len(e.files("blobs")); n != 3 {
			t.Errorf("%d blobs, want 3", n)
		}
	})
}

// wantStatuses checks the status of a GET of each file.
func (e *env) wantStatuses(want map[File]int) {
	e.t.Helper()
	for f, code := range want {
		resp, body := e.do("GET", f.URL, nil)
		if resp.StatusCode != code {
			e.t.Errorf("GET %s: %s (%q), want %d", f.Name, resp.Status, body, code)
		}
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir}, func(Upload) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = New(Config{Dir: dir}, func(Upload) error { return nil })
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	s.Close()
}
