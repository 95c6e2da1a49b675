package chat

// This file is one client's state on the server. Its reader is in
// reader.go and flood.go, its writer in flusher.go.

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat/line"
)

// session is the server side of one client connection. Its reader goroutine
// reads the client's lines and carries them out, in order. Its flusher
// goroutine, which runs only while there is something to write, owns every
// write to the connection and closing it; an idle client has a reader and
// no flusher.
//
// There is one for every connected client, so its fields are ordered to
// pack (the flags sit together) and what an idle client need not hold is
// left out: the remote address is asked of the connection when logged, and
// the channel that tells of the connection's closing is made only for
// whoever waits for it (closed).
type session struct {
	srv  *Server
	conn net.Conn
	ip   string

	// Chat state, guarded by srv.mu.
	nick    string
	rooms   []*room // in the order joined
	current *room   // where plain lines go; nil if in no room
	account string  // the account logged in to, folded; "" if none

	loginTimer *time.Timer // with RequireAuth, until the client logs in

	// lastHeard is when the client last sent a line, in Unix nanoseconds.
	lastHeard atomic.Int64

	// jsonOut is whether the client takes events as JSON. It changes under
	// srv.mu but is atomic, so that the reader (parsing) and the flusher
	// (its own notices) can read it without srv.mu.
	jsonOut atomic.Bool

	pinged bool // a ping has been sent since the client last spoke; srv.mu
	toWake bool // in srv.toWake; srv.mu

	// Guarded by mu.
	finished bool // no more messages will be queued; close once flushed
	// flushing is set while a flusher runs, and for good once one has
	// closed the connection, so that at most one ever writes.
	flushing bool
	// closedConn is set once the flusher has closed the connection.
	closedConn bool

	mu     sync.Mutex
	out    queue
	missed missed // what was dropped from out since the last write
	// closedFor says why the server closed the connection, for the quit
	// announcement; nil for a shutdown (leftShutdown), until something
	// else is recorded.
	closedFor *leaving
	// done is closed once the flusher has closed the connection; nil until
	// someone waits for it (see closed).
	done chan struct{}

	// inflight counts this client's chat lines accepted but not yet
	// delivered. Only the reader adds to it, and it waits for it to reach
	// zero before carrying out anything else (a command, an error, a
	// departure), so that nothing a client does overtakes its own
	// messages. The commit loop, or in a cluster the delivery of what the
	// cluster stored, brings it down.
	inflight sync.WaitGroup

	// Flood control, used by the reader only. limiter is nil when the
	// rate is unlimited.
	limiter  *rate.Limiter
	refusals int // lines refused in a row

	// in reads the client's lines, bounding how long one may take to
	// arrive; the reader's, whichever goroutine it is on (see read).
	in lineDeadline

	// deadline is the connection's write deadline, owned by the flusher.
	deadline time.Time
}

// addr returns the client's address, for the log.
func (ss *session) addr() string { return ss.conn.RemoteAddr().String() }

// closed returns a channel that is closed once the flusher has closed the
// connection.
func (ss *session) closed() <-chan struct{} {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.done == nil {
		ss.done = make(chan struct{})
		if ss.closedConn {
			close(ss.done)
		}
	}
	return ss.done
}

// missed accounts for the messages a slow client lost.
type missed struct {
	count int // every message lost
	// rooms holds, per room name, the numbered messages lost, live or
	// replayed, which the client can fetch again with /resume. Only
	// allocated once one is lost.
	rooms map[string]*lostSpan
}

// lostSpan is what a client lost of one room's numbered messages: how many,
// and the first and last of their numbers. Messages numbered in between
// may have been lost or received (replay pages need not be contiguous).
type lostSpan struct {
	count       int
	first, last uint64
}

func (m *missed) add(it item) {
	// A resumed event's mark names a replay's next page, not a message:
	// it spans what to fetch again, but counts as nothing lost (see
	// fetchable).
	message := it.seq&resumeMark == 0
	seq := it.seq &^ resumeMark
	if message {
		m.count++
	}
	if seq == 0 {
		return
	}
	if m.rooms == nil {
		m.rooms = make(map[string]*lostSpan)
	}
	r := m.rooms[it.room]
	if r == nil {
		r = &lostSpan{first: seq, last: seq}
		m.rooms[it.room] = r
	}
	if message {
		r.count++
	}
	r.first, r.last = min(r.first, seq), max(r.last, seq)
}

// newSession returns the session of conn, admitted from ip (as
// Server.addressOf names it).
func newSession(srv *Server, conn net.Conn, ip string) *session {
	ss := &session{
		srv:  srv,
		conn: conn,
		ip:   ip,
		out:  queue{limit: srv.opts.OutboundQueue, maxBytes: srv.opts.OutboundBytes},
	}
	ss.in = lineDeadline{ss: ss}
	ss.in.lr = line.NewReader(&ss.in, srv.opts.MaxLineBytes)
	if srv.opts.MessageRate != rate.Inf {
		ss.limiter = rate.NewLimiter(srv.opts.MessageRate, srv.opts.MessageBurst)
	}
	ss.lastHeard.Store(time.Now().UnixNano())
	return ss
}
