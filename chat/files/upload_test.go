package files

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// chunked hides a reader's length, so the request body is chunked.
type chunked struct{ io.Reader }

func TestHappyPath(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		data := []byte("hello, world: a file of plain text\n")
		owner := &struct{ id int }{7}
		sl := e.offer(Offer{Name: "notes.txt", Size: int64(len(data)), SHA256: sum(data),
			From: "ann", Room: "#go", Owner: owner})
		if sl.URL != e.s.cfg.BaseURL+"/u/"+sl.Token || len(sl.Token) < 22 || !sl.Expires.Equal(epoch.Add(DefaultUploadTTL)) {
			t.Fatalf("slot %+v", sl)
		}

		resp, body := e.do("HEAD", sl.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
		if resp.Header.Get("Upload-Offset") != "0" || resp.Header.Get("Upload-Length") != strconv.Itoa(len(data)) {
			t.Errorf("HEAD before: %v", resp.Header)
		}

		resp, body = e.do("PUT", sl.URL, bytes.NewReader(data))
		wantStatus(t, resp, body, http.StatusCreated)
		ups := e.uploads()
		if len(ups) != 1 {
			t.Fatalf("%d posts", len(ups))
		}
		f := ups[0].File
		want := File{Name: "notes.txt", Size: int64(len(data)), MIME: "text/plain; charset=utf-8",
			SHA256: sum(data), Token: f.Token, URL: e.s.cfg.BaseURL + "/f/" + f.Token}
		if f != want || f.Token == sl.Token || f.Token == f.SHA256 || len(f.Token) < 22 {
			t.Fatalf("posted %+v, want %+v", f, want)
		}
		if ups[0].Offer.Owner != owner || ups[0].Offer.Room != "#go" || ups[0].Offer.From != "ann" {
			t.Errorf("posted offer %+v", ups[0].Offer)
		}
		if body != f.URL+"\n" || resp.Header.Get("Location") != f.URL {
			t.Errorf("201 body %q, Location %q", body, resp.Header.Get("Location"))
		}
		if !e.s.Live(f.Token) {
			t.Error("Live: false")
		}

		resp, body = e.do("GET", f.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
		if body != string(data) {
			t.Errorf("GET body %q", body)
		}
		for k, v := range map[string]string{
			"ETag":                   `"` + sum(data) + `"`,
			"Content-Type":           "text/plain; charset=utf-8",
			"Content-Disposition":    "attachment; filename=notes.txt",
			"X-Content-Type-Options": "nosniff",
			"Cache-Control":          "private, max-age=86400",
			"Content-Length":         strconv.Itoa(len(data)),
			"Accept-Ranges":          "bytes",
		} {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}

		resp, body = e.do("GET", f.URL, nil, "Range", "bytes=7-11")
		wantStatus(t, resp, body, http.StatusPartialContent)
		if body != "world" || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 7-11/%d", len(data)) {
			t.Errorf("Range: %q, Content-Range %q", body, resp.Header.Get("Content-Range"))
		}
		resp, body = e.do("GET", f.URL, nil, "If-None-Match", `"`+sum(data)+`"`)
		wantStatus(t, resp, body, http.StatusNotModified)
		resp, body = e.do("HEAD", f.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
		if body != "" || resp.ContentLength != int64(len(data)) {
			t.Errorf("HEAD: body %q, length %d", body, resp.ContentLength)
		}

		// The slot is one-time.
		resp, body = e.do("PUT", sl.URL, bytes.NewReader(data))
		wantStatus(t, resp, body, http.StatusGone)
		resp, body = e.do("HEAD", sl.URL, nil)
		wantStatus(t, resp, body, http.StatusGone)
		e.wantTmpEmpty()
	})
}

func TestUploadNames(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		f := e.upload("résumé \"final\".pdf", []byte("%PDF-1.4 body"))
		resp, body := e.do("GET", f.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
		if got, want := resp.Header.Get("Content-Disposition"), `attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%22final%22.pdf`; got != want {
			t.Errorf("Content-Disposition %q, want %q", got, want)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/pdf" {
			t.Errorf("Content-Type %q", got)
		}
	})
}

func TestUploadTooLong(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		data := bytes.Repeat([]byte("x"), 100)
		for _, c := range []struct {
			name string
			body io.Reader
		}{
			{"Content-Length", bytes.NewReader(data)},
			{"chunked", chunked{bytes.NewReader(data)}},
		} {
			t.Run(c.name, func(t *testing.T) {
				sl := e.offer(Offer{Name: "a", Size: 50})
				resp, body := e.do("PUT", sl.URL, c.body)
				wantStatus(t, resp, body, http.StatusRequestEntityTooLarge)
				e.wantTmpEmpty()
				e.wantNoPosts()
				resp, body = e.do("HEAD", sl.URL, nil)
				wantStatus(t, resp, body, http.StatusGone)
			})
		}
	})
}

