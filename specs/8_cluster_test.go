package specs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/cli/clientcmd"
	"github.com/natter-chat/natter/chat/cluster"
	"github.com/natter-chat/natter/chat/files"
	"github.com/natter-chat/natter/chat/protocol"
	"github.com/natter-chat/natter/netfake/link"
)

// natsServer is an in-process NATS server with JetStream on a temporary
// directory, listening on no port, that a spec can stop and start again
// (with its data) to cut the nodes off from it.
type natsServer struct {
	dir string
	cur atomic.Pointer[natsserver.Server]

	mu      sync.Mutex
	stalled chan struct{} // while not nil, nothing the server sends reaches a node; closed by Resume
}

// startNATS starts a natsServer and registers its shutdown.
func startNATS() *natsServer {
	GinkgoHelper()
	n := &natsServer{dir: GinkgoT().TempDir()}
	n.Start()
	DeferCleanup(n.Stop)
	return n
}

// Start starts the server, again if it was stopped.
func (n *natsServer) Start() {
	GinkgoHelper()
	n.start(true)
}

// StartWithoutJetStream starts the server again with JetStream off: NATS is
// reachable, but the stream is not.
func (n *natsServer) StartWithoutJetStream() {
	GinkgoHelper()
	n.start(false)
}

func (n *natsServer) start(jetStream bool) {
	GinkgoHelper()
	ns, err := natsserver.NewServer(&natsserver.Options{
		JetStream: jetStream, StoreDir: n.dir, DontListen: true, NoLog: true, NoSigs: true,
	})
	Expect(err).NotTo(HaveOccurred())
	ns.Start()
	Expect(ns.ReadyForConnections(5*time.Second)).To(BeTrue(), "NATS did not start")
	n.cur.Store(ns)
}

// Stop shuts the server down, which drops every connection to it.
func (n *natsServer) Stop() {
	if ns := n.cur.Load(); ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// InProcessConn connects to the running server, for nats.InProcessServer.
func (n *natsServer) InProcessConn() (net.Conn, error) {
	conn, err := n.cur.Load().InProcessConn()
	if err != nil {
		return nil, err
	}
	return &stallingConn{Conn: conn, n: n, closed: make(chan struct{})}, nil
}

// Stall holds up everything the server sends, to every node, until
// Resume, as if nats-server had been stopped with SIGSTOP: the nodes'
// connections stay up, and no answer comes.
func (n *natsServer) Stall() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stalled == nil {
		n.stalled = make(chan struct{})
	}
}

// Resume lets what the server sends through again.
func (n *natsServer) Resume() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stalled != nil {
		close(n.stalled)
		n.stalled = nil
	}
}

// StreamMessages returns how many messages the stream holds.
func (n *natsServer) StreamMessages(stream string) uint64 {
	GinkgoHelper()
	info, err := n.cur.Load().Jsz(&natsserver.JSzOptions{Accounts: true, Streams: true})
	Expect(err).NotTo(HaveOccurred())
	for _, a := range info.AccountDetails {
		for _, s := range a.Streams {
			if s.Name == stream {
				return s.State.Msgs
			}
		}
	}
	return 0
}

func (n *natsServer) gate() chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stalled
}

// stallingConn is a node's connection to a natsServer, whose reads wait
// while the server is stalled.
type stallingConn struct {
	net.Conn
	n      *natsServer
	once   sync.Once
	closed chan struct{}
}

