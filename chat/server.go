package chat

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat/protocol"
)

// Server is a chat server: clients with nicknames talk in rooms. Create one
// with [NewServer] and run it with [Server.Serve]. doc.go maps its
// goroutines, its locks and the path of a message.
type Server struct {
	ln     net.Listener
	opts   Options
	log    *slog.Logger
	limits *protocol.Limits // announced in every welcome (welcomeLimits)

	// mu guards all chat state: the sessions, their nicknames and rooms,
	// and closing. Every command runs under it, and delivering an event
	// holds it while the event is queued for every receiver, which gives
	// all receivers one order; queueing never blocks. No password hash,
	// disk write or commit happens while it is held; doc.go lists the
	// waits that still do. It is taken before a session's mu, never after.
	mu       sync.Mutex
	sessions map[*session]struct{}
	nicks    map[string]*session // by protocol.Fold(nick)
	// reserved holds the nicknames being registered, by protocol.Fold,
	// while their password is hashed without mu: no one else may take
	// them meanwhile.
	reserved map[string]*session
	rooms    map[string]*room // by protocol.Fold(name)
	lobby    *room
	guests   int            // the last guest number given out
	perIP    map[string]int // connected clients by address (Server.addressOf), handshaking ones too
	// handshaking counts the TLS connections whose handshake is in
	// progress, and handshakingFrom the same by address.
	handshaking     int
	handshakingFrom map[string]int
	// pending counts the connections admitted that are not sessions yet
	// (handshaking, or being named): MaxClients counts them too.
	pending  int
	connects map[string]*rate.Limiter // new-connection rate by address (Server.addressOf)
	logins   map[string]*rate.Limiter // login attempts by account and by address
	closing  bool
	// clusterLost is set while this cluster node does not receive the
	// cluster's messages, through a failure, until runCluster restarts
	// the delivery; clusterStopped once it stops for good, at shutdown;
	// clusterDown while the cluster is unreachable.
	clusterLost, clusterStopped, clusterDown bool
	// awaiting holds, in the cluster's order, this node's messages that
	// the cluster has stored but not yet handed back for delivery; each
	// sender's next command waits for them (see session.inflight).
	awaiting []awaited
	// clusterDelivered is the number of the last message the cluster
	// handed back.
	clusterDelivered uint64

	// registrations counts the accounts registered through this server.
	// A check of the accounts made without mu is good only if it has not
	// changed by the time mu is held again. Written under mu.
	registrations atomic.Uint64
	// skipped counts the stored messages not delivered because their room
	// had no members. A room's numbering read without mu is good only if
	// it has not changed by the time mu is held again. Written under mu.
	skipped atomic.Uint64
	// topics counts the topics set in a cluster (topicSet), for the same
	// reason: a room's topic read without mu is good only if no topic
	// was set since. Written under mu.
	topics atomic.Uint64

	// While batching, queueing an event marks its receiver in toWake
	// instead of waking its writer at once, so a batch of messages goes out
	// in one write per receiver (of up to maxWriteBytes), not one per
	// message.
	batching bool
	toWake   []*session
	// scratch is where events are rendered as text before being copied
	// out (renderText); under mu.
	scratch []byte

	// hashers holds a token for each password hash in progress: at most
	// Options.PasswordHashers.
	hashers chan struct{}
	// hashWaiting counts the password hashes waiting for a hasher.
	hashWaiting atomic.Int64

	// commits carries accepted messages from the readers to commitLoop.
	commits chan accepted
	// posting counts the file posts being handed to commitLoop
	// (PostFile); it is added to under mu only while not closing.
	posting sync.WaitGroup
	// outbox holds the room events on their way to the cluster, for
	// commitLoop's next batch, and outboxBytes their size (see
	// announce.go); under mu. outboxed is set while it holds any (written
	// under mu, read without it), and outboxReady wakes commitLoop for
	// them.
	outbox      []accepted
	outboxBytes int
	outboxed    atomic.Bool
	outboxReady chan struct{}
	// stopping is closed when shutdown begins, to wake the readers that
	// flood control holds back; stopCtx is cancelled then too (stop), to
	// end handshakes and password-hash waits.
	stopping chan struct{}
	stopCtx  context.Context
	stop     context.CancelFunc

	metrics *metrics

	readers sync.WaitGroup // the sessions' reader goroutines, which send on commits
	wg      sync.WaitGroup // every goroutine the server starts
}

