package specs_test

import (
	"sync"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/accounts"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// The specs of this chapter hold the server at the point where state
// crosses a lock release (a message between its acceptance and its
// commit, a registration between its check and its hash), through a
// store that stops there until the spec lets it go, and check that what
// happens meanwhile can't break the rule.
var _ = DescribeTableSubtree("The order of a client's lines", func(tr Transport) {
	var (
		nw    Network
		srv   *runningServer
		store *gatedHistory
	)

	// chatters starts a server whose history can be held, and connects
	// clients renamed to names; each has seen every rename on return.
	chatters := func(names ...string) []*testClient {
		GinkgoHelper()
		nw = tr.New(false)
		store = newGatedHistory()
		srv = startServer(nw, chat.Options{History: store})
		cs := connectAll(srv, nw, len(names))
		for i, c := range cs {
			c.Send("/nick " + names[i] + "\nready\n")
			c.Nick = names[i]
			for _, reader := range cs {
				reader.ExpectLines(c.Says("ready"))
			}
		}
		return cs
	}

	// holdNextCommit makes the next commit wait in the store until the
	// returned function is called (a cleanup calls it too).
	holdNextCommit := func() (entered <-chan struct{}, release func()) {
		entered, release = store.holdNext()
		DeferCleanup(release)
		return entered, release
	}

	Context("when a client sends a chat line and then a command in one write", func() {
		It("announces a rename after the line sent before it, to everyone, the sender included", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters("alice", "bob")
			alice, bob := cs[0], cs[1]
			entered, release := holdNextCommit()
			alice.Send("hello\n/nick alicia\n")
			Eventually(entered).Should(BeClosed()) // "hello" is being stored
			release()
			for _, c := range cs {
				c.ExpectExactly("alice: hello", "*** alice is now alicia")
			}
			bob.Send("/who\n")
			bob.ExpectLines("*** in #lobby (2): alicia, bob")
		})

		It("delivers a client's last words, to itself too, before announcing that it quit", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters("alice", "bob")
			alice, bob := cs[0], cs[1]
			entered, release := holdNextCommit()
			alice.Send("my last words\n/quit bye\n")
			Eventually(entered).Should(BeClosed())
			release()
			bob.ExpectExactly("alice: my last words", "*** alice quit (bye)")
			alice.ExpectExactly("alice: my last words", "*** bye")
			Expect(alice.ExpectDisconnected()).To(BeEmpty())
		})

		It("echoes a line to its sender before the sender leaves the room it was sent to", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters("alice", "bob")
			alice, bob := cs[0], cs[1]
			for _, c := range cs {
				c.Send("/join x\n")
				c.ExpectLines("*** you are now talking in #x")
			}
			alice.ExpectExactly("*** bob joined #x")
			entered, release := holdNextCommit()
			alice.Send("echo me\n/part x\n")
			Eventually(entered).Should(BeClosed())
			release()
			alice.ExpectExactly("alice: echo me", "*** alice left #x", "*** you are now talking in #lobby")
			bob.ExpectExactly("alice: echo me", "*** alice left #x")
		})

		It("answers a command only after the lines sent before it have reached their room", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters("alice", "bob")
			alice := cs[0]
			entered, release := holdNextCommit()
			alice.Send("first\n/who\nsecond\n")
			Eventually(entered).Should(BeClosed())
			release()
			alice.ExpectExactly("alice: first", "*** in #lobby (2): alice, bob", "alice: second")
		})
	})

	Context("when a client sends a line and then one the server refuses", func() {
		It("refuses the second after echoing the first", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters("alice", "bob")
			alice := cs[0]
			alice.SwitchToJSON()
			entered, release := holdNextCommit()
			alice.Send(`{"type":"say","text":"first"}` + "\n" + `{"type":"say","room":"nowhere","text":"second"}` + "\n")
			Eventually(entered).Should(BeClosed())
			release()
			Expect(alice.Event(presenceEvents...)).To(HaveField("Text", "first"))
			alice.ExpectEvent(protocol.Event{Type: protocol.TypeError, Code: protocol.CodeNotInRoom, Text: "you are not in #nowhere"})
		})
	})

	Context("when a room's only member leaves it just after speaking, while someone joins it", func() {
		It("gives the joiner that last message, live or from history", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters("alice", "bob")
			alice, bob := cs[0], cs[1]
			alice.Send("/join x\n")
			alice.ExpectLines("*** you are now talking in #x")
			entered, release := holdNextCommit()
			alice.Send("m\n/part x\n")
			Eventually(entered).Should(BeClosed())
			bob.Send("/join x\n")
			bob.ExpectLines("*** you are now talking in #x")
			release()
			l, err := bob.NextLine()
			Expect(err).NotTo(HaveOccurred())
			Expect(l).To(Or(Equal("alice: m"), Equal("[history 1] alice: m")))
			bob.Send("/who\n")
			bob.ExpectLines("*** in #x (1): bob")
		})
	})

	Context("when a client's command waits on a slow history read", func() {
		It("keeps everyone else chatting meanwhile: a join reads the room's history without holding the server up", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters("alice", "bob")
			alice, bob := cs[0], cs[1]
			entered, release := store.reads.holdNext()
			DeferCleanup(release)
			alice.Send("/join x\n")
			Eventually(entered).Should(BeClosed())
			bob.Send("/who\nstill here\n")
			bob.ExpectLines("*** in #lobby (2): alice, bob", "bob: still here")
			release()
			alice.ExpectLines("bob: still here", "*** you are now talking in #x")
		})

		It("keeps everyone else chatting meanwhile: a page of /history is read without holding the server up", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters("alice", "bob")
			alice, bob := cs[0], cs[1]
			entered, release := store.reads.holdNext()
			DeferCleanup(release)
			alice.Send("/history 1\n")
			Eventually(entered).Should(BeClosed())
			bob.Send("still here\n")
			bob.ExpectLines("bob: still here")
			release()
			alice.ExpectLines("bob: still here", "[history 2] bob: ready")
		})
	})

	Context("when a client registers a nickname while another asks for it", func() {
		It("gives the nickname to one of them only, and refuses the other", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			accts := newGatedAccounts()
			srv = startServer(nw, chat.Options{Accounts: accts})
			cs := connectAll(srv, nw, 2)
			a, b := cs[0], cs[1]
			entered, release := accts.holdNext()
			DeferCleanup(release)
			a.Send("/register carol " + "correct horse battery" + "\n")
			Eventually(entered).Should(BeClosed()) // the password is being hashed
			b.Send("/nick carol\n")
			b.ExpectLines("*** error: the nickname carol is taken")
			release()
			a.ExpectLines(
				"*** warning: your password crossed the network unencrypted; connect with TLS next time",
				"*** registered carol; you are logged in")
			b.Send("/who\n")
			b.ExpectLines("*** in #lobby (2): carol, " + b.Nick)
		})
	})
}, transports)

