package files

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natter-chat/natter/netfake"
)

// clock is the injectable clock of the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// transport serves a handler and gives a client for it. setup returns the
// base URL, the client, and start, which serves the handler.
type transport struct {
	name  string
	setup func(t *testing.T) (base string, c *http.Client, start func(http.Handler))
}

var transports = []transport{
	{"loopback", func(t *testing.T) (string, *http.Client, func(http.Handler)) {
		ts := httptest.NewUnstartedServer(nil)
		tr := &http.Transport{}
		start := func(h http.Handler) {
			ts.Config.Handler = h
			ts.Start()
			t.Cleanup(ts.Close)
			t.Cleanup(tr.CloseIdleConnections)
		}
		return "http://" + ts.Listener.Addr().String(), &http.Client{Transport: tr}, start
	}},
	{"netfake", func(t *testing.T) (string, *http.Client, func(http.Handler)) {
		nw := &netfake.Network{}
		ln, err := nw.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{DialContext: nw.DialContext}
		start := func(h http.Handler) {
			srv := &http.Server{Handler: h}
			done := make(chan struct{})
			go func() {
				defer close(done)
				srv.Serve(ln)
			}()
			t.Cleanup(func() {
				srv.Close()
				<-done
			})
			t.Cleanup(tr.CloseIdleConnections)
		}
		return "http://" + ln.Addr().String(), &http.Client{Transport: tr}, start
	}},
}

// forEach runs f over every transport.
func forEach(t *testing.T, f func(t *testing.T, tr transport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { f(t, tr) })
	}
}

// env is a Service served over a transport, with a fake clock and a post
// function that records.
type env struct {
	t     *testing.T
	s     *Service
	c     *http.Client
	clock *clock
	dir   string

	mu      sync.Mutex
	posts   []Upload
	postErr error
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newEnv(t *testing.T, tr transport, tweak func(*Config)) *env {
	t.Helper()
	base, c, start := tr.setup(t)
	e := &env{t: t, c: c, clock: &clock{t: epoch}, dir: t.TempDir()}
	cfg := Config{Dir: e.dir, BaseURL: base, Now: e.clock.Now}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg, e.post)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	e.s = s
	start(s.Handler())
	return e
}

func (e *env) post(u Upload) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.posts = append(e.posts, u)
	return e.postErr
}

func (e *env) setPostErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.postErr = err
}

func (e *env) uploads() []Upload {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Upload(nil), e.posts...)
}

func (e *env) offer(o Offer) Slot {
	e.t.Helper()
	if o.Quota == "" {
		o.Quota = "ann"
	}
	sl, err := e.s.Offer(o)
	if err != nil {
		e.t.Fatalf("Offer(%+v): %v", o, err)
	}
	return sl
}

// do makes a request and returns the response with its body read.
func (e *env) do(method, url string, body io.Reader, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, string(b)
}

// upload offers data as name and PUTs it, expecting 201; it returns the
// posted File.
func (e *env) upload(name string, data []byte) File {
	e.t.Helper()
	sl := e.offer(Offer{Name: name, Size: int64(len(data)), Room: "#go", From: "ann"})
	resp, body := e.do("PUT", sl.URL, bytes.NewReader(data))
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("PUT: %s: %s", resp.Status, body)
	}
	ups := e.uploads()
	return ups[len(ups)-1].File
}

func wantStatus(t *testing.T, resp *http.Response, body string, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("%s %s: got %s (%q), want %d", resp.Request.Method, resp.Request.URL.Path, resp.Status, body, code)
	}
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// files lists the regular files under dir/sub.
func (e *env) files(sub string) []string {
	e.t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(e.dir, sub), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) wantTmpEmpty() {
	e.t.Helper()
	if f := e.files("tmp"); len(f) != 0 {
		e.t.Errorf("temporary files left: %v", f)
	}
}

func (e *env) wantNoPosts() {
	e.t.Helper()
	if ups := e.uploads(); len(ups) != 0 {
		e.t.Errorf("posted %d uploads, want none", len(ups))
	}
}

// hookFile is a temporary file whose writes fail past failAfter bytes (if
// it is not negative) and that signals its first write on wrote.
type hookFile struct {
	WriteFile
	failAfter int64
	n         int64
	wrote     chan<- struct{}
	once      sync.Once
}

func (f *hookFile) Write(p []byte) (int, error) {
	if f.wrote != nil {
		f.once.Do(func() { close(f.wrote) })
	}
	if f.failAfter >= 0 && f.n+int64(len(p)) > f.failAfter {
		k := f.failAfter - f.n
		n, _ := f.WriteFile.Write(p[:k])
		f.n += int64(n)
		return n, &fs.PathError{Op: "write", Path: "tmp", Err: syscall.ENOSPC}
	}
	n, err := f.WriteFile.Write(p)
	f.n += int64(n)
	return n, err
}

// openHook returns an OpenFile whose files are hookFiles; wrote, if not
// nil, receives a channel per file opened that closes at its first write.
func openHook(failAfter int64, wrote chan<- chan struct{}) func(string, int, os.FileMode) (WriteFile, error) {
	return func(name string, flag int, perm os.FileMode) (WriteFile, error) {
		f, err := os.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		h := &hookFile{WriteFile: f, failAfter: failAfter}
		if wrote != nil {
			ch := make(chan struct{})
			h.wrote = ch
			wrote <- ch
		}
		return h, nil
	}
}

// heldPut is a PUT whose body the test writes bit by bit.
type heldPut struct {
	pw   *io.PipeWriter
	done chan heldResult
}

type heldResult struct {
	resp *http.Response
	body string
	err  error
}

// startPut starts a PUT of size bytes whose body comes from the returned
// heldPut's pipe.
func (e *env) startPut(url string, size int64, hdr ...string) *heldPut {
	pr, pw := io.Pipe()
	req, err := http.NewRequest("PUT", url, pr)
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = size
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	h := &heldPut{pw: pw, done: make(chan heldResult, 1)}
	go func() {
		resp, err := e.c.Do(req)
		if err != nil {
			h.done <- heldResult{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		h.done <- heldResult{resp: resp, body: string(b), err: err}
	}()
	e.t.Cleanup(func() { pw.Close() })
	return h
}

// wait returns the held PUT's response, failing after a deadline.
func (h *heldPut) wait(t *testing.T) heldResult {
	t.Helper()
	select {
	case r := <-h.done:
		if r.err != nil {
			t.Fatalf("held PUT: %v", r.err)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("held PUT: no response within 10s")
		return heldResult{}
	}
}

// recv waits for a value on ch, failing after a deadline.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received within 10s")
		var zero T
		return zero
	}
}

func has(s, sub string) bool { return strings.Contains(s, sub) }