func TestUploadShortThenResume(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		data := bytes.Repeat([]byte("0123456789"), 10)
		for _, c := range []struct {
			name string
			body io.Reader
		}{
			{"Content-Length", bytes.NewReader(data[:40])},
			{"chunked", chunked{bytes.NewReader(data[:40])}},
		} {
			t.Run(c.name, func(t *testing.T) {
				sl := e.offer(Offer{Name: "a", Size: 100, SHA256: sum(data)})
				resp, body := e.do("PUT", sl.URL, c.body)
				wantStatus(t, resp, body, http.StatusBadRequest)
				if !has(body, "short") || resp.Header.Get("Upload-Offset") != "40" {
					t.Errorf("400: %q, %v", body, resp.Header)
				}
				resp, body = e.do("HEAD", sl.URL, nil)
				wantStatus(t, resp, body, http.StatusOK)
				if resp.Header.Get("Upload-Offset") != "40" {
					t.Errorf("HEAD: Upload-Offset %q", resp.Header.Get("Upload-Offset"))
				}
				// A range that doesn't continue at the offset.
				resp, body = e.do("PUT", sl.URL, bytes.NewReader(data[30:]), "Content-Range", "bytes 30-99/100")
				wantStatus(t, resp, body, http.StatusRequestedRangeNotSatisfiable)
				if resp.Header.Get("Upload-Offset") != "40" {
					t.Errorf("416: Upload-Offset %q", resp.Header.Get("Upload-Offset"))
				}
				resp, body = e.do("PUT", sl.URL, bytes.NewReader(data[40:]), "Content-Range", "bytes 40-99/99")
				wantStatus(t, resp, body, http.StatusRequestedRangeNotSatisfiable)
				resp, body = e.do("PUT", sl.URL, bytes.NewReader(data[40:]), "Content-Range", "40-99")
				wantStatus(t, resp, body, http.StatusBadRequest)

				resp, body = e.do("PUT", sl.URL, bytes.NewReader(data[40:]), "Content-Range", "bytes 40-99/100")
				wantStatus(t, resp, body, http.StatusCreated)
				ups := e.uploads()
				if f := ups[len(ups)-1].File; f.SHA256 != sum(data) {
					t.Errorf("SHA256 %s", f.SHA256)
				}
				e.wantTmpEmpty()
			})
		}
	})
}

func TestUploadChunks(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		data := []byte("0123456789")
		sl := e.offer(Offer{Name: "a", Size: 10})
		resp, body := e.do("PUT", sl.URL, bytes.NewReader(data[:5]), "Content-Range", "bytes 0-4/10")
		wantStatus(t, resp, body, http.StatusNoContent)
		if resp.Header.Get("Upload-Offset") != "5" {
			t.Errorf("204: Upload-Offset %q", resp.Header.Get("Upload-Offset"))
		}
		resp, body = e.do("PUT", sl.URL, bytes.NewReader(data[5:]), "Content-Range", "bytes 5-9/10")
		wantStatus(t, resp, body, http.StatusCreated)
		resp, body = e.do("GET", e.uploads()[0].File.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
		if body != string(data) {
			t.Errorf("GET %q", body)
		}
	})
}

func TestUploadRestart(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		data := []byte("0123456789")
		sl := e.offer(Offer{Name: "a", Size: 10, SHA256: sum(data)})
		resp, body := e.do("PUT", sl.URL, bytes.NewReader([]byte("abcde")))
		wantStatus(t, resp, body, http.StatusBadRequest)
		// A PUT without Content-Range starts again from byte 0.
		resp, body = e.do("PUT", sl.URL, bytes.NewReader(data))
		wantStatus(t, resp, body, http.StatusCreated)
	})
}

func TestUploadHashMismatch(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		data, other := []byte("the real bytes"), []byte("other bytes!!!")
		sl := e.offer(Offer{Name: "a", Size: int64(len(data)), SHA256: sum(other)})
		resp, body := e.do("PUT", sl.URL, bytes.NewReader(data))
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if !has(body, sum(data)) || !has(body, sum(other)) {
			t.Errorf("422 body %q lacks the hashes", body)
		}
		e.wantNoPosts()
		e.wantTmpEmpty()
		if b := e.files("blobs"); len(b) != 0 {
			t.Errorf("blobs: %v", b)
		}
		resp, body = e.do("PUT", sl.URL, bytes.NewReader(data))
		wantStatus(t, resp, body, http.StatusGone)
	})
}