// gatedHistory is an in-memory history whose next Append can be held in
// the middle, as a slow disk would hold it, until the spec releases it.
type gatedHistory struct {
	history.Store
	holdPoint           // Append
	reads     holdPoint // Bounds and Before
}

func newGatedHistory() *gatedHistory {
	return &gatedHistory{Store: history.NewMemory(history.Retention{MaxMessages: chat.DefaultMemoryHistory})}
}

func (g *gatedHistory) Append(msgs []history.Message) error {
	g.pass()
	return g.Store.Append(msgs)
}

func (g *gatedHistory) Bounds(room string) (oldest, newest uint64, err error) {
	g.reads.pass()
	return g.Store.Bounds(room)
}

func (g *gatedHistory) Before(room string, before uint64, n int) ([]history.Message, error) {
	g.reads.pass()
	return g.Store.Before(room, before, n)
}

// gatedAccounts is an in-memory account store whose next Register can be
// held while it hashes, until the spec releases it.
type gatedAccounts struct {
	accounts.Store
	holdPoint
	registers atomic.Int32 // Register calls begun: passwords hashed
}

func newGatedAccounts() *gatedAccounts { return &gatedAccounts{Store: accounts.NewMemory()} }

func (g *gatedAccounts) Register(name, password string) error {
	g.registers.Add(1)
	g.pass()
	return g.Store.Register(name, password)
}

// holdPoint is a place in a store's method where the next call can be
// held.
type holdPoint struct {
	mu   sync.Mutex
	next *hold
}

// holdNext holds the next call to pass: entered is closed once it has
// begun, and release lets it go on (it may be called more than once).
func (p *holdPoint) holdNext() (entered <-chan struct{}, release func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = &hold{entered: make(chan struct{}), open: make(chan struct{})}
	return p.next.entered, p.next.release
}

// pass waits, if this call is the one held, until it is released.
func (p *holdPoint) pass() {
	p.mu.Lock()
	h := p.next
	p.next = nil
	p.mu.Unlock()
	if h != nil {
		close(h.entered)
		<-h.open
	}
}

// hold is one held call.
type hold struct {
	entered chan struct{}
	open    chan struct{}
	once    sync.Once
}

func (h *hold) release() { h.once.Do(func() { close(h.open) }) }
