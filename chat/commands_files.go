package chat

// This file is file sharing's part of the server: /upload asks the file
// service (chat/files) for a slot, checked before any byte moves, and a
// completed upload comes back through PostFile as a file event, stored
// and numbered like a message in its room, or handed to its one
// recipient. The bytes go over HTTP (Options.FilesListener), never through
// a chat connection's queue.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/natter-chat/natter/chat/files"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// Who may upload (Options.UploadsBy).
const (
	UploadsAnyone     = "anyone"     // anyone connected
	UploadsRegistered = "registered" // clients logged in to an account
)

// upload answers /upload: checks who is asking and where the file would
// go under s.mu, asks the file service for a slot without it, and tells
// ss the slot or why not.
func (s *Server) upload(ss *session, c protocol.Command) {
	offer, ok := s.offerFor(ss, c)
	if !ok {
		return
	}
	slot, err := s.opts.Files.Offer(offer)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failUpload(ss, err)
		return
	}
	s.log.Info("Upload slot given", "client", ss.addr(), "name", offer.Name, "size", offer.Size)
	s.sendTo(ss, &protocol.Event{Type: protocol.TypeUpload, Time: now(),
		File: &protocol.FileInfo{Name: offer.Name, Size: offer.Size, SHA256: offer.SHA256},
		URL:  slot.URL, Expires: protocol.Stamp(slot.Expires)})
}

// offerFor checks under s.mu that ss may upload c's file where it asks,
// and returns the offer to make, or tells ss why not.
func (s *Server) offerFor(ss *session, c protocol.Command) (files.Offer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(code, format string, args ...any) (files.Offer, bool) {
		s.fail(ss, code, format, args...)
		return files.Offer{}, false
	}
	switch {
	case s.opts.Files == nil:
		return fail(protocol.CodeFilesOff, "file sharing is off on this server")
	case s.opts.UploadsBy == UploadsRegistered && ss.account == "":
		return fail(protocol.CodeUploadDenied, "only registered users may upload files here; /register or /login first")
	}
	o := files.Offer{Name: c.File.Name, Size: c.File.Size, SHA256: c.File.SHA256, From: ss.nick, Owner: ss,
		Quota: "address " + ss.ip}
	if ss.account != "" {
		o.Quota = "account " + ss.account
	}
	if c.Nick != "" {
		to := s.nicks[protocol.Fold(c.Nick)]
		if to == nil {
			return fail(protocol.CodeNoSuchNick, "no one is called %s", c.Nick)
		}
		o.To, o.Recipient = to.nick, to
		return o, true
	}
	r, ev := s.joinedRoom(ss, c.Room)
	if ev != nil {
		s.sendTo(ss, ev)
		return files.Offer{}, false
	}
	o.Room = r.name
	return o, true
}

// failUpload tells ss why the file service refused its offer. s.mu must
// be held.
func (s *Server) failUpload(ss *session, err error) {
	var large *files.TooLargeError
	var quota *files.QuotaError
	switch {
	case errors.As(err, &large):
		s.fail(ss, protocol.CodeFileTooLarge, "file too large: this server takes files of up to %s", protocol.FormatBytes(large.Max))
	case errors.Is(err, files.ErrTooManyUploads):
		s.fail(ss, protocol.CodeFileQuota, "%v", err)
	case errors.As(err, &quota):
		s.fail(ss, protocol.CodeFileQuota, "upload quota used up: enough of it frees at %s (in %v)",
			protocol.Stamp(quota.RetryAt), time.Until(quota.RetryAt).Round(time.Second))
	default:
		s.fail(ss, protocol.CodeBadFile, "%v", err)
	}
}

// CheckPost reports whether the upload offered by o could be posted now:
// the file service calls it (files.Config.Check) once the bytes are in,
// before it stores the file, so that an upload that would not be posted
// evicts no one's file to make room.
func (s *Server) CheckPost(o files.Offer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _, _, err := s.postTargetLocked(o)
	return err
}

// postTargetLocked returns who posts o's file, and where: to whom, or in
// which room. s.mu must be held.
func (s *Server) postTargetLocked(o files.Offer) (from, to *session, r *room, err error) {
	from, _ = o.Owner.(*session)
	switch _, connected := s.sessions[from]; {
	case s.closing:
		return nil, nil, nil, fmt.Errorf("%w: the server is shutting down", files.ErrClosed)
	case from == nil:
		return nil, nil, nil, errors.New("the upload has no sender")
	case !connected:
		// Its client may have reconnected, and taken its nickname back.
		if from = s.successor(from, o.From); from == nil {
			return nil, nil, nil, errors.New("the chat connection that asked for this upload has closed")
		}
	}
	if o.To != "" {
		// The very session the offer named: whoever took its nickname
		// since must not get the link.
		to, _ = o.Recipient.(*session)
		if _, connected := s.sessions[to]; to == nil || !connected || to.nick != o.To {
			return nil, nil, nil, fmt.Errorf("%s is no longer connected", o.To)
		}
		return from, to, nil, nil
	}
	r, ev := s.joinedRoom(from, o.Room)
	if ev != nil {
		return nil, nil, nil, fmt.Errorf("%s is no longer in #%s", from.nick, o.Room)
	}
	return from, nil, r, nil
}

