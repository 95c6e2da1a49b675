package files

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// retryAfterBusy is the Retry-After, in seconds, of a 429.
const retryAfterBusy = 5

// sniffLen is how many bytes http.DetectContentType looks at.
const sniffLen = 512

// handlePut receives a slot's bytes: see the package documentation.
func (s *Service) handlePut(w http.ResponseWriter, r *http.Request) {
	if s.cfg.putDone != nil {
		defer s.cfg.putDone()
	}
	host := remoteHost(r.RemoteAddr)
	if !s.acquireAddr(host) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterBusy))
		fail(w, http.StatusTooManyRequests, fmt.Sprintf(
			"Too many uploads from your address are in progress (the most is %d); try again shortly.",
			s.cfg.MaxUploadsPerIP))
		return
	}
	defer s.releaseAddr(host)
	sl, code, msg := s.claim(r.PathValue("token"))
	if sl == nil {
		fail(w, code, msg)
		return
	}
	defer s.release(sl)
	s.receive(w, r, sl)
}

// handleHeadUpload answers the offset received so far.
func (s *Service) handleHeadUpload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sl, code, msg := s.lookupSlotLocked(r.PathValue("token"))
	s.removeDoomedLocked()
	s.mu.Unlock()
	if sl == nil {
		fail(w, code, msg)
		return
	}
	setOffset(w, sl.offset.Load(), sl.offer.Size)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func setOffset(w http.ResponseWriter, offset, size int64) {
	w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
	w.Header().Set("Upload-Length", strconv.FormatInt(size, 10))
}

func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// resumeHint tells the client how to continue from offset.
func resumeHint(offset, size int64) string {
	return fmt.Sprintf("continue with Content-Range: bytes %d-%d/%d", offset, size-1, size)
}

// receive reads one PUT of the claimed slot sl.
func (s *Service) receive(w http.ResponseWriter, r *http.Request, sl *slot) {
	size := sl.offer.Size
	start, end := int64(0), size // end is exclusive
	if cr := r.Header.Get("Content-Range"); cr != "" {
		a, b, total, ok := parseContentRange(cr)
		if !ok {
			fail(w, http.StatusBadRequest, `The Content-Range header must be "bytes START-END/TOTAL".`)
			return
		}
		if off := sl.offset.Load(); total != size || a != off || b < a || b >= size {
			setOffset(w, off, size)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			fail(w, http.StatusRequestedRangeNotSatisfiable, fmt.Sprintf(
				"The upload has %d of %d bytes: %s.", off, size, resumeHint(off, size)))
			return
		}
		start, end = a, b+1
	}
	want := end - start
	if r.ContentLength > want {
		s.end(sl, slotFailed)
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"The upload is larger than the %d bytes offered; ask for a new slot.", size))
		return
	}

	flag := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if start == 0 {
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		sl.hash, sl.head = sha256.New(), nil
		sl.offset.Store(0)
	}
	f, err := s.cfg.OpenFile(sl.tmp, flag, 0o600)
	if err != nil {
		s.end(sl, slotFailed)
		fail(w, http.StatusInsufficientStorage, "The server could not store the upload.")
		return
	}
	got, rerr, werr := s.copyBody(w, r, sl, f, want)
	off := sl.offset.Load()
	if werr == nil && off == size {
		werr = f.Sync()
	}
	if err := f.Close(); werr == nil {
		werr = err
	}

	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(rerr, &tooLarge):
		s.end(sl, slotFailed)
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"The upload is larger than the %d bytes offered; ask for a new slot.", size))
	case werr != nil:
		s.end(sl, slotFailed)
		fail(w, http.StatusInsufficientStorage, "The server could not store the upload; ask for a new slot later.")
	case got < want:
		setOffset(w, off, size)
		switch {
		case !s.cfg.Now().Before(sl.expires):
			s.end(sl, slotExpired)
			fail(w, http.StatusGone, "This upload slot expired; ask for a new one.")
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			w.Header().Set("Connection", "close")
			fail(w, http.StatusRequestTimeout, fmt.Sprintf(
				"No data arrived for %s; the upload has %d of %d bytes: %s.",
				s.cfg.StallTimeout, off, size, resumeHint(off, size)))
		case rerr == io.EOF:
			fail(w, http.StatusBadRequest, fmt.Sprintf(
				"The upload is short: it has %d of %d bytes; %s.", off, size, resumeHint(off, size)))
		default:
			fail(w, http.StatusBadRequest, fmt.Sprintf(
				"The upload was cut off: it has %d of %d bytes; %s.", off, size, resumeHint(off, size)))
		}
	case off < size:
		setOffset(w, off, size)
		w.WriteHeader(http.StatusNoContent)
	default:
		s.complete(w, sl)
	}
}

