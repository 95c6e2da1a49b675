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
	// DefaultPresenceTTL is how long a node's claims on nicknames outlive
	// it: a node renews them three times per TTL, so a dead node's users
	// are gone from the cluster within this long.
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
	kv       jetstream.KeyValue // nick.<folded nickname> = the claiming node's id
	accounts jetstream.KeyValue // folded name = password hash
	rooms    jetstream.KeyValue // topic.<room> = its topic
	id       string             // this node's
	history  string             // the stream's: see ID

	last atomic.Uint64 // the sequence of the last message read from the stream
	// renewedAt is when the last renewal of every claim that succeeded
	// began, in Unix nanoseconds (see ClaimsFresh).
	renewedAt atomic.Int64

	mu      sync.Mutex
	closed  bool
	running bool
	failed  bool              // Run's consumer failed, and Resume has not replaced it
	held    map[string]uint64 // presence keys this node holds and renews, at their revisions
	status  func(up bool)     // told when NATS is lost and back
	ctx     context.Context   // cancelled by Close, to end renew
	cancel  context.CancelFunc
	renewed chan struct{} // closed when renew has returned
	watched chan struct{} // closed when watchTopics has returned
	// written holds the presence writes not yet made, in order: Enter and
	// drop queue them and return at once, so that a server may call them
	// under its lock; writePresence makes them. Only a key's last write
	// counts, so a key is queued once (queued), and the queue is never
	// longer than the keys this node has held since NATS last answered.
	written []presenceWrite
	queued  map[string]int // index in written, by key
	toWrite chan struct{}  // wakes writePresence
	wrote   chan struct{}  // closed when writePresence has returned
	onTopic func(room, by, text string)
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
		js:      js,
		cfg:     cfg,
		stream:  "NATTER_" + strings.ToUpper(cfg.Name),
		prefix:  "natter." + strings.ToLower(cfg.Name) + ".room.",
		copy:    history.NewMemory(history.Retention{MaxMessages: cfg.MaxMessages, MaxAge: cfg.MaxAge}),
		id:      nats.NewInbox()[len(nats.InboxPrefix):],
		held:    make(map[string]uint64),
		renewed: make(chan struct{}),
		watched: make(chan struct{}),
		toWrite: make(chan struct{}, 1),
		wrote:   make(chan struct{}),
	}
	// Presence expires unless renewed; accounts and topics stay.
	if n.kv, err = bucket(ctx, js, cfg, "presence", cfg.PresenceTTL); err != nil {
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
	n.renewedAt.Store(time.Now().UnixNano()) // nothing claimed yet
	go n.renew()
	go n.watchTopics(topics)
	go n.writePresence()
	return n, nil
}

// bucket creates (or updates) one of the deployment's key-value buckets.
func bucket(ctx context.Context, js jetstream.JetStream, cfg Config, what string, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:   "natter_" + strings.ToLower(cfg.Name) + "_" + what,
		TTL:      ttl,
		Replicas: cfg.Replicas,
		Storage:  jetstream.FileStorage,
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
	f := n.status
	n.mu.Unlock()
	if f != nil {
		f(up)
	}
}

// ClaimNick reserves nick (folded) for a client of this node across the
// cluster, and reports whether it could: false if a client of another
// node has it. A node's claims last while it lives (see PresenceTTL).
func (n *Node) ClaimNick(nick string) (bool, error) {
	ctx, cancel := n.op()
	defer cancel()
	key := "nick." + nick
	rev, err := n.kv.Create(ctx, key, []byte(n.id))
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := n.kv.Get(ctx, key)
		if gerr != nil || string(e.Value()) != n.id {
			return false, nil
		}
		rev, err = e.Revision(), nil
	}
	if err != nil {
		return false, fmt.Errorf("cluster: claiming a nickname: %w", err)
	}
	n.mu.Lock()
	n.held[key] = rev
	n.mu.Unlock()
	return true, nil
}

// ReleaseNick gives up a nickname this node claimed.
func (n *Node) ReleaseNick(nick string) { n.drop("nick." + nick) }

// Enter records across the cluster that nick, a client of this node, is
// in room, until Leave (or until the node is gone for PresenceTTL). The
// write is made in the background, in order with the node's other
// presence writes, so Enter never waits for NATS; one that fails is made
// again at the next renewal. It returns nil.
func (n *Node) Enter(room, nick string) error {
	key := memberKey(room, nick)
	n.mu.Lock()
	if _, held := n.held[key]; !held {
		n.held[key] = 0 // its revision once written
	}
	n.queueLocked(presenceWrite{key: key, put: true})
	n.mu.Unlock()
	n.wakeWriter()
	return nil
}

// presenceWrite is a presence key to write (put) or delete.
type presenceWrite struct {
	key string
	put bool
}

// queueLocked queues w for writePresence, in place of a write of the same
// key still queued. n.mu must be held.
func (n *Node) queueLocked(w presenceWrite) {
	if i, ok := n.queued[w.key]; ok {
		n.written[i] = w
		return
	}
	if n.queued == nil {
		n.queued = make(map[string]int)
	}
	n.queued[w.key] = len(n.written)
	n.written = append(n.written, w)
}

// wakeWriter makes sure writePresence looks at n.written.
func (n *Node) wakeWriter() {
	select {
	case n.toWrite <- struct{}{}:
	default:
	}
}