func (c *stallingConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	if gate := c.n.gate(); gate != nil {
		select {
		case <-gate:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	return k, err
}

func (c *stallingConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// presenceTTL is how long a dead node's users stay listed, in these specs.
const presenceTTL = 2 * time.Second

// startNode starts a natter server on nw that joins the cluster on ns. It
// returns the node's NATS connection too, for a spec to cut.
func startNode(nw Network, ns *natsServer, opts chat.Options) (*runningServer, *nats.Conn) {
	GinkgoHelper()
	srv, nc, _ := startNodeWith(nw, ns, opts, cluster.Config{Timeout: time.Second, PresenceTTL: presenceTTL})
	return srv, nc
}

// startNodeWith is startNode with the node's configuration, and returns
// the node too.
func startNodeWith(nw Network, ns *natsServer, opts chat.Options, cfg cluster.Config) (*runningServer, *nats.Conn, *cluster.Node) {
	GinkgoHelper()
	return joinNode(nw, "", nats.InProcessServer(ns), opts, cfg)
}

// startNodeThrough is startNodeWith with the node's connection to NATS
// going through a fault link on nw, which it returns for the spec to
// stall, cut or slow down.
func startNodeThrough(nw Network, ns *natsServer, opts chat.Options, cfg cluster.Config) (*runningServer, *cluster.Node, *link.Link) {
	GinkgoHelper()
	ln, err := nw.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	l := link.New(ln, func(context.Context) (net.Conn, error) { return ns.InProcessConn() })
	DeferCleanup(l.Close) // after the node's cleanups
	srv, _, node := joinNode(nw, "nats://"+l.Addr().String(), nats.SetCustomDialer(natsDialer{nw}), opts, cfg)
	return srv, node, l
}

// startFileNode starts a cluster node on ns that shares files, kept in the
// cluster (cluster.Node.Files), its HTTP side on its own listener of nw.
func startFileNode(nw Network, ns *natsServer) *fileServer {
	GinkgoHelper()
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectBufSize(-1))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	opts := chat.Options{HistoryOnJoin: -1}
	node, err := cluster.Join(ctx, nc, cluster.Config{Timeout: time.Second, PresenceTTL: presenceTTL, Check: chat.StreamCheck(opts)})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(node.Close)
	store, err := node.Files(ctx, 1<<30)
	Expect(err).NotTo(HaveOccurred())
	opts.Cluster, opts.Accounts = node, node.Accounts()
	return startFileServer(nw, opts, files.Config{Store: store})
}

// natsDialer dials NATS over a spec's network.
type natsDialer struct{ nw Network }

func (d natsDialer) Dial(network, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	return d.nw.DialContext(ctx, network, address)
}

// joinNode connects to NATS at url with how, joins the cluster and
// starts a natter server on nw as its node.
func joinNode(nw Network, url string, how nats.Option, opts chat.Options, cfg cluster.Config) (*runningServer, *nats.Conn, *cluster.Node) {
	GinkgoHelper()
	nc, err := nats.Connect(url, how, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectBufSize(-1))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	if cfg.Check == nil {
		cfg.Check = chat.StreamCheck(opts)
	}
	node, err := cluster.Join(ctx, nc, cfg)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(node.Close)
	opts.Cluster, opts.Accounts = node, node.Accounts()
	return startServer(nw, opts), nc, node
}

// asking returns a function that sends c the line (a command or chat) and returns the next
// line it gets back, presence announcements aside, for Eventually.
func asking(c *testClient, command string) func() string {
	return func() string {
		c.Send(command + "\n")
		l, err := c.NextLine()
		Expect(err).NotTo(HaveOccurred())
		return l
	}
}

// skipTo reads c's lines up to and including one of want, and fails if
// c's lines end, or a dozen go by, first.
func (c *testClient) skipTo(want ...string) {
	GinkgoHelper()
	for range 12 {
		l, err := c.ReadLine()
		Expect(err).NotTo(HaveOccurred(), "waiting for %q", want)
		if slices.Contains(want, l) {
			return
		}
	}
	Fail(fmt.Sprintf("none of %q in a dozen lines", want))
}

// settle has each of senders (one per node) say so in the lobby, and
// reads every one of all past those lines: the arrivals and renames made
// on a node before, which the stream carries ahead of a line sent after
// them there, have reached everyone by then.
func settle(senders []*testClient, all ...*testClient) {
	GinkgoHelper()
	for _, sender := range senders {
		sender.Send("settled\n")
		for _, c := range all {
			c.skipTo(sender.Says("settled"), "[#lobby] "+sender.Says("settled"))
		}
	}
}

// named connects a client to srv and gives it a nickname, so that clients
// of different nodes (whose guest numbers overlap) can be told apart.
func named(nw Network, srv *runningServer, nick string) *testClient {
	GinkgoHelper()
	c := connectAll(srv, nw, 1)[0]
	c.Send("/nick " + nick + "\n")
	// Past the arrivals and renames of those named before, which may
	// reach c from the cluster after it arrived.
	c.skipTo("*** " + c.Nick + " is now " + nick)
	c.Nick = nick
	return c
}

var _ = DescribeTableSubtree("A cluster of natter servers", func(tr Transport) {
	var (
		nw   Network
		ns   *natsServer
		a, b *runningServer
		anc  *nats.Conn // a's connection to NATS
	)

	BeforeEach(func() {
		nw = tr.New(false)
		ns = startNATS()
		a, anc = startNode(nw, ns, chat.Options{HistoryOnJoin: -1})
		b, _ = startNode(nw, ns, chat.Options{HistoryOnJoin: -1})
	})

	It("delivers a line sent on one node to the room's members on every node, once each", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice, bob := named(nw, a, "alice"), named(nw, b, "bob")
		alice.Send("hello from a\n")
		bob.ExpectLines(alice.Says("hello from a"))
		alice.ExpectLines(alice.Says("hello from a"))
		bob.Send("hello from b\n")
		alice.ExpectLines(bob.Says("hello from b"))
		bob.ExpectLines(bob.Says("hello from b"))
		// Nothing twice: the next line is the next message.
		alice.Send("done\n")
		bob.ExpectLines(alice.Says("done"))
		alice.ExpectLines(alice.Says("done"))
	})

	It("gives every member, on every node, a room's messages in one order", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice, bob := named(nw, a, "alice"), named(nw, b, "bob")
		carol := named(nw, a, "carol")
		const n = 25
		for i := range n {
			alice.Send(fmt.Sprintf("a%d\n", i))
			bob.Send(fmt.Sprintf("b%d\n", i))
		}
		read := func(c *testClient) []string {
			GinkgoHelper()
			got := make([]string, 2*n)
			for i := range got {
				l, err := c.NextLine()
				Expect(err).NotTo(HaveOccurred())
				got[i] = l
			}
			return got
		}
		first := read(alice)
		Expect(first).To(ContainElements(alice.Says("a0"), bob.Says("b0"), alice.Says(fmt.Sprintf("a%d", n-1)), bob.Says(fmt.Sprintf("b%d", n-1))))
		var sent []string
		for i := range n {
			sent = append(sent, alice.Says(fmt.Sprintf("a%d", i)), bob.Says(fmt.Sprintf("b%d", i)))
		}
		Expect(first).To(ConsistOf(sent), "every line once, none lost and none twice")
		Expect(read(bob)).To(Equal(first))
		Expect(read(carol)).To(Equal(first))
	})

	It("takes a client's command after the lines it sent before it: a rename on a node reaches its members after the line, though the line goes round the cluster", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice, carol := named(nw, a, "alice"), named(nw, a, "carol")
		bob := named(nw, b, "bob")
		settle([]*testClient{carol, bob}, alice, carol, bob)
		alice.Send("hello\n/nick alicia\n")
		for _, c := range []*testClient{alice, carol} {
			Expect(c.NextLine()).To(Equal("alice: hello"))
			c.ExpectExactly("*** alice is now alicia")
		}
		bob.ExpectLines("alice: hello")
	})

	It("tells the members of a room on every node of a rename, a join, a part and a quit, in the room's order with its messages; the client it is about hears at once", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice, carol := named(nw, a, "alice"), named(nw, a, "carol")
		bob, dave := named(nw, b, "bob"), named(nw, b, "dave")
		settle([]*testClient{carol, bob}, alice, carol, bob, dave)
		dave.Send("/join games\n")
		dave.ExpectExactly("*** dave joined #games", "*** you are now talking in #games")

		alice.Send("/nick alicia\n/join games\n/part games see you\nhi\n/quit bye\n")
		alice.ExpectExactly("*** alice is now alicia", "*** alicia joined #games", "*** you are now talking in #games",
			"*** alicia left #games (see you)", "*** you are now talking in #lobby", "alicia: hi")
		for _, c := range []*testClient{carol, bob} {
			c.ExpectExactly("*** alice is now alicia", "alicia: hi", "*** alicia quit (bye)")
		}
		dave.ExpectExactly("*** alice is now alicia", "*** alicia joined #games", "*** alicia left #games (see you)",
			"[#lobby] alicia: hi", "*** alicia quit (bye)")
	})

	It("keeps nicknames unique across the nodes, guest names included, and frees one when its owner leaves", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice := named(nw, a, "alice")
		other := connectAll(b, nw, 1)[0]
		guest := connectAll(a, nw, 1)[0]
		Expect(other.Nick).NotTo(Equal(guest.Nick), "a guest name is not given twice")
		other.Send("/nick ALICE\n")
		other.ExpectLines("*** error: the nickname ALICE is taken")

		Expect(alice.conn.Close()).To(Succeed())
		Eventually(func() string {
			other.Send("/nick alice\n")
			l, err := other.ReadLine() // not NextLine: a rename is a presence line
			Expect(err).NotTo(HaveOccurred())
			return l
		}).Should(Equal("*** " + other.Nick + " is now alice"))
	})

	It("shares accounts: a name registered on one node logs in on another, and can't be registered twice", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice := connectAll(a, nw, 1)[0]
		alice.Send("/register alice correct-horse\n")
		alice.ExpectLines(
			"*** warning: your password crossed the network unencrypted; connect with TLS next time",
			"*** registered alice; you are logged in")
		Expect(alice.conn.Close()).To(Succeed())
		Eventually(a.Clients).Should(BeZero(), "alice has left node a, and her nickname is free")

		again := connectAll(b, nw, 1)[0]
		// Node a gives up alice's nickname claim in the background: until
		// then, b's answer is that the name is taken.
		Eventually(asking(again, "/register ALICE another-password")).Should(Equal("*** error: can't register ALICE: that name is already registered"))
		again.Send("/login alice correct-horse\n")
		again.ExpectLines(
			"*** warning: your password crossed the network unencrypted; connect with TLS next time",
			"*** logged in as alice")
	})

	It("shares a room's topic: members on every node see it set, and whoever joins on any node is told it", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice, bob := named(nw, a, "alice"), named(nw, b, "bob")
		alice.Send("/topic cluster day\n")
		for _, c := range []*testClient{alice, bob} {
			c.ExpectLines("*** alice set the topic of #lobby: cluster day")
		}
		bob.Send("/topic\n")
		bob.ExpectLines("*** topic of #lobby: cluster day")

		alice.Send("/join games\n/topic no spoilers\n")
		alice.ExpectLines("*** you are now talking in #games", "*** alice set the topic of #games: no spoilers")
		bob.Send("/join games\n")
		bob.ExpectLines("*** you are now talking in #games", "*** topic of #games: no spoilers")
	})

	It("asks NATS nothing while holding the server's lock: while NATS stalls, a join, a rename and a topic wait, and an unrelated client's /help and chat are answered meanwhile", SpecTimeout(specTimeout), func(ctx SpecContext) {
		// A node that waits for NATS far longer than the spec waits for
		// carol's answer.
		c, _, l := startNodeThrough(nw, ns, chat.Options{HistoryOnJoin: -1}, cluster.Config{Timeout: time.Minute, PresenceTTL: presenceTTL})
		alice, carol := named(nw, c, "alice"), named(nw, c, "carol")
		l.Stall()
		// alice's help comes back just before her reader goes on to the
		// commands that ask NATS: carol asks after that.
		alice.Send("/help\n/join games\n/nick alicia\n/topic stalled\n")
		for {
			l, err := alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			if strings.HasPrefix(l, "*** //TEXT") { // help's last line
				break
			}
		}
		carol.Send("/help\n")
		help, err := carol.NextLine()
		Expect(err).NotTo(HaveOccurred())
		Expect(help).To(HavePrefix("*** /nick NAME"), "carol's /help waited for NATS")
		l.Resume()
		alice.ExpectLines("*** you are now talking in #games")
	})

	It("takes a nickname from a client at once when its node finds the cluster gave it to another node's client, saying why", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice := named(nw, a, "alice")
		watcher := named(nw, a, "watcher")
		// As when node a stalled past the TTL and a client of another node
		// took the name: the claim in the bucket is no longer a's.
		nc, err := nats.Connect("", nats.InProcessServer(ns))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(nc.Close)
		js, err := jetstream.New(nc)
		Expect(err).NotTo(HaveOccurred())
		// Another node, alive, whose client holds the name now.
		nodes, err := js.KeyValue(ctx, "natter_"+cluster.DefaultName+"_nodes")
		Expect(err).NotTo(HaveOccurred())
		_, err = nodes.Put(ctx, "node.another", []byte("another"))
		Expect(err).NotTo(HaveOccurred())
		claims, err := js.KeyValue(ctx, "natter_"+cluster.DefaultName+"_claims")
		Expect(err).NotTo(HaveOccurred())
		_, err = claims.Put(ctx, "nick.alice", []byte("another"))
		Expect(err).NotTo(HaveOccurred())

		// As soon as a's watch of the claims sees it.
		l, err := alice.NextLine()
		Expect(err).NotTo(HaveOccurred())
		m := regexp.MustCompile(`^\*\*\* your nickname alice was taken by a client of another node while this node could not renew it; you are now (guest-\d+)$`).FindStringSubmatch(l)
		Expect(m).NotTo(BeNil(), "got %q", l)
		alice.Nick = m[1]
		watcher.ExpectExactly("*** alice is now " + alice.Nick)
		alice.Send("still me\n")
		watcher.ExpectLines(alice.Says("still me"))
	})

	It("gives a nickname to one client only when a node stalls past the presence TTL: the others forget its users, and once it is back it takes the name from its client, saying why", SpecTimeout(specTimeout), func(ctx SpecContext) {
		c, _, l := startNodeThrough(nw, ns, chat.Options{HistoryOnJoin: -1}, cluster.Config{Timeout: time.Second, PresenceTTL: presenceTTL})
		alice, watcher := named(nw, c, "alice"), named(nw, c, "watcher")
		bob := named(nw, b, "bob")
		Eventually(asking(bob, "/who")).Should(Equal("*** in #lobby (3): alice, bob, watcher"))

		// As if node c were stopped (SIGSTOP): nothing passes between it and
		// NATS, and its liveness key lapses.
		l.Stall()
		Eventually(asking(bob, "/who")).WithTimeout(3 * presenceTTL).Should(Equal("*** in #lobby (1): bob"))
		// Meanwhile c attributes nothing to alice, whose claim it can't renew.
		alice.Send("still alice?\n")
		alice.ExpectLines("*** error: this node can't confirm your nickname with the cluster right now; line not sent")
		mallory := named(nw, b, "mallory")
		mallory.Send("/nick alice\n")
		mallory.skipTo("*** mallory is now alice")

		l.Resume()
		guest := regexp.MustCompile(`^\*\*\* your nickname alice was taken by a client of another node while this node could not renew it; you are now (guest-\d+)$`)
		var m []string
		for m == nil {
			l, err := alice.ReadLine()
			Expect(err).NotTo(HaveOccurred(), "waiting to be told alice was taken")
			m = guest.FindStringSubmatch(l)
		}
		alice.Nick = m[1]
		watcher.skipTo("*** alice is now " + alice.Nick)
		// One alice in the cluster: b's; c's client speaks under its guest name.
		Eventually(asking(bob, "/who")).WithTimeout(3 * presenceTTL).Should(Equal("*** in #lobby (4): alice, bob, " + alice.Nick + ", watcher"))
		Eventually(asking(alice, "still me")).WithTimeout(3 * presenceTTL).Should(Equal(alice.Says("still me")))
		bob.skipTo(alice.Says("still me"))
	})

	It("heals a partition: a node cut off from NATS says so, the others forget its users within the presence TTL, and once it is back they list them again and chat with them", SpecTimeout(specTimeout), func(ctx SpecContext) {
		c, _, l := startNodeThrough(nw, ns, chat.Options{HistoryOnJoin: -1}, cluster.Config{Timeout: time.Second, PresenceTTL: presenceTTL})
		alice, bob := named(nw, c, "alice"), named(nw, b, "bob")
		Eventually(asking(bob, "/who")).Should(Equal("*** in #lobby (2): alice, bob"))

		l.Cut() // and every connection c makes to NATS is closed at once
		alice.skipTo("*** the cluster is unreachable: messages can't be sent until it is back")
		Eventually(asking(bob, "/who")).WithTimeout(3 * presenceTTL).Should(Equal("*** in #lobby (1): bob"))

		l.Heal()
		alice.skipTo("*** the cluster is back: messages can be sent again")
		Eventually(asking(bob, "/who")).WithTimeout(3 * presenceTTL).Should(Equal("*** in #lobby (2): alice, bob"))
		Eventually(asking(alice, "back")).WithTimeout(3 * presenceTTL).Should(Equal(alice.Says("back")))
		bob.skipTo(alice.Says("back"))
		bob.Send("welcome back\n")
		alice.skipTo(bob.Says("welcome back"))
	})

	It("says nothing under a nickname its node can't renew in time, before the claim could lapse elsewhere, and speaks again once renewed", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice := named(nw, a, "alice")
		ns.Stall()
		DeferCleanup(ns.Resume)
		refused := "*** error: this node can't confirm your nickname with the cluster right now; line not sent"
		Eventually(asking(alice, "still alice?")).WithTimeout(2 * presenceTTL).Should(Equal(refused))
		ns.Resume()
		Eventually(asking(alice, "back")).WithTimeout(3 * presenceTTL).Should(Equal(alice.Says("back")))
	})

	It("lists a room's members and the rooms across every node", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice, bob := named(nw, a, "alice"), named(nw, b, "bob")
		bob.Send("/join games\n")
		bob.ExpectLines("*** you are now talking in #games")
		// Presence is written in the background: each node's listing
		// catches up with the other's.
		Eventually(asking(alice, "/who lobby")).Should(Equal("*** in #lobby (2): alice, bob"))
		Eventually(asking(alice, "/who games")).Should(Equal("*** in #games (1): bob"))
		Eventually(asking(alice, "/rooms")).Should(Equal("*** rooms: #games (1), #lobby (2)"))
	})

	It("forgets the users of a node that died, within the presence TTL, and frees their nicknames; the dead node stops saying it is ready", SpecTimeout(specTimeout), func(ctx SpecContext) {
		named(nw, a, "alice")
		bob := named(nw, b, "bob")
		Eventually(asking(bob, "/who")).Should(Equal("*** in #lobby (2): alice, bob"))

		// Node a dies: it loses NATS for good, so it can't say goodbye, and
		// stops saying it is ready.
		anc.Close()
		Eventually(func() string {
			rec := httptest.NewRecorder()
			a.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			return fmt.Sprint(rec.Code, " ", rec.Body.String())
		}).Should(Equal("503 cluster delivery stopped\n"))
		Expect(a.Stop()).To(Succeed())
		Eventually(asking(bob, "/who")).WithTimeout(3 * presenceTTL).Should(Equal("*** in #lobby (1): bob"))
		// Its nickname lapses on its own clock, close to its presence.
		Eventually(func() string {
			bob.Send("/nick alice\n")
			l, err := bob.ReadLine() // not NextLine: a rename is a presence line
			Expect(err).NotTo(HaveOccurred())
			return l
		}).WithTimeout(3 * presenceTTL).Should(Equal("*** bob is now alice"))
	})

	It("moves the clients of a node that stops to another node, where they resume without a gap or a duplicate", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", a.Addr+","+b.Addr, "-nick", "alice")
		client.Type("before\n")
		Eventually(client.stdout).Should(gbytes.Say("alice: before\n"))

		Expect(a.Stop()).To(Succeed())
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* connection lost; reconnecting`))
		bob := named(nw, b, "bob")
		bob.Send("while you were away\n")
		bob.ExpectLines(bob.Says("while you were away"))

		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* reconnected to ` + b.Addr + `\n`))
		Eventually(client.stdout).Should(gbytes.Say(bob.Says("while you were away") + `\n`))
		bob.Send("welcome back\n")
		Eventually(client.stdout).Should(gbytes.Say(bob.Says("welcome back") + `\n`))
		out := string(client.stdout.Contents())
		Expect(strings.Count(out, "alice: before")).To(Equal(1), "nothing shown twice")
		Expect(strings.Count(out, bob.Says("while you were away"))).To(Equal(1))
	})

	It("refuses messages while NATS is unreachable, says so, and takes them again once it is back", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice, bob := named(nw, a, "alice"), named(nw, b, "bob")
		ns.Stop()
		alice.ExpectLines("*** the cluster is unreachable: messages can't be sent until it is back")
		bob.ExpectLines("*** the cluster is unreachable: messages can't be sent until it is back")
		alice.Send("anyone?\n")
		l, err := alice.NextLine()
		Expect(err).NotTo(HaveOccurred())
		Expect(l).To(HavePrefix("*** error: your message could not be stored, so it was not sent: "))

		ns.Start()
		alice.ExpectLines("*** the cluster is back: messages can be sent again")
		bob.ExpectLines("*** the cluster is back: messages can be sent again")
		// alice tries until a line is taken. A refusal that says the line
		// was not confirmed as stored may have let it through nonetheless.
		unconfirmed := 0
		refused := func(l string) {
			GinkgoHelper()
			Expect(l).To(HavePrefix("*** error: your message "))
			if strings.HasPrefix(l, "*** error: your message was not confirmed as stored") {
				unconfirmed++
			}
		}
		Eventually(func() string {
			alice.Send("back\n")
			l, err := alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			if l != alice.Says("back") {
				refused(l)
			}
			return l
		}).Should(Equal(alice.Says("back")))
		// bob gets the line first: nothing alice was refused while NATS was
		// away comes before it, or after it, up to alice's next line, but
		// another try at it that alice was not told was refused for sure.
		bob.ExpectLines(alice.Says("back"))
		alice.Send("done\n")
		for {
			l, err := alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			if l == alice.Says("done") {
				break
			}
			if l != alice.Says("back") { // the answer to a try still on its way
				refused(l)
			}
		}
		again := 0
		for {
			l, err := bob.NextLine()
			Expect(err).NotTo(HaveOccurred())
			if l == alice.Says("done") {
				break
			}
			Expect(l).To(Equal(alice.Says("back")), "only the line, or another try at it, before the next")
			again++
		}
		Expect(again).To(BeNumerically("<=", unconfirmed), "bob got a try at the line that alice was told was not sent")
	})

	It("gives out no guest name the cluster has not confirmed: while NATS is unreachable a new connection is refused, saying why, and a registration too; once it is back, connections get names again", SpecTimeout(specTimeout), func(ctx SpecContext) {
		guest := connectAll(a, nw, 1)[0]
		ns.Stop()
		guest.ExpectLines("*** the cluster is unreachable: messages can't be sent until it is back")
		Expect(refusedOn(nw, a.Addr)).To(Equal("*** error: the cluster is unreachable; try again later"))
		guest.Send("/register alice correct-horse\n")
		guest.ExpectLines("*** error: can't check that nickname right now: the cluster is unreachable")

		ns.Start()
		guest.ExpectLines("*** the cluster is back: messages can be sent again")
		again := connectAll(a, nw, 1)[0]
		Expect(again.Nick).To(HavePrefix(protocol.GuestPrefix))
		Expect(again.Nick).NotTo(Equal(guest.Nick))
	})

	It("stops within its shutdown timeout while NATS stalls, though a line waits for its acknowledgement and a /nick for its claim; then closes its node and its NATS connection", SpecTimeout(specTimeout), func(ctx SpecContext) {
		const shutdown = 300 * time.Millisecond
		// Storing and claiming would wait far longer than the shutdown.
		c, cnc, node := startNodeWith(nw, ns, chat.Options{ShutdownTimeout: shutdown, HistoryOnJoin: -1},
			cluster.Config{Timeout: 4 * readTimeout, PresenceTTL: presenceTTL})
		alice, bob := named(nw, c, "alice"), named(nw, c, "bob")
		// Their arrivals and renames, stored and acknowledged: the commit
		// loop waits for nothing.
		Eventually(ns.StreamMessages).WithArguments("NATTER_NATTER").Should(BeEquivalentTo(4))
		Eventually(scrape).WithArguments(c).Should(ContainSubstring("natter_store_commit_messages_sum 4"))
		ns.Stall()
		DeferCleanup(ns.Resume) // before the nodes' cleanups
		bob.Send("/nick robert\n")
		alice.Send("anyone?\n")
		// NATS has stored alice's line; the node waits for the answer.
		Eventually(ns.StreamMessages).WithArguments("NATTER_NATTER").Should(BeEquivalentTo(5))
		stopped := make(chan error, 1)
		go func() { stopped <- c.Stop() }()
		Eventually(stopped).WithTimeout(shutdown+time.Second).Should(Receive(Succeed()), "Serve returned within the shutdown timeout")
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			node.Close()
			cnc.Close()
		}()
		Eventually(closed).WithTimeout(time.Second).Should(BeClosed(), "the node and its NATS connection closed")
	})

	It("refuses what is published straight to the stream unless a client could have sent it, keeps it out of the history, and counts it", SpecTimeout(specTimeout), func(ctx SpecContext) {
		bob := named(nw, b, "bob")
		nc, err := nats.Connect("", nats.InProcessServer(ns))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(nc.Close)
		js, err := jetstream.New(nc)
		Expect(err).NotTo(HaveOccurred())
		const subject = "natter.natter.room." // the default deployment's
		publish := func(room, data string) {
			GinkgoHelper()
			_, err := js.Publish(ctx, subject+room, []byte(data))
			Expect(err).NotTo(HaveOccurred())
		}
		msg := func(room, kind, from, text string) string {
			b, err := json.Marshal(map[string]any{"room": room, "time": time.Now(), "kind": kind, "from": from, "text": text})
			Expect(err).NotTo(HaveOccurred())
			return string(b)
		}
		publish("lobby", msg("lobby", "message", "mallory", "\x1b[2Jcleared"))                                // control
		publish("lobby", msg("lobby", "action", "mallory", "\u009b31mred"))                                   // control (C1)
		publish("lobby", msg("lobby", "message", "server", "restarting: log in again"))                       // from
		publish("lobby", msg("lobby", "message", "bob: x", "y"))                                              // from
		publish("lobby", msg("lobby", "notice", "mallory", "a notice"))                                       // subject: not a room's kind
		publish("~events", msg("lobby", "notice", "mallory", "a notice"))                                     // kind
		publish("~events", msg("lobby", "join", "mallory", "\x1b[2J"))                                        // control
		publish("~events", msg("lobby", "nick", "bob", "server: x"))                                          // from
		publish("~events", `{"room":"lobby","kind":"quit","from":"mallory","rooms":["games","lobby"]}`)       // rooms
		publish("~events", msg("lobby", "part", "mallory", "leaving"))                                        // a part of no one
		publish("lobby", `{"room":"lobby","kind":"message","from":"mallory","text":"`+"\xff\xfe"+`"}`)        // utf8
		publish("lobby", msg("lobby", "message", "mallory", strings.Repeat("x", chat.DefaultMaxLineBytes+1))) // length
		publish("games", msg("lobby", "message", "mallory", "through another room's subject"))                // subject
		publish("a.b", msg("a.b", "message", "mallory", "in no room"))                                        // room
		publish("lobby", "not JSON")                                                                          // malformed
		publish("lobby", msg("lobby", "message", "mallory", "a valid line"))
		// A well-formed event is delivered as any node's would be.
		bob.skipTo("*** mallory left #lobby (leaving)") // past the other nodes' arrivals
		bob.ExpectExactly("mallory: a valid line")
		bob.Send("still here\n")
		bob.ExpectLines(bob.Says("still here"))

		// None of it is in the history, on a node that saw it arrive or on
		// one that joins later and reads the stream from its start.
		c, _ := startNode(nw, ns, chat.Options{HistoryOnJoin: -1})
		for _, cl := range []*testClient{bob, named(nw, c, "carol")} {
			cl.Send("/history 20\n")
			for _, want := range []string{`^\[history \d+\] mallory: a valid line$`, `^\[history \d+\] bob: still here$`, `^\*\*\* start of #lobby history reached`} {
				l, err := cl.NextLine()
				Expect(err).NotTo(HaveOccurred())
				Expect(l).To(MatchRegexp(want))
			}
		}

		metrics := func(srv *runningServer) string {
			rec := httptest.NewRecorder()
			srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			return rec.Body.String()
		}
		for _, srv := range []*runningServer{a, b, c} {
			Expect(metrics(srv)).To(And(
				ContainSubstring(`natter_stream_messages_refused_total{reason="control"} 3`),
				ContainSubstring(`natter_stream_messages_refused_total{reason="from"} 3`),
				ContainSubstring(`natter_stream_messages_refused_total{reason="rooms"} 1`),
				ContainSubstring(`natter_stream_messages_refused_total{reason="kind"} 1`),
				ContainSubstring(`natter_stream_messages_refused_total{reason="utf8"} 1`),
				ContainSubstring(`natter_stream_messages_refused_total{reason="length"} 1`),
				ContainSubstring(`natter_stream_messages_refused_total{reason="subject"} 2`),
				ContainSubstring(`natter_stream_messages_refused_total{reason="room"} 1`),
				ContainSubstring(`natter_stream_messages_refused_total{reason="malformed"} 1`),
			))
		}
		Expect(b.Log).To(gbytes.Say(`Refused a message from the cluster's stream`))
	})

	It("restarts a node's delivery that failed, saying it is not ready only until then, and delivers again from where it stopped", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice, bob := named(nw, a, "alice"), named(nw, b, "bob")
		ready := func(srv *runningServer) func() string {
			return func() string {
				rec := httptest.NewRecorder()
				srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
				return fmt.Sprint(rec.Code, " ", rec.Body.String())
			}
		}
		Expect(ready(a)()).To(Equal("200 ready\n"))
		bob.Send("before\n")
		alice.ExpectLines(bob.Says("before"))
		bob.ExpectLines(bob.Says("before"))

		// NATS comes back without JetStream: the nodes reach NATS, but
		// their consumers of the stream can't be made again.
		ns.Stop()
		ns.StartWithoutJetStream()
		Eventually(ready(a)).Should(Equal("503 cluster delivery stopped\n"))
		Eventually(ready(b)).Should(Equal("503 cluster delivery stopped\n"))

		ns.Stop()
		ns.Start()
		Eventually(ready(a)).WithTimeout(10 * time.Second).Should(Equal("200 ready\n"))
		Eventually(ready(b)).WithTimeout(10 * time.Second).Should(Equal("200 ready\n"))
		// Logged once the node is ready again, maybe just after.
		Eventually(a.Log).Should(gbytes.Say(`Cluster delivery stopped; restarting`))
		Eventually(a.Log).Should(gbytes.Say(`Cluster delivery restarted`))

		// bob tries until a line is taken; alice, on the other node, gets
		// it, and the notices of the outage are all she gets before it.
		// (A try bob was told was not confirmed may arrive too.)
		bob.Send("after\n")
		for {
			l, err := bob.NextLine()
			Expect(err).NotTo(HaveOccurred())
			if l == bob.Says("after") {
				break
			}
			if !strings.HasPrefix(l, "*** the cluster is ") {
				Expect(l).To(HavePrefix("*** error: your message "))
				bob.Send("after\n")
			}
		}
		for {
			l, err := alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			if l == bob.Says("after") {
				break
			}
			Expect(l).To(HavePrefix("*** the cluster is "), "only notices of the outage before the line")
		}
		alice.Send("and back\n")
		for {
			l, err := bob.NextLine()
			Expect(err).NotTo(HaveOccurred())
			if l == alice.Says("and back") {
				break
			}
			Expect(l).To(Equal(bob.Says("after")), "only another try at the line before alice's")
		}
	})

	It("shares files across nodes: a file uploaded through one node is posted to the room's members on every node, and every node serves it", SpecTimeout(specTimeout), func(ctx SpecContext) {
		fa, fb := startFileNode(nw, ns), startFileNode(nw, ns)
		alice, bob := named(nw, fa.runningServer, "alice"), named(nw, fb.runningServer, "bob")
		content := []byte("across the cluster")
		status, _ := fa.put(alice.offer(fmt.Sprintf("notes.txt %d", len(content))), content)
		Expect(status).To(Equal(http.StatusCreated))
		link := bob.linkIn(sharedLine("", "alice", "notes.txt"))
		Expect(link).To(HavePrefix(fb.BaseURL+"/f/"), "each node links to its own file listener")
		Expect(body(fb.get(link, ""))).To(Equal(string(content)))
		Expect(body(fb.get(link, "bytes=7-"))).To(Equal("the cluster"))
		aliceLink := alice.linkIn(sharedLine("", "alice", "notes.txt"))
		Expect(body(fa.get(aliceLink, ""))).To(Equal(string(content)))
	})

	It("lets a client resume on another node without a gap or a duplicate", SpecTimeout(specTimeout), func(ctx SpecContext) {
		alice := named(nw, a, "alice")
		carol := named(nw, a, "carol")
		dave := named(nw, b, "dave")
		carol.SwitchToJSON()
		alice.Send("one\n")
		seen := carol.ExpectEvent(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", From: "alice", Text: "one"})
		Expect(carol.conn.Close()).To(Succeed())
		Eventually(a.Clients).Should(Equal(1), "carol has left node a, and her nickname is free")

		alice.Send("two\nthree\n")
		dave.ExpectLines(alice.Says("one"), alice.Says("two"), alice.Says("three"))

		// carol comes back through the other node.
		again := named(nw, b, "carol")
		again.Send(fmt.Sprintf("/resume lobby %d\n", seen.Seq))
		// Numbered by the stream, which carries the room's events too
		// (carol's departure, for one): the numbers go up, with gaps.
		var nums []uint64
		for _, text := range []string{"two", "three"} {
			l, err := again.ReadLine()
			Expect(err).NotTo(HaveOccurred())
			var n uint64
			_, err = fmt.Sscanf(l, "[history %d] alice: "+text, &n)
			Expect(err).NotTo(HaveOccurred(), "in %q", l)
			nums = append(nums, n)
		}
		Expect(nums[0]).To(BeNumerically(">", seen.Seq))
		Expect(nums[1]).To(BeNumerically(">", nums[0]))
		again.ExpectExactly(fmt.Sprintf("*** resumed #lobby after %d: 2 messages, complete", seen.Seq))
	})
}, transports)