// copyBody copies up to want bytes of the body to f, hashing them. A read
// waits at most StallTimeout for a byte, and not past the slot's expiry. It
// returns the bytes copied, the error that ended the reading (io.EOF at the
// end of the body, *http.MaxBytesError past want) and the error of writing.
func (s *Service) copyBody(w http.ResponseWriter, r *http.Request, sl *slot, f WriteFile, want int64) (int64, error, error) {
	body := http.MaxBytesReader(w, r.Body, want)
	rc := http.NewResponseController(w)
	defer rc.SetReadDeadline(time.Time{})
	buf := make([]byte, 256<<10)
	var got int64
	for {
		wait := min(s.cfg.StallTimeout, sl.expires.Sub(s.cfg.Now()))
		rc.SetReadDeadline(time.Now().Add(wait))
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return got, rerr, fmt.Errorf("files: writing the upload: %w", err)
			}
			sl.hash.Write(buf[:n])
			if k := min(n, sniffLen-len(sl.head)); k > 0 {
				sl.head = append(sl.head, buf[:k]...)
			}
			got += int64(n)
			sl.offset.Add(int64(n))
		}
		if rerr != nil {
			if got == want && !isMaxBytes(rerr) {
				rerr = io.EOF
			}
			return got, rerr, nil
		}
	}
}

func isMaxBytes(err error) bool {
	var e *http.MaxBytesError
	return errors.As(err, &e)
}

// complete stores and posts the slot's file, whose bytes are all in.
func (s *Service) complete(w http.ResponseWriter, sl *slot) {
	now := s.cfg.Now()
	if !now.Before(sl.expires) {
		s.end(sl, slotExpired)
		fail(w, http.StatusGone, "This upload slot expired; ask for a new one.")
		return
	}
	sum := hex.EncodeToString(sl.hash.Sum(nil))
	if want := sl.offer.SHA256; want != "" && want != sum {
		s.end(sl, slotFailed)
		fail(w, http.StatusUnprocessableEntity, fmt.Sprintf(
			"The upload's SHA-256 is %s, not %s as offered; ask for a new slot.", sum, want))
		return
	}
	o := sl.offer
	if s.cfg.Check != nil {
		if err := s.cfg.Check(o); err != nil {
			s.end(sl, slotFailed)
			fail(w, http.StatusConflict, err.Error())
			return
		}
	}
	rec := Record{Hash: sum, Name: o.Name, Size: o.Size, MIME: http.DetectContentType(sl.head),
		Created: now, Private: o.Room == ""}
	token, err := s.store.Add(sl.tmp, rec)
	if err == nil {
		s.mu.Lock()
		sl.stored = true
		s.mu.Unlock()
	}
	if err != nil {
		s.end(sl, slotFailed)
		if s.isClosed() {
			fail(w, http.StatusServiceUnavailable, "File sharing is closed.")
		} else {
			fail(w, http.StatusInsufficientStorage, "The server could not store the upload; ask for a new slot later.")
		}
		return
	}
	file := File{Name: o.Name, Size: o.Size, MIME: rec.MIME, SHA256: sum, Token: token,
		URL: s.cfg.BaseURL + "/f/" + token}
	if err := s.post(Upload{Offer: o, File: file}); err != nil {
		s.store.Drop(token)
		s.end(sl, slotFailed)
		code := http.StatusConflict
		if errors.Is(err, ErrClosed) {
			code = http.StatusServiceUnavailable
		}
		fail(w, code, err.Error())
		return
	}
	s.end(sl, slotDone)
	w.Header().Set("Location", file.URL)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, file.URL+"\n")
}

// parseContentRange parses "bytes START-END/TOTAL".
func parseContentRange(v string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 {
		return 0, 0, 0, false
	}
	return start, end, total, true
}
