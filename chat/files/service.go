package files

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Offer asks for an upload slot.
type Offer struct {
	Name   string // the sender's file name; see Service.Offer for the rules
	Size   int64  // bytes, at least 1
	SHA256 string // optional hex (either case; stored lower-case): the upload must match it
	Quota  string // who pays: the account or nick
	From   string // the sender's nickname, for the post
	Room   string // the room, or "" for a private file
	To     string // the recipient's nickname for a private file
	// Owner and Recipient are opaque to the service (the chat server's
	// sessions of the sender and the recipient): handed back in Upload,
	// and let go of once the slot ends.
	Owner     any
	Recipient any
}

// Slot is a one-time upload URL.
type Slot struct {
	Token   string    // random, 130 bits, URL-safe (base32)
	URL     string    // BaseURL + "/u/" + Token
	Expires time.Time // the upload must be complete before then
}

// File is what a completed upload became.
type File struct {
	Name   string // the file name, as offered (and validated)
	Size   int64
	MIME   string // sniffed with http.DetectContentType from the first 512 bytes
	SHA256 string // lower-case hex
	Token  string // the download token: random, neither the hash nor the slot token
	URL    string // BaseURL + "/f/" + Token
}

// Upload is a completed upload, handed to the post function.
type Upload struct {
	Offer Offer
	File  File
}

// Service is the file-sharing service: slots, HTTP handler and store. Its
// methods may be called from any goroutine.
type Service struct {
	cfg   Config
	post  func(Upload) error
	store Store
	tmp   string // Dir/tmp: uploads in progress
	mux   *http.ServeMux

	mu     sync.Mutex
	closed bool
	slots  map[string]*slot     // by slot token, including ended ones for a while
	quota  map[string][]*charge // by Offer.Quota, oldest first
	perIP  map[string]int       // upload requests in progress by host
	doomed []string             // temporary files to remove once mu is let go

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// New opens (creating if needed) the store in cfg.Dir, removes the partial
// uploads a previous run left in Dir/tmp, and starts the retention goroutine.
// post announces a completed upload; if it returns an error, the upload is
// undone and the uploader is shown the error. post is called from the HTTP
// handler's goroutine, with no lock held.
func New(cfg Config, post func(Upload) error) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if post == nil {
		return nil, errors.New("files: New needs a post function")
	}
	st := cfg.Store
	if st == nil {
		local, err := openStore(cfg.Dir, cfg.MaxBytes)
		if err != nil {
			return nil, err
		}
		st = local
	}
	tmp := filepath.Join(cfg.Dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		st.Close()
		return nil, fmt.Errorf("files: %w", err)
	}
	if err := emptyDir(tmp); err != nil {
		st.Close()
		return nil, err
	}
	s := &Service{
		cfg:   cfg,
		post:  post,
		store: st,
		tmp:   tmp,
		slots: make(map[string]*slot),
		quota: make(map[string][]*charge),
		perIP: make(map[string]int),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("PUT /u/{token}", s.handlePut)
	s.mux.HandleFunc("HEAD /u/{token}", s.handleHeadUpload)
	s.mux.HandleFunc("GET /f/{token}", s.handleGet) // GET also serves HEAD
	go s.run()
	return s, nil
}

// emptyDir removes everything in dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("files: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("files: %w", err)
		}
	}
	return nil
}

// Handler returns the HTTP handler of uploads (/u/) and downloads (/f/).
func (s *Service) Handler() http.Handler { return s.mux }

// Live reports whether a download token still serves its file: it is known,
// not older than Retain and not evicted. It answers from memory and never
// waits for the disk, so a caller may hold a lock of its own.
func (s *Service) Live(token string) bool {
	created, ok := s.store.Alive(token)
	return ok && (s.cfg.Retain < 0 || s.cfg.Now().Before(created.Add(s.cfg.Retain)))
}

// URL returns the download link of token.
func (s *Service) URL(token string) string { return s.cfg.BaseURL + "/f/" + token }

// Close stops the retention goroutine, waits for it and closes the
// database. Later requests, and uploads in progress when they complete,
// answer 503; a download already being sent goes on. Closing twice returns
// the first result.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		<-s.done
		if err := s.store.Close(); err != nil {
			s.closeErr = fmt.Errorf("files: closing the database: %w", err)
		}
	})
	return s.closeErr
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// fail answers an error: a plain-text sentence.
func fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, code)
}