func TestUploadSlots(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		resp, body := e.do("PUT", e.s.cfg.BaseURL+"/u/NOSUCHTOKEN", bytes.NewReader([]byte("x")))
		wantStatus(t, resp, body, http.StatusNotFound)
		resp, body = e.do("HEAD", e.s.cfg.BaseURL+"/u/NOSUCHTOKEN", nil)
		wantStatus(t, resp, body, http.StatusNotFound)

		// Expiry: a partial upload's temporary file goes with its slot.
		sl := e.offer(Offer{Name: "a", Size: 10})
		resp, body = e.do("PUT", sl.URL, bytes.NewReader([]byte("abc")))
		wantStatus(t, resp, body, http.StatusBadRequest)
		if len(e.files("tmp")) != 1 {
			t.Fatalf("tmp: %v", e.files("tmp"))
		}
		e.clock.Advance(DefaultUploadTTL)
		if err := e.s.Sweep(); err != nil {
			t.Fatal(err)
		}
		e.wantTmpEmpty()
		resp, body = e.do("PUT", sl.URL, bytes.NewReader([]byte("0123456789")))
		wantStatus(t, resp, body, http.StatusGone)
		resp, body = e.do("HEAD", sl.URL, nil)
		wantStatus(t, resp, body, http.StatusGone)

		// Without a sweep, expiry is seen at the request.
		sl = e.offer(Offer{Name: "a", Size: 10})
		e.clock.Advance(DefaultUploadTTL)
		resp, body = e.do("PUT", sl.URL, bytes.NewReader([]byte("0123456789")))
		wantStatus(t, resp, body, http.StatusGone)

		// An ended slot is forgotten an UploadTTL later.
		e.clock.Advance(DefaultUploadTTL)
		e.s.Sweep()
		resp, body = e.do("PUT", sl.URL, bytes.NewReader([]byte("0123456789")))
		wantStatus(t, resp, body, http.StatusNotFound)
		e.wantNoPosts()
	})
}

func TestUploadDiskFull(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, func(c *Config) { c.OpenFile = openHook(1000, nil) })
		sl := e.offer(Offer{Name: "a", Size: 5000})
		resp, body := e.do("PUT", sl.URL, bytes.NewReader(bytes.Repeat([]byte("x"), 5000)))
		wantStatus(t, resp, body, http.StatusInsufficientStorage)
		e.wantTmpEmpty()
		e.wantNoPosts()
		resp, body = e.do("HEAD", sl.URL, nil)
		wantStatus(t, resp, body, http.StatusGone)
		// The quota was refunded.
		e.offer(Offer{Name: "a", Size: DefaultMaxFileBytes})
	})
}

func TestUploadPostFails(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		e.setPostErr(errors.New("you are not in #go any more"))
		data := []byte("some bytes")
		sl := e.offer(Offer{Name: "a", Size: int64(len(data))})
		resp, body := e.do("PUT", sl.URL, bytes.NewReader(data))
		wantStatus(t, resp, body, http.StatusConflict)
		if body != "you are not in #go any more\n" {
			t.Errorf("409 body %q", body)
		}
		f := e.uploads()[0].File
		resp, body = e.do("GET", f.URL, nil)
		wantStatus(t, resp, body, http.StatusNotFound)
		if b := e.files("blobs"); len(b) != 0 {
			t.Errorf("blobs: %v", b)
		}
		e.wantTmpEmpty()
		if e.s.store.(*store).usage() != 0 {
			t.Errorf("usage %d", e.s.store.(*store).usage())
		}
	})
}

func TestUploadStall(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, func(c *Config) { c.StallTimeout = 200 * time.Millisecond })
		data := bytes.Repeat([]byte("abcdefgh"), 1000)
		half := len(data) / 2
		sl := e.offer(Offer{Name: "a.bin", Size: int64(len(data)), SHA256: sum(data)})
		h := e.startPut(sl.URL, int64(len(data)))
		if _, err := h.pw.Write(data[:half]); err != nil {
			t.Fatal(err)
		}
		r := h.wait(t)
		h.pw.Close()
		wantStatus(t, r.resp, r.body, http.StatusRequestTimeout)

		resp, body := e.do("HEAD", sl.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
		if got := resp.Header.Get("Upload-Offset"); got != strconv.Itoa(half) {
			t.Fatalf("Upload-Offset %q, want %d", got, half)
		}
		resp, body = e.do("PUT", sl.URL, bytes.NewReader(data[half:]),
			"Content-Range", fmt.Sprintf("bytes %d-%d/%d", half, len(data)-1, len(data)))
		wantStatus(t, resp, body, http.StatusCreated)
		f := e.uploads()[0].File
		if f.SHA256 != sum(data) {
			t.Errorf("SHA256 %s, want %s", f.SHA256, sum(data))
		}
		stored, err := os.ReadFile(e.s.store.(*store).blobPath(f.SHA256))
		if err != nil || !bytes.Equal(stored, data) {
			t.Errorf("blob: %v, equal %v", err, bytes.Equal(stored, data))
		}
	})
}

