// Package cluster joins natter servers into one chat through NATS
// JetStream, so that several nodes behind a load balancer behave as one
// server.
//
// JetStream is the sequencer and the history. A deployment has one stream,
// with a subject per room. A node stores a chat message by publishing it
// and waiting for JetStream's acknowledgement; it delivers nothing itself.
// Every node, the one that published included, consumes the stream in
// order and delivers each message to its own clients, so all members of a
// room, on every node, see its messages in the one order of the stream.
//
// A message's number is its stream sequence: unique and increasing across
// the deployment, so a room's numbers increase but are not consecutive.
// Each node keeps a copy of the stream in memory, kept up to date by the
// same consumer, and answers history, paging and resume from it, so a
// client can resume on any node.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/chat/history"
)

// Defaults for the zero fields of [Config].
const (
	// DefaultName names the deployment.
	DefaultName = "natter"
	// DefaultMaxMessages is how many of each room's newest messages the
	// stream keeps.
	DefaultMaxMessages = 10000
	// DefaultTimeout bounds how long storing a batch of messages may take
	// before it is given up on.
	DefaultTimeout = 5 * time.Second
	// DefaultPresenceTTL is how long a node's claims on nicknames and
	// rooms outlive it: a node renews its liveness key three times per
	// TTL, so a dead node's users are gone from the cluster within about
	// this long (see presence.go).
	DefaultPresenceTTL = 30 * time.Second
)

// Config configures a [Node].
type Config struct {
	// Name names the deployment: its stream is NATTER_<NAME> and its
	// subjects natter.<name>.room.<room>. Nodes with the same name serve
	// the same chat. Empty means DefaultName.
	Name string
	// MaxMessages is how many of each room's newest messages are kept.
	// Zero means DefaultMaxMessages.
	MaxMessages int
	// MaxAge is how long a message is kept; zero keeps it until
	// MaxMessages pushes it out.
	MaxAge time.Duration
	// Replicas is how many NATS servers hold a copy of the stream: 1 for
	// a single NATS server, 3 for a three-server NATS cluster. Zero
	// means 1.
	Replicas int
	// Timeout bounds storing one batch of messages. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// PresenceTTL is how long a node's nicknames outlive it. Zero means
	// DefaultPresenceTTL. All nodes of a deployment must agree on it.
	PresenceTTL time.Duration
	// Check vets every message the node reads from the stream, while
	// joining and in Run, since anyone who may publish on the
	// deployment's subjects can put anything there: it returns "" to take
	// the message, or why not, in a word, to refuse it. A refused message
	// is neither added to the node's history nor delivered; the node
	// reports it to the function given to OnRefused. natter's server
	// gives chat.StreamCheck of its options. Whatever Check says, the node
	// refuses a message that is not UTF-8 ("utf8"), not a message's JSON
	// ("malformed"), or not about the room of its subject ("subject").
	Check func(history.Message) (reason string)
}