// writePresence makes the presence writes Enter and drop queue, in order,
// until Close.
func (n *Node) writePresence() {
	defer close(n.wrote)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.toWrite:
		}
		n.mu.Lock()
		ws := n.written
		n.written, n.queued = nil, nil
		n.mu.Unlock()
		for _, w := range ws {
			ctx, cancel := n.op()
			if w.put {
				rev, err := n.kv.Put(ctx, w.key, []byte(n.id))
				n.mu.Lock()
				if _, still := n.held[w.key]; still && err == nil {
					n.held[w.key] = rev
				}
				n.mu.Unlock()
			} else {
				n.kv.Delete(ctx, w.key)
			}
			cancel()
			if n.ctx.Err() != nil {
				return
			}
		}
	}
}

// Leave records that nick is no longer in room.
func (n *Node) Leave(room, nick string) { n.drop(memberKey(room, nick)) }

// Members returns the nicknames of the members of room on every node,
// in no particular order.
func (n *Node) Members(room string) ([]string, error) {
	rooms, err := n.members("in." + strings.ToLower(room) + ".*")
	if err != nil {
		return nil, err
	}
	return rooms[strings.ToLower(room)], nil
}

// Rooms returns, for every room with members on any node, by its name in
// lower case, the nicknames of its members.
func (n *Node) Rooms() (map[string][]string, error) { return n.members("in.*.*") }

func (n *Node) members(filter string) (map[string][]string, error) {
	ctx, cancel := n.op()
	defer cancel()
	keys, err := n.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("cluster: presence: %w", err)
	}
	rooms := make(map[string][]string)
	for key := range keys.Keys() {
		if room, nick, ok := strings.Cut(strings.TrimPrefix(key, "in."), "."); ok {
			rooms[room] = append(rooms[room], nick)
		}
	}
	if err := ctx.Err(); err != nil { // the listing was cut short
		return nil, fmt.Errorf("cluster: presence: %w", err)
	}
	return rooms, nil
}

func memberKey(room, nick string) string { return "in." + strings.ToLower(room) + "." + nick }

// drop forgets a key this node holds and deletes it in the background,
// in order with its other presence writes; if that fails, it expires.
func (n *Node) drop(key string) {
	n.mu.Lock()
	_, held := n.held[key]
	delete(n.held, key)
	if held {
		n.queueLocked(presenceWrite{key: key})
	}
	n.mu.Unlock()
	if held {
		n.wakeWriter()
	}
}

// renew renews the node's presence keys three times per PresenceTTL until
// Close. A nickname is renewed only at the revision this node wrote, so a
// claim that lapsed (say, during an outage) and was taken by another node
// is given up rather than taken back.
func (n *Node) renew() {
	defer close(n.renewed)
	t := time.NewTicker(n.cfg.PresenceTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n.mu.Lock()
		keys := make([]string, 0, len(n.held))
		for key := range n.held {
			keys = append(keys, key)
		}
		n.mu.Unlock()
		ok := true
		for _, key := range keys {
			ok = n.renewKey(key) && ok
		}
		if ok {
			n.renewedAt.Store(start.UnixNano())
		}
	}
}

// ClaimsFresh reports whether this node's claims are surely still its own:
// whether a renewal of all of them began less than two thirds of
// PresenceTTL ago, long before any of them could lapse and be taken
// elsewhere. A node that stalls, or can't reach NATS, stops being fresh
// before its claims lapse; it is fresh again after its next renewal,
// which also finds the claims it lost (OnClaimLost).
func (n *Node) ClaimsFresh() bool {
	return time.Since(time.Unix(0, n.renewedAt.Load())) < n.cfg.PresenceTTL*2/3
}

// renewKey renews key at the revision this node wrote (a nickname) or
// writes it again (presence), and reports whether the key is settled:
// renewed, or no longer this node's (dropped meanwhile, or a nickname
// another node's client has now, which OnClaimLost is told of); false if
// NATS could not be asked.
func (n *Node) renewKey(key string) bool {
	n.mu.Lock()
	rev, held := n.held[key]
	n.mu.Unlock()
	if !held { // dropped meanwhile
		return true
	}
	ctx, cancel := n.op()
	defer cancel()
	var err error
	if strings.HasPrefix(key, "nick.") {
		rev, err = n.kv.Update(ctx, key, []byte(n.id), rev)
		if err != nil && ctx.Err() == nil {
			// Lapsed: ours again only if no one took it meanwhile.
			rev, err = n.kv.Create(ctx, key, []byte(n.id))
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			// Or written by this node after all: an update that timed
			// out here may have reached NATS.
			if e, gerr := n.kv.Get(ctx, key); gerr == nil && string(e.Value()) == n.id {
				rev, err = e.Revision(), nil
			}
		}
	} else {
		rev, err = n.kv.Put(ctx, key, []byte(n.id))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var lost func(string)
	switch _, still := n.held[key]; {
	case !still:
	case errors.Is(err, jetstream.ErrKeyExists):
		delete(n.held, key) // another node's now
		lost = n.onClaimLost
	case err == nil:
		n.held[key] = rev
	}
	if nick, ok := strings.CutPrefix(key, "nick."); ok && lost != nil {
		n.mu.Unlock()
		lost(nick)
		n.mu.Lock() // for the deferred Unlock
	}
	return err == nil || errors.Is(err, jetstream.ErrKeyExists)
}

// OnClaimLost registers a function told of each nickname (folded) this
// node claimed and found, renewing it, that another node's client holds
// now: its client here must lose it.
func (n *Node) OnClaimLost(f func(nick string)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.onClaimLost = f
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
// watch of topics and its renewal of nicknames, and ends its requests in
// flight (an Append waiting for acknowledgements fails); the nicknames
// expire after PresenceTTL unless released. It sends NATS no request, so
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
	<-n.wrote // presence writes left unmade lapse with the presence TTL
	return n.copy.Close()
}