// PostFile posts a completed upload: to its room, stored and numbered
// like a message, or to its recipient and its sender. The file service
// calls it (see files.New) once the file is stored; an error says why the
// file was not posted, and the service then drops it. The sender must
// still be connected (or have reconnected, with its nickname and its
// account or address), and in the room; the recipient of a private file
// must be the very client the offer named.
func (s *Server) PostFile(u files.Upload) error {
	info := &protocol.FileInfo{Name: u.File.Name, Size: u.File.Size, MIME: u.File.MIME, SHA256: u.File.SHA256, URL: u.File.URL}
	s.mu.Lock()
	ss, to, r, err := s.postTargetLocked(u.Offer)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if to != nil {
		ev := &protocol.Event{Type: protocol.TypeFile, Time: now(), From: ss.nick, To: to.nick, File: info}
		s.sendTo(to, ev)
		if to != ss {
			s.sendTo(ss, ev)
		}
		s.mu.Unlock()
		return nil
	}
	a := accepted{from: ss, at: time.Now(), file: &u.File,
		ev: &protocol.Event{Type: protocol.TypeFile, Time: now(), Room: r.name, From: ss.nick, File: info}}
	// Counted under s.mu while not closing, so that Serve, which sets
	// closing under s.mu before it waits, waits for this hand-over.
	s.posting.Add(1)
	s.mu.Unlock()
	defer s.posting.Done()
	s.metrics.received.Inc()
	s.commits <- a
	return nil
}

// successor returns the session that is gone's client reconnected as: the
// one called nick now, logged in to the same account, or, for a guest,
// connected from the same address. s.mu must be held.
func (s *Server) successor(gone *session, nick string) *session {
	if gone == nil {
		return nil
	}
	ss := s.nicks[protocol.Fold(nick)]
	if ss == nil || ss.account != gone.account || gone.account == "" && ss.ip != gone.ip {
		return nil
	}
	return ss
}

// storedFile is what the history keeps of a file event.
func storedFile(f *files.File) *history.File {
	return &history.File{Name: f.Name, Size: f.Size, MIME: f.MIME, SHA256: f.SHA256, Token: f.Token}
}

// fileInfo is how a stored file is shown: its link, or expired once the
// file service no longer serves it (unless it was just posted: live).
func (s *Server) fileInfo(f *history.File, live bool) *protocol.FileInfo {
	info := &protocol.FileInfo{Name: f.Name, Size: f.Size, MIME: f.MIME, SHA256: f.SHA256}
	if s.opts.Files != nil && (live || s.opts.Files.Live(f.Token)) {
		info.URL = s.opts.Files.URL(f.Token)
	} else {
		info.Expired = true
	}
	return info
}

// filesIdleTimeout is how long the file listener keeps an idle
// keep-alive connection.
const filesIdleTimeout = time.Minute

// serveFiles serves the file service's HTTP side on FilesListener until
// stopFiles. Its connections count against MaxClientsPerIP on their own
// (a connection past it is closed when accepted), and a request's address
// is what the chat's per-address limits count (an IPv6 network as one),
// so that the file service's per-address cap counts the same.
func (s *Server) serveFiles() *http.Server {
	files := s.opts.Files.Handler()
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err == nil {
				r.RemoteAddr = net.JoinHostPort(s.addressOfHost(host), "0")
			}
			files.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: s.opts.HandshakeTimeout,
		IdleTimeout:       filesIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.log.Info("File sharing on " + s.opts.FilesListener.Addr().String())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ln := &perAddressListener{Listener: s.opts.FilesListener, s: s, open: make(map[string]int)}
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("Serving files stopped", "err", err)
		}
	}()
	return hs
}

// stopFiles stops serving files: transfers in progress get up to
// ShutdownTimeout to end, then their connections are closed.
func (s *Server) stopFiles(hs *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		hs.Close()
	}
}

// perAddressListener closes, as it accepts them, the connections from an
// address that has MaxClientsPerIP open already.
type perAddressListener struct {
	net.Listener
	s    *Server
	mu   sync.Mutex
	open map[string]int // connections open, by address
}

// Accept returns the next connection its address may open.
func (l *perAddressListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := l.s.addressOf(conn.RemoteAddr())
		l.mu.Lock()
		ok := l.open[addr] < l.s.opts.MaxClientsPerIP
		if ok {
			l.open[addr]++
		}
		l.mu.Unlock()
		if ok {
			return &countedConn{Conn: conn, done: func() { l.closed(addr) }}, nil
		}
		conn.Close()
	}
}

func (l *perAddressListener) closed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[addr]--; l.open[addr] <= 0 {
		delete(l.open, addr)
	}
}

// countedConn calls done once, when it is first closed.
type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}