// Node is one natter server's link to the cluster. It implements
// [history.Store]: Append publishes, reads come from the node's copy of
// the stream.
type Node struct {
	js       jetstream.JetStream
	cfg      Config
	stream   string
	prefix   string // subject prefix, up to the room
	msgs     jetstream.MessagesContext
	copy     *history.MemoryStore
	claims   jetstream.KeyValue // nick.<folded nickname>, in.<room>.<Nick> = the holder's token: see presence.go
	nodes    jetstream.KeyValue // node.<token>, while its node lives
	accounts jetstream.KeyValue // folded name = password hash
	rooms    jetstream.KeyValue // topic.<room> = its topic
	id       string             // this node's, in its events
	history  string             // the stream's: see ID

	last atomic.Uint64 // the sequence of the last message read from the stream
	// renewedAt is when the last renewal of the liveness key that
	// succeeded began, in Unix nanoseconds (see ClaimsFresh).
	renewedAt atomic.Int64
	liveRev   uint64 // the liveness key's revision; renew's (and Join's, before it)

	// claimMu is held for reading by every write of a claim, and for
	// writing while the node changes its token (takeToken), so that no
	// write made under the old token is still in flight after that.
	claimMu sync.RWMutex
	// reclaiming is set from when the node's liveness key is found lapsed
	// until every key it holds is claimed again (see ClaimsFresh).
	reclaiming atomic.Bool

	mu      sync.Mutex
	closed  bool
	running bool
	failed  bool          // Run's consumer failed, and Resume has not replaced it
	p       presence      // who holds what, across the cluster
	status  func(up bool) // told when NATS is lost and back
	ctx     context.Context
	// ctx is cancelled by Close, to end renew, the watches and the
	// presence goroutines.
	cancel  context.CancelFunc
	renewed chan struct{} // closed when renew has returned
	watched chan struct{} // closed when watchTopics has returned
	// presence counts the presence goroutines (presence.go): watchPresence,
	// reap, writePresence, reclaimKeys, tellLost. Each has a channel
	// that wakes it.
	presence                               sync.WaitGroup
	toReap, toWrite, toReclaim, toTellLost chan struct{}
	onTopic                                func(room, by, text string)
	// onClaimLost is told of a nickname claim found taken.
	onClaimLost func(nick string)
	// onRefused is told of each refused message; refusals before it is
	// set (while joining) wait in refusals.
	onRefused func(seq uint64, reason string)
	refusals  []refusal
}

// refusal is a message of the stream the node refused.
type refusal struct {
	seq    uint64
	reason string
}

// maxRefusals bounds the refusals a node keeps until OnRefused is called.
const maxRefusals = 1000

var _ history.Store = (*Node)(nil)

// ErrClosed is returned by a Node that has been closed.
var ErrClosed = errors.New("cluster: node closed")

