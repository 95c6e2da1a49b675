package files

import (
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"time"
)

// maxAge caps the Cache-Control max-age of downloads, in seconds.
const maxAge = 24 * 60 * 60

// file returns the record of a download token that serves its file, or the
// status and sentence to answer.
func (s *Service) file(token string) (Record, int, string) {
	if s.isClosed() {
		return Record{}, http.StatusServiceUnavailable, "File sharing is closed."
	}
	rec, ok, gone, err := s.store.Lookup(token)
	switch {
	case err != nil:
		if s.isClosed() {
			return Record{}, http.StatusServiceUnavailable, "File sharing is closed."
		}
		return Record{}, http.StatusInternalServerError, "The file can't be read now; try again later."
	case gone || ok && s.aged(rec, s.cfg.Now()):
		return Record{}, http.StatusGone, "This file has expired or was removed."
	case !ok:
		return Record{}, http.StatusNotFound, "There is no such file."
	}
	return rec, http.StatusOK, ""
}

// aged reports whether rec is past Retain at now.
func (s *Service) aged(rec Record, now time.Time) bool {
	return s.cfg.Retain >= 0 && !now.Before(rec.Created.Add(s.cfg.Retain))
}

// handleGet serves a stored file.
func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	rec, code, msg := s.file(r.PathValue("token"))
	if code != http.StatusOK {
		fail(w, code, msg)
		return
	}
	f, err := s.store.Open(rec.Hash)
	if errors.Is(err, fs.ErrNotExist) {
		// Evicted or expired between the lookup and now.
		fail(w, http.StatusGone, "This file has expired or was removed.")
		return
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, "The file can't be read now; try again later.")
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("ETag", `"`+rec.Hash+`"`)
	h.Set("Content-Type", rec.MIME)
	h.Set("Content-Disposition", disposition(rec.Name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", fmt.Sprintf("private, max-age=%d", s.maxAge(rec)))
	http.ServeContent(w, r, "", rec.Created, f)
}

// maxAge is the seconds until rec expires, at most maxAge.
func (s *Service) maxAge(rec Record) int64 {
	if s.cfg.Retain < 0 {
		return maxAge
	}
	left := int64(rec.Created.Add(s.cfg.Retain).Sub(s.cfg.Now()) / time.Second)
	return max(0, min(left, maxAge))
}

// disposition is the Content-Disposition of a download named name.
func disposition(name string) string {
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}