func TestUploadCutOff(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		wrote := make(chan chan struct{}, 2)
		putDone := make(chan struct{}, 2)
		e := newEnv(t, tr, func(c *Config) {
			c.OpenFile = openHook(-1, wrote)
			c.putDone = func() { putDone <- struct{}{} }
		})
		data := bytes.Repeat([]byte("z"), 1000)
		sl := e.offer(Offer{Name: "a", Size: 1000, SHA256: sum(data)})
		h := e.startPut(sl.URL, 1000)
		h.pw.Write(data[:300])
		<-recv(t, wrote)
		h.pw.CloseWithError(errors.New("client gone"))
		if r := recv(t, h.done); r.err == nil {
			t.Fatalf("PUT: %s, want an error", r.resp.Status)
		}
		recv(t, putDone)
		resp, body := e.do("HEAD", sl.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
		if got := resp.Header.Get("Upload-Offset"); got != "300" {
			t.Fatalf("Upload-Offset %q, want 300", got)
		}
		resp, body = e.do("PUT", sl.URL, bytes.NewReader(data[300:]), "Content-Range", "bytes 300-999/1000")
		wantStatus(t, resp, body, http.StatusCreated)
	})
}

func TestUploadConcurrent(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		wrote := make(chan chan struct{}, 1)
		e := newEnv(t, tr, func(c *Config) {
			c.OpenFile = openHook(-1, wrote)
			c.MaxUploadsPerIP = 2
		})
		data := bytes.Repeat([]byte("q"), 1000)
		sl := e.offer(Offer{Name: "a", Size: 1000})
		h := e.startPut(sl.URL, 1000)
		h.pw.Write(data[:10])
		<-recv(t, wrote)
		resp, body := e.do("PUT", sl.URL, bytes.NewReader(data))
		wantStatus(t, resp, body, http.StatusConflict)
		h.pw.Write(data[10:])
		h.pw.Close()
		r := h.wait(t)
		wantStatus(t, r.resp, r.body, http.StatusCreated)
	})
}

func TestUploadPerAddress(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		wrote := make(chan chan struct{}, 1)
		e := newEnv(t, tr, func(c *Config) {
			c.OpenFile = openHook(-1, wrote)
			c.MaxUploadsPerIP = 1
		})
		data := bytes.Repeat([]byte("q"), 1000)
		sl1 := e.offer(Offer{Name: "a", Size: 1000})
		sl2 := e.offer(Offer{Name: "b", Size: 1000})
		h := e.startPut(sl1.URL, 1000)
		h.pw.Write(data[:10])
		<-recv(t, wrote)
		resp, body := e.do("PUT", sl2.URL, bytes.NewReader(data))
		wantStatus(t, resp, body, http.StatusTooManyRequests)
		if resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		h.pw.Write(data[10:])
		h.pw.Close()
		r := h.wait(t)
		wantStatus(t, r.resp, r.body, http.StatusCreated)
		// The address is free again.
		resp, body = e.do("PUT", sl2.URL, bytes.NewReader(data))
		wantStatus(t, resp, body, http.StatusCreated)
	})
}

func TestUploadLarge(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, nil)
		data := make([]byte, 2<<20+17)
		for i := range data {
			data[i] = byte(i * 7 / 3)
		}
		sl := e.offer(Offer{Name: "big.bin", Size: int64(len(data)), SHA256: sum(data)})
		resp, body := e.do("PUT", sl.URL, chunked{bytes.NewReader(data)})
		wantStatus(t, resp, body, http.StatusCreated)
		f := e.uploads()[0].File
		if f.MIME != "application/octet-stream" {
			t.Errorf("MIME %q", f.MIME)
		}
		resp, body = e.do("GET", f.URL, nil, "Range", "bytes=1048570-1048579")
		wantStatus(t, resp, body, http.StatusPartialContent)
		if body != string(data[1048570:1048580]) {
			t.Errorf("range bytes %q", body)
		}
		resp, body = e.do("GET", f.URL, nil)
		wantStatus(t, resp, body, http.StatusOK)
		if body != string(data) {
			t.Error("GET: bytes differ")
		}
	})
}