// Join connects a node to the deployment over nc: it creates the stream
// if it does not exist, and reads the stream up to its current end before
// returning, so the node starts with the whole history. The caller owns
// nc and closes it after the node.
//
// nc must be made with nats.ReconnectBufSize(-1): a connection that
// buffers messages while it reconnects would send, later, messages their
// senders were told had been refused.
func Join(ctx context.Context, nc *nats.Conn, cfg Config) (*Node, error) {
	if nc.Opts.ReconnectBufSize != -1 {
		return nil, errors.New("cluster: the NATS connection must not buffer while reconnecting: make it with nats.ReconnectBufSize(-1)")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.MaxMessages <= 0 {
		cfg.MaxMessages = DefaultMaxMessages
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = DefaultPresenceTTL
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	n := &Node{
		js:         js,
		cfg:        cfg,
		stream:     "NATTER_" + strings.ToUpper(cfg.Name),
		prefix:     "natter." + strings.ToLower(cfg.Name) + ".room.",
		copy:       history.NewMemory(history.Retention{MaxMessages: cfg.MaxMessages, MaxAge: cfg.MaxAge}),
		id:         newToken(),
		p:          newPresence(newToken()),
		renewed:    make(chan struct{}),
		watched:    make(chan struct{}),
		toReap:     make(chan struct{}, 1),
		toWrite:    make(chan struct{}, 1),
		toReclaim:  make(chan struct{}, 1),
		toTellLost: make(chan struct{}, 1),
	}
	// Liveness keys expire unless renewed, and every node hears when one
	// does (markers); claims, accounts and topics stay.
	if n.nodes, err = bucket(ctx, js, cfg, "nodes", cfg.PresenceTTL); err != nil {
		return nil, err
	}
	if n.claims, err = bucket(ctx, js, cfg, "claims", 0); err != nil {
		return nil, err
	}
	if n.accounts, err = bucket(ctx, js, cfg, "accounts", 0); err != nil {
		return nil, err
	}
	if n.rooms, err = bucket(ctx, js, cfg, "rooms", 0); err != nil {
		return nil, err
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              n.stream,
		Subjects:          []string{n.prefix + ">"},
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		MaxMsgsPerSubject: int64(cfg.MaxMessages),
		MaxAge:            cfg.MaxAge,
		Discard:           jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: stream %s: %w", n.stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: stream %s: %w", n.stream, err)
	}
	n.history = n.stream + "@" + info.Created.UTC().Format(time.RFC3339Nano)
	if n.msgs, err = n.consume(ctx, 0); err != nil {
		return nil, err
	}
	// Catch up: everything stored before this node joined is history.
	for last := info.State.LastSeq; info.State.Msgs > 0; {
		m, err := n.next(ctx)
		if err != nil {
			n.msgs.Stop()
			return nil, fmt.Errorf("cluster: reading the stream: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		n.last.Store(meta.Sequence.Stream)
		if msg, ok := n.accept(m, meta.Sequence.Stream); ok && msg.IsChat() {
			n.copy.Insert(msg) // events are for those present when they happen
		}
		if meta.Sequence.Stream >= last || meta.NumPending == 0 {
			break
		}
	}
	// The watch lasts as long as the node, not as long as ctx: Close
	// ends it by cancelling n.ctx.
	n.ctx, n.cancel = context.WithCancel(context.Background())
	topics, err := n.rooms.Watch(n.ctx, "topic.*", jetstream.UpdatesOnly())
	if err != nil {
		n.cancel()
		n.msgs.Stop()
		return nil, fmt.Errorf("cluster: watching topics: %w", err)
	}
	nodes, claims, err := n.joinPresence(ctx)
	if err != nil {
		n.cancel()
		n.msgs.Stop()
		return nil, err
	}
	// Chain to whatever handlers the connection already has.
	lost, back := nc.Opts.DisconnectedErrCB, nc.Opts.ReconnectedCB
	nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
		if lost != nil {
			lost(c, err)
		}
		n.setUp(false)
	})
	nc.SetReconnectHandler(func(c *nats.Conn) {
		if back != nil {
			back(c)
		}
		n.setUp(true)
	})
	n.renewedAt.Store(time.Now().UnixNano()) // its liveness key is new
	go n.renew()
	go n.watchTopics(topics)
	n.presence.Go(func() { n.watchPresence(nodes, claims) })
	n.presence.Go(n.reap)
	n.presence.Go(n.writePresence)
	n.presence.Go(n.reclaimKeys)
	n.presence.Go(n.tellLost)
	return n, nil
}

// bucket creates (or updates) one of the deployment's key-value buckets.
func bucket(ctx context.Context, js jetstream.JetStream, cfg Config, what string, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:   "natter_" + strings.ToLower(cfg.Name) + "_" + what,
		TTL:      ttl,
		Replicas: cfg.Replicas,
		Storage:  jetstream.FileStorage,
		// Markers: a key that expires or is purged leaves one, which
		// every watcher sees (presence.go). NATS 2.11 or later.
		LimitMarkerTTL: markerTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %s bucket: %w", what, err)
	}
	return kv, nil
}

// op bounds one request to NATS by Timeout, and by the node's life.
func (n *Node) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(n.ctx, n.cfg.Timeout)
}

// OnStatus registers f to be called when the node loses its connection to
// NATS (f(false)) and when it has it again (f(true)).
func (n *Node) OnStatus(f func(up bool)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.status = f
}

func (n *Node) setUp(up bool) {
	n.mu.Lock()
	n.p.up = up
	f := n.status
	n.mu.Unlock()
	if f != nil {
		f(up)
	}
}

// next returns the next message of the stream, or ctx's error.
func (n *Node) next(ctx context.Context) (jetstream.Msg, error) {
	// Not Stop from another goroutine: see Run.
	return n.msgs.Next(jetstream.NextContext(ctx))
}