// NewServer returns a server that will accept clients on ln. The server
// owns ln from then on and closes it when it stops.
func NewServer(ln net.Listener, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{
		ln:              ln,
		opts:            opts,
		limits:          welcomeLimits(opts),
		log:             opts.Logger,
		sessions:        make(map[*session]struct{}),
		nicks:           make(map[string]*session),
		reserved:        make(map[string]*session),
		perIP:           make(map[string]int),
		handshakingFrom: make(map[string]int),
		connects:        make(map[string]*rate.Limiter),
		logins:          make(map[string]*rate.Limiter),
		commits:         make(chan accepted, opts.CommitBatch),
		outboxReady:     make(chan struct{}, 1),
		hashers:         make(chan struct{}, opts.PasswordHashers),
		stopping:        make(chan struct{}),
	}
	if opts.Cluster != nil {
		// Start this node's guest numbers somewhere of their own, so
		// that giving one out rarely means asking the cluster twice.
		s.guests = rand.N(10_000) * 100
	}
	s.metrics = newMetrics(s)
	_, newest, err := opts.History.Bounds(DefaultRoom)
	if err != nil {
		s.log.Error("Reading history failed", "room", DefaultRoom, "err", err)
	}
	s.lobby = s.openRoom(DefaultRoom, newest, s.clusterTopic(DefaultRoom))
	s.rooms = map[string]*room{protocol.Fold(DefaultRoom): s.lobby}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	return s
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Clients returns the number of connected clients.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Serve accepts clients until ctx is done, then shuts down gracefully: it
// stops accepting, tells every client the server is going away, gives queued
// messages up to Options.ShutdownTimeout to be written, closes every
// connection, and returns once every goroutine it started has ended. On a
// cluster node, a shutdown that takes longer than ShutdownTimeout closes
// the node (Cluster.Close), ending its requests in flight, so that NATS,
// whatever its state, can't hold the shutdown up much longer. It
// returns nil after a shutdown asked for through ctx, or the listener's error
// if accepting failed for good (after shutting down the same way).
func (s *Server) Serve(ctx context.Context) error {
	listeners := []net.Listener{s.ln}
	s.log.Info("Server running on " + s.ln.Addr().String())
	if tl := s.opts.TLSListener; tl != nil {
		listeners = append(listeners, tl)
		s.log.Info("Server running on " + tl.Addr().String() + " (TLS)")
	}

	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.commitLoop()
	}()
	go func() {
		defer s.wg.Done()
		s.pingLoop()
	}()
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	if s.opts.Cluster != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runCluster(runCtx)
		}()
	}
	var files *http.Server
	if s.opts.Files != nil && s.opts.FilesListener != nil {
		files = s.serveFiles()
	}
	acceptErr := make(chan error, len(listeners))
	for _, ln := range listeners {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			acceptErr <- s.acceptLoop(ctx, ln)
		}()
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-acceptErr:
		s.log.Error("Server stopped accepting", "err", err)
		listeners = listeners[1:] // one loop has returned already
	}
	// Past ShutdownTimeout, the cluster's requests in flight (a batch
	// waiting to be stored, a nickname being claimed under s.mu) are given
	// up on, whatever NATS is doing, so that they end.
	gaveUp := make(chan struct{})
	giveUp := time.AfterFunc(s.opts.ShutdownTimeout, func() {
		defer close(gaveUp)
		if c := s.opts.Cluster; c != nil {
			s.log.Warn("Shutdown timeout; giving up on the cluster's requests in flight")
			c.Close()
		}
	})
	s.shutdown()
	if files != nil {
		s.stopFiles(files)
	}
	stopRun() // every client has had its goodbye
	for range listeners {
		<-acceptErr // every listener is closed: no more sessions start
	}
	// Messages accepted before the readers stopped are still stored.
	s.readers.Wait()
	s.posting.Wait() // closing is set: no more file posts
	close(s.commits)
	s.wg.Wait()
	if !giveUp.Stop() {
		<-gaveUp
	}
	s.log.Info("Server stopped")
	return err
}

// shutdown closes the listener, says goodbye to every client, and, after
// at most ShutdownTimeout from its start, closes whatever connections are
// left.
func (s *Server) shutdown() {
	deadline := time.NewTimer(s.opts.ShutdownTimeout)
	defer deadline.Stop()
	close(s.stopping)
	s.stop()
	for _, ln := range []net.Listener{s.ln, s.opts.TLSListener} {
		if ln == nil {
			continue
		}
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("Closing listener", "err", err)
		}
	}
	goodbye := &delivery{ev: &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeShutdown, Text: "server shutting down"}}
	s.mu.Lock()
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
		if ss.loginTimer != nil {
			ss.loginTimer.Stop() // a timer that fires all the same sees closing
		}
		ss.finish(goodbye.bytesFor(ss))
	}
	s.mu.Unlock()

	for _, ss := range sessions {
		select {
		case <-ss.closed():
		case <-deadline.C:
			s.log.Warn("Shutdown timeout; closing remaining connections")
			for _, ss := range sessions {
				ss.conn.Close()
			}
			return
		}
	}
}