// accept decodes the stream's message m, numbered seq, and reports whether
// the node takes it: whether it is UTF-8 JSON, about the room of its
// subject, and passes Config.Check. A refusal goes to OnRefused's function.
func (n *Node) accept(m jetstream.Msg, seq uint64) (history.Message, bool) {
	var msg history.Message
	reason := ""
	switch {
	case !utf8.Valid(m.Data()):
		// Checked first: decoding JSON would replace the invalid bytes.
		reason = "utf8"
	case json.Unmarshal(m.Data(), &msg) != nil:
		reason = "malformed"
	case m.Subject() != n.subject(msg):
		reason = "subject"
	case n.cfg.Check != nil:
		reason = n.cfg.Check(msg)
	}
	if reason != "" {
		n.refuse(seq, reason)
		return history.Message{}, false
	}
	msg.Seq = seq
	return msg, true
}

// eventsToken ends the subject of every room event (see history.Message):
// no room is named so. On a subject of their own, events take none of a
// room's stream messages (Config.MaxMessages), and the stream keeps only
// the latest MaxMessages of them, enough for a consumer to resume by.
const eventsToken = "~events"

// subject returns the stream subject m is published on: its room's, or
// the events' one.
func (n *Node) subject(m history.Message) string {
	if !m.IsChat() {
		return n.prefix + eventsToken
	}
	return n.prefix + strings.ToLower(m.Room)
}

// refuse reports a refused message to OnRefused's function, or keeps it
// for it.
func (n *Node) refuse(seq uint64, reason string) {
	n.mu.Lock()
	f := n.onRefused
	if f == nil && len(n.refusals) < maxRefusals {
		n.refusals = append(n.refusals, refusal{seq, reason})
	}
	n.mu.Unlock()
	if f != nil {
		f(seq, reason)
	}
}

// OnRefused registers f to be told of every message of the stream the
// node refuses (see Config.Check), by its sequence and the reason, those
// refused while joining included (up to a thousand of them).
func (n *Node) OnRefused(f func(seq uint64, reason string)) {
	n.mu.Lock()
	n.onRefused = f
	early := n.refusals
	n.refusals = nil
	n.mu.Unlock()
	for _, r := range early {
		f(r.seq, r.reason)
	}
}

// consume makes an ordered consumer of the stream that starts after the
// message numbered after (at the start for 0). The consumer makes itself
// again when it is lost (say, after NATS reconnects), but tries that only
// once: if it fails, Run returns, so that its caller knows this node
// receives nothing, rather than the consumer trying again in silence for
// as long as the stream is out of reach; Resume starts again from there.
func (n *Node) consume(ctx context.Context, after uint64) (jetstream.MessagesContext, error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, MaxResetAttempts: 1}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := n.js.OrderedConsumer(ctx, n.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: consumer: %w", err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("cluster: consumer: %w", err)
	}
	return msgs, nil
}

// Run calls deliver with every message any node stores from now on that
// the node takes (see Config.Check), in stream order, after adding it to
// the node's history, and with every room event of the other nodes
// (which goes into no history: see history.Message), until ctx ends, the
// node is closed, or reading the stream fails; then Resume starts again
// after the last message read. Only one Run may be active.
func (n *Node) Run(ctx context.Context, deliver func(history.Message)) error {
	n.mu.Lock()
	switch {
	case n.closed:
		n.mu.Unlock()
		return ErrClosed
	case n.running:
		n.mu.Unlock()
		return errors.New("cluster: Run is running already")
	case n.failed:
		n.mu.Unlock()
		return errors.New("cluster: reading the stream failed, and has not been resumed")
	}
	n.running = true
	msgs := n.msgs
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.running = false
		n.mu.Unlock()
	}()
	// Next ends with ctx or the node, and only this goroutine stops msgs:
	// an ordered consumer stopped while Next is making its consumer again
	// (after NATS came back) stops the old one and goes on waiting on the
	// new one, for good.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopWithNode := context.AfterFunc(n.ctx, cancel)
	defer stopWithNode()
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			msgs.Stop()
			if ctx.Err() != nil {
				if n.ctx.Err() != nil {
					return ErrClosed
				}
				return ctx.Err()
			}
			n.mu.Lock()
			n.failed = true
			n.mu.Unlock()
			return fmt.Errorf("cluster: reading the stream: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		n.last.Store(meta.Sequence.Stream)
		msg, ok := n.accept(m, meta.Sequence.Stream)
		if !ok {
			continue
		}
		switch {
		case msg.IsChat():
			n.copy.Insert(msg)
		case msg.Node == n.id:
			continue // an event of this node's, delivered already
		}
		deliver(msg)
	}
}

// Resume makes Run's consumer again after reading the stream failed, to
// start after the last message Run read, so that the next Run misses
// nothing and repeats nothing. It may not be called while Run runs.
func (n *Node) Resume(ctx context.Context) error {
	n.mu.Lock()
	closed, running := n.closed, n.running
	n.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case running:
		return errors.New("cluster: Resume while Run is running")
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	msgs, err := n.consume(ctx, n.last.Load())
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		msgs.Stop()
		return ErrClosed
	}
	n.msgs.Stop()
	n.msgs, n.failed = msgs, false
	return nil
}

// Append implements history.Store: it publishes msgs to the stream and
// returns once JetStream has stored them, setting each one's Seq to its
// stream sequence. The messages reach clients through Run, on every node.
// An error wrapping history.ErrUnconfirmed means some of the messages may
// have been stored nonetheless, and will then reach everyone; any other
// error means none was sent.
func (n *Node) Append(msgs []history.Message) error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	ctx, cancel := n.op()
	defer cancel()
	acks := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		m.Seq = 0
		if !m.IsChat() {
			m.Node = n.id // which delivered it to its clients already
		}
		data, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if acks[i], err = n.js.PublishAsync(n.subject(m), data); err != nil {
			return fmt.Errorf("cluster: publish: %w", err)
		}
	}
	for i, f := range acks {
		select {
		case ack := <-f.Ok():
			msgs[i].Seq = ack.Sequence
		case err := <-f.Err():
			return fmt.Errorf("cluster: publish: %w: %w", history.ErrUnconfirmed, err)
		case <-ctx.Done():
			if n.ctx.Err() != nil {
				return fmt.Errorf("cluster: publish: %w: %w", history.ErrUnconfirmed, ErrClosed)
			}
			return fmt.Errorf("cluster: publish: %w within %v", history.ErrUnconfirmed, n.cfg.Timeout)
		}
	}
	return nil
}

// Before implements history.Store from the node's copy of the stream.
func (n *Node) Before(room string, before uint64, k int) ([]history.Message, error) {
	return n.copy.Before(room, before, k)
}

// After implements history.Store from the node's copy of the stream.
func (n *Node) After(room string, after uint64, k int) ([]history.Message, error) {
	return n.copy.After(room, after, k)
}

// Bounds implements history.Store from the node's copy of the stream.
func (n *Node) Bounds(room string) (oldest, newest uint64, err error) {
	return n.copy.Bounds(room)
}

// ID returns the id of the history: the stream's name and the time it was
// created, the same on every node of the deployment, and new if the stream
// is deleted and made again, which numbers messages anew.
func (n *Node) ID() string { return n.history }

// Trim implements history.Store on the node's copy; JetStream applies the
// same limits to the stream.
func (n *Node) Trim(now time.Time, limit int) (int, error) { return n.copy.Trim(now, limit) }

// Close stops the node's consumer, so that a running Run returns, its
// watches, its renewal of its liveness key and its presence writes, and
// ends its requests in flight (an Append waiting for acknowledgements
// fails); its claims are removed by the other nodes once its liveness key
// expires, PresenceTTL later, unless released. It sends NATS no request, so
// it returns at once whatever state NATS is in.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	msgs, running := n.msgs, n.running
	n.mu.Unlock()
	if !running { // else Run stops it, as n.cancel ends its Next
		msgs.Stop()
	}
	// Cancelling n.ctx ends the watch too: its subscription ends at once,
	// and the request deleting its consumer, which a stalled NATS would
	// not answer, is left to nats.go.
	n.cancel()
	<-n.renewed
	<-n.watched
	n.presence.Wait() // claims left unremoved go with the liveness key, reaped by the other nodes
	return n.copy.Close()
}
