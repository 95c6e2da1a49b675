package specs_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/accounts"
	"github.com/natter-chat/natter/chat/cli/servercmd"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

var _ = DescribeTableSubtree("Protection against abuse", func(tr Transport) {
	var (
		nw  Network
		srv *runningServer
	)
	lines := func(from, to int) string {
		var b strings.Builder
		for i := from; i <= to; i++ {
			fmt.Fprintf(&b, "line %d\n", i)
		}
		return b.String()
	}

	Context("with flood control", func() {
		It("passes a burst of lines within the limit at once", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{MessageRate: 0.1, MessageBurst: 5, FloodDelay: time.Millisecond})
			alice := connectAll(srv, nw, 1)[0]
			alice.Send(lines(1, 5))
			for i := 1; i <= 5; i++ {
				alice.ExpectLines(alice.Says(fmt.Sprintf("line %d", i)))
			}
		})

		It("holds back lines a little over the rate, then delivers them all", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{MessageRate: 50, MessageBurst: 1, FloodDelay: 5 * time.Second})
			alice := connectAll(srv, nw, 1)[0]
			start := time.Now()
			alice.Send(lines(1, 10))
			for i := 1; i <= 10; i++ {
				alice.ExpectLines(alice.Says(fmt.Sprintf("line %d", i)))
			}
			// The first line passes at once and each of the other nine waits
			// its turn at 50 a second: 180ms, less a margin for rounding.
			Expect(time.Since(start)).To(BeNumerically(">=", 170*time.Millisecond), "the lines were not held back")
		})

		It("refuses lines far over the rate, saying when to send again, while the others chat on", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{MessageRate: 0.1, MessageBurst: 2, FloodDelay: time.Millisecond, FloodRefusals: 100})
			cs := connectAll(srv, nw, 2)
			flooder, other := cs[0], cs[1]
			flooder.Send(lines(1, 5))
			// A refusal, like any answer, comes after the lines before it.
			var got []string
			for range 5 {
				l, err := flooder.NextLine()
				Expect(err).NotTo(HaveOccurred())
				got = append(got, l)
			}
			refusal := MatchRegexp(`^\*\*\* error: you are sending too fast; line refused, send again in \d+(\.\d)?s$`)
			Expect(got).To(HaveExactElements(flooder.Says("line 1"), flooder.Says("line 2"), refusal, refusal, refusal))
			other.Send("unaffected\n")
			other.ExpectLines(flooder.Says("line 1"), flooder.Says("line 2"), other.Says("unaffected"))
		})

		It("disconnects a client that keeps flooding, saying why, and the others go on", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{MessageRate: 0.1, MessageBurst: 1, FloodDelay: time.Millisecond, FloodRefusals: 3})
			cs := connectAll(srv, nw, 2)
			flooder, other := cs[0], cs[1]
			flooder.Send(lines(1, 20))
			refusal := HavePrefix("*** error: you are sending too fast; line refused, send again in ")
			Expect(flooder.ExpectDisconnected()).To(ConsistOf(
				flooder.Says("line 1"), refusal, refusal, "*** error: disconnected for sending too fast"))
			other.ExpectExactly(flooder.Says("line 1"), "*** "+flooder.Nick+" quit (flooding)")
			Expect(srv.Log).To(gbytes.Say(`WARN Disconnecting flooding client ` + flooder.Name()))
			other.Send("still here\n")
			other.ExpectLines(other.Says("still here"))
		})
	})

	Context("with a line timeout", func() {
		BeforeEach(func() {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{LineTimeout: 300 * time.Millisecond})
		})

		It("disconnects a client whose line never ends, and leaves idle clients alone", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := connectAll(srv, nw, 2)
			slowloris, idle := cs[0], cs[1]
			slowloris.Send("this line never ends")
			Expect(slowloris.ExpectDisconnected()).To(Equal([]string{"*** error: line not finished within 300ms; disconnecting"}))
			Expect(srv.Log).To(gbytes.Say(`WARN Disconnecting client ` + slowloris.Name() + `: line not finished within 300ms`))
			idle.ExpectExactly("*** " + slowloris.Nick + " quit (line timeout)")
			Consistently(srv.Clients, 500*time.Millisecond).Should(Equal(1), "idle for longer than the line timeout, and still connected")
			idle.Send("I was only idle\n")
			idle.ExpectLines(idle.Says("I was only idle"))
		})

		It("accepts a line that arrives in pieces within the timeout", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice := connectAll(srv, nw, 1)[0]
			alice.Send("in ")
			alice.Send("three ")
			alice.Send("pieces\n")
			alice.ExpectLines(alice.Says("in three pieces"))
		})
	})
	Context("with connection limits", func() {
		refused := func() string { return refusedOn(nw, srv.Addr) }

		It("refuses a connection past the total limit in one line, and serves the others", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{MaxClients: 2})
			cs := connectAll(srv, nw, 2)
			Expect(refused()).To(Equal("*** error: the server is full (2 clients); try again later"))
			Expect(srv.Log).To(gbytes.Say(`WARN Refused connection from 127\.0\.0\.1:\d+: the server is full`))
			cs[0].Send("still chatting\n")
			cs[1].ExpectLines(cs[0].Says("still chatting"))

			Expect(cs[1].conn.Close()).To(Succeed())
			Eventually(srv.Clients).Should(Equal(1))
			connectAll(srv, nw, 1) // room again
		})

		It("refuses more connections from one address than allowed", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{MaxClientsPerIP: 1})
			alice := connectAll(srv, nw, 1)[0]
			Expect(refused()).To(Equal("*** error: too many connections from 127.0.0.1 (1); close one first"))
			alice.Send("unaffected\n")
			alice.ExpectLines(alice.Says("unaffected"))
		})

		It("refuses new connections from an address that opens them too fast", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{ConnectRate: 0.01, ConnectBurst: 2})
			cs := connectAll(srv, nw, 2)
			Expect(refused()).To(MatchRegexp(`^\*\*\* error: too many new connections from 127\.0\.0\.1; try again in (\d+m)?\d+s$`))
			cs[0].Send("unaffected\n")
			cs[1].ExpectLines(cs[0].Says("unaffected"))
		})
	})
	Context("when connections arrive over TLS, whose handshake costs the server work", func() {
		var tlsAddr string
		serveTLS := func(opts chat.Options) {
			GinkgoHelper()
			nw = tr.New(false)
			ln, err := nw.Listen("tcp", "127.0.0.1:0")
			Expect(err).NotTo(HaveOccurred())
			tlsAddr = ln.Addr().String()
			opts.TLSListener = tls.NewListener(ln, newDevCert().ServerConfig())
			opts.HandshakeTimeout = time.Minute // far longer than any spec waits
			srv = startServer(nw, opts)
		}
		// idle opens a TCP connection to the TLS port and never says a word.
		idle := func() *testClient {
			GinkgoHelper()
			conn, err := nw.DialContext(context.Background(), "tcp", tlsAddr)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _ = conn.Close() })
			return &testClient{conn: conn, lines: newLineReader(conn)}
		}
		// heldOpen asserts the server keeps c open (waiting for its
		// handshake), and dropped that the server closes it at once.
		heldOpen := func(c *testClient) {
			GinkgoHelper()
			Expect(c.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))).To(Succeed())
			_, err := c.lines.Next()
			Expect(err).To(MatchError(os.ErrDeadlineExceeded), "the server should still be waiting for this handshake")
		}
		dropped := func(c *testClient) {
			GinkgoHelper()
			_, err := c.ReadLine()
			Expect(err).To(BeADisconnection())
		}

		It("counts a connection against the per-address limit when it is accepted, before its handshake", SpecTimeout(specTimeout), func(ctx SpecContext) {
			serveTLS(chat.Options{MaxClientsPerIP: 2})
			first, second := idle(), idle()
			third := idle()
			dropped(third)
			Expect(srv.Log).To(gbytes.Say(`WARN Refused connection from 127\.0\.0\.1:\d+: too many connections from 127\.0\.0\.1 \(2\)`))
			heldOpen(first)
			Expect(refusedOn(nw, srv.Addr)).To(Equal("*** error: too many connections from 127.0.0.1 (2); close one first"))

			Expect(first.conn.Close()).To(Succeed())
			Expect(second.conn.Close()).To(Succeed())
			Eventually(srv.Log).Should(gbytes.Say(`(?s)TLS handshake failed.*TLS handshake failed`))
			connectAll(srv, nw, 1) // the address's places are free again
		})

		It("caps the handshakes in progress from one address, and plain clients from it still connect", SpecTimeout(specTimeout), func(ctx SpecContext) {
			serveTLS(chat.Options{MaxHandshakesPerIP: 2})
			first, _ := idle(), idle()
			dropped(idle())
			Expect(srv.Log).To(gbytes.Say(`WARN Refused connection from 127\.0\.0\.1:\d+: too many TLS handshakes in progress from 127\.0\.0\.1 \(2\)`))
			heldOpen(first)
			alice := connectAll(srv, nw, 1)[0]
			alice.Send("unaffected\n")
			alice.ExpectLines(alice.Says("unaffected"))
		})

		It("caps the handshakes in progress overall", SpecTimeout(specTimeout), func(ctx SpecContext) {
			serveTLS(chat.Options{MaxHandshakes: 1})
			first := idle()
			dropped(idle())
			Expect(srv.Log).To(gbytes.Say(`WARN Refused connection from 127\.0\.0\.1:\d+: too many TLS handshakes in progress \(1\)`))
			heldOpen(first)
		})

		It("applies the new-connection rate when a connection is accepted, before its handshake", SpecTimeout(specTimeout), func(ctx SpecContext) {
			serveTLS(chat.Options{ConnectRate: 0.01, ConnectBurst: 2})
			first, _ := idle(), idle()
			dropped(idle())
			Expect(srv.Log).To(gbytes.Say(`WARN Refused connection from 127\.0\.0\.1:\d+: too many new connections from 127\.0\.0\.1`))
			heldOpen(first)
		})
	})

	Context("when connections come from many addresses of one IPv6 network", func() {
		It("counts the addresses of one /64 as one address, and another /64 apart", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = &fromAddrs{Network: tr.New(false), addrs: []string{
				"[2001:db8::1]:4000", "[2001:db8::2]:4000", "[2001:db8::3]:4000", "[2001:db8:0:1::1]:4000"}}
			srv = startServer(nw, chat.Options{MaxClientsPerIP: 2})
			connectAll(srv, nw, 2)
			Expect(refusedOn(nw, srv.Addr)).To(Equal("*** error: too many connections from 2001:db8::/64 (2); close one first"))
			connectAll(srv, nw, 1) // 2001:db8:0:1::1
		})
	})

	Context("when someone floods /register, each of which costs a password hash", func() {
		const password = "correct horse battery"
		var accts *gatedAccounts
		serve := func(opts chat.Options) {
			GinkgoHelper()
			nw = tr.New(false)
			accts = newGatedAccounts()
			opts.Accounts = accts
			srv = startServer(nw, opts)
		}

		It("refuses to register a registered name before hashing anything", SpecTimeout(specTimeout), func(ctx SpecContext) {
			serve(chat.Options{})
			cs := connectAll(srv, nw, 2)
			cs[0].Send("/register dave " + password + "\n")
			cs[0].ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered dave; you are logged in")
			Expect(cs[0].conn.Close()).To(Succeed())
			Eventually(srv.Clients).Should(Equal(1))
			cs[1].Send("/register dave whatever123\n")
			cs[1].ExpectLines("*** error: can't register dave: that name is already registered")
			Expect(accts.registers.Load()).To(BeEquivalentTo(1), "a password was hashed for a name already registered")
		})

		It("throttles registrations from one address", SpecTimeout(specTimeout), func(ctx SpecContext) {
			serve(chat.Options{LoginRate: 0.001, LoginBurst: 1})
			cs := connectAll(srv, nw, 3)
			for i, c := range cs[:2] {
				c.Send(fmt.Sprintf("/register dave%d %s\n", i, password))
				c.ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", fmt.Sprintf("*** registered dave%d; you are logged in", i))
			}
			cs[2].Send("/register dave2 " + password + "\n")
			l, err := cs[2].NextLine()
			Expect(err).NotTo(HaveOccurred())
			Expect(l).To(MatchRegexp(`^\*\*\* error: too many password attempts from 127\.0\.0\.1; try again in (\d+m)?\d+s$`))
			Expect(accts.registers.Load()).To(BeEquivalentTo(2))
		})

		It("hashes no more passwords at once than -password-hashers, and the chat goes on meanwhile", SpecTimeout(specTimeout), func(ctx SpecContext) {
			serve(chat.Options{PasswordHashers: 1})
			cs := connectAll(srv, nw, 3)
			entered, release := accts.holdNext()
			DeferCleanup(release)
			cs[0].Send("/register dave0 " + password + "\n")
			Eventually(entered).Should(BeClosed())
			cs[1].Send("/register dave1 " + password + "\n")
			cs[2].Send("unaffected\n")
			cs[2].ExpectLines(cs[2].Says("unaffected"))
			Consistently(accts.registers.Load, "100ms", "10ms").Should(BeEquivalentTo(1), "a second password was hashed while the only hasher was busy")
			release()
			cs[1].ExpectLines(cs[2].Says("unaffected"), "*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered dave1; you are logged in")
			Expect(accts.registers.Load()).To(BeEquivalentTo(2))
		})
	})

	Context("when someone guesses at another's password from elsewhere", func() {
		It("throttles the guesser's address, and the owner still logs in from its own", SpecTimeout(specTimeout), func(ctx SpecContext) {
			const password = "correct horse battery"
			nw = &fromAddrs{Network: tr.New(false), addrs: []string{"10.0.0.1:4000", "10.0.0.2:4000", "10.0.0.3:4000"}}
			srv = startServer(nw, chat.Options{LoginRate: 0.001, LoginBurst: 2})
			owner := connectAll(srv, nw, 1)[0]
			owner.Send("/register erin " + password + "\n")
			owner.ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered erin; you are logged in")
			Expect(owner.conn.Close()).To(Succeed())
			Eventually(srv.Clients).Should(BeZero())

			guesser := connectAll(srv, nw, 1)[0]
			for _, guess := range []string{"password1", "letmein123"} {
				guesser.Send("/login erin " + guess + "\n")
				guesser.ExpectLines("*** error: wrong name or password")
			}
			guesser.Send("/login erin letmein1234\n")
			l, err := guesser.NextLine()
			Expect(err).NotTo(HaveOccurred())
			Expect(l).To(MatchRegexp(`^\*\*\* error: too many login attempts; try again in (\d+m)?\d+s$`))

			again := connectAll(srv, nw, 1)[0]
			again.Send("/login erin " + password + "\n")
			again.ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** logged in as erin")
		})
	})

	Context("when someone asks for listings of a big server", func() {
		It("lists rooms and members a page at a time, saying where to go on", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{MaxListPage: 2})
			cs := connectAll(srv, nw, 3)
			for i, c := range cs {
				c.Send(fmt.Sprintf("/nick n%d\n/join r%d\n", i, i))
				c.ExpectLines(fmt.Sprintf("*** you are now talking in #r%d", i))
			}
			c := cs[0]
			c.Send("/who lobby\n")
			c.ExpectLines("*** in #lobby (3): n0, n1; more: /who lobby n1")
			c.Send("/who lobby n1\n")
			c.ExpectLines("*** in #lobby (3): n2")
			c.Send("/rooms\n")
			c.ExpectLines("*** rooms: #lobby (3), #r0 (1); more: /rooms r0")
			c.Send("/rooms r0\n")
			c.ExpectLines("*** rooms: #r1 (1), #r2 (1)")
		})

		It("counts a listing against the asker's flood limit like any line, refusing the asker past it while the others chat on", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{MessageRate: 0.1, MessageBurst: 2, FloodDelay: time.Millisecond, FloodRefusals: 100})
			cs := connectAll(srv, nw, 2)
			asker, other := cs[0], cs[1]
			asker.Send("/rooms\n/who\n/rooms\n/who\n")
			var got []string
			for range 4 {
				l, err := asker.NextLine()
				Expect(err).NotTo(HaveOccurred())
				got = append(got, l)
			}
			refusal := MatchRegexp(`^\*\*\* error: you are sending too fast; line refused, send again in \d+(\.\d)?s$`)
			Expect(got).To(HaveExactElements(HavePrefix("*** rooms: "), HavePrefix("*** in #lobby"), refusal, refusal))
			other.Send("unaffected\n")
			other.ExpectLines(other.Says("unaffected"))
		})
	})

	Context("with pings for JSON clients", func() {
		BeforeEach(func() {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{PingInterval: 200 * time.Millisecond})
		})

		It("disconnects a JSON client that does not answer its ping, and leaves silent text clients alone", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := connectAll(srv, nw, 2)
			mute, person := cs[0], cs[1]
			mute.SwitchToJSON()
			Expect(mute.Event(presenceEvents...).Type).To(Equal(protocol.TypePing))
			mute.ExpectDisconnected()
			Expect(srv.Log).To(gbytes.Say(`WARN Disconnecting unresponsive client ` + mute.Name() + `: no answer to ping`))
			person.ExpectExactly("*** " + mute.Nick + " quit (ping timeout)")
			Consistently(srv.Clients, 500*time.Millisecond).Should(Equal(1), "a silent text client is not pinged away")
		})

		It("keeps a JSON client that answers its pings", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice := connectAll(srv, nw, 1)[0]
			alice.SwitchToJSON()
			var pings atomic.Int32
			done := make(chan error, 1) // why the reader stopped
			go func() {
				defer GinkgoRecover()
				for {
					l, err := alice.ReadLine()
					if err != nil {
						done <- err
						return
					}
					if strings.Contains(l, `"type":"ping"`) {
						pings.Add(1)
						alice.Command(map[string]any{"type": "pong"})
					}
				}
			}()
			Eventually(pings.Load).Should(BeNumerically(">=", 3))
			Expect(srv.Clients()).To(Equal(1))
			// As long again as a client that stopped answering would last.
			Consistently(done, 400*time.Millisecond).ShouldNot(Receive(), "the connection ended before the spec closed it")
			Expect(alice.conn.Close()).To(Succeed())
			var err error
			Eventually(done).Should(Receive(&err))
			Expect(err).To(MatchError(net.ErrClosed), "the spec closed the connection, not the server")
		})
	})
	Context("when someone fills the history", func() {
		// pageOf sends /history N for c's current room and returns the
		// page, its closing line included.
		pageOf := func(c *testClient, n int) []string {
			GinkgoHelper()
			c.Send(fmt.Sprintf("/history %d\n", n))
			var page []string
			for {
				l, err := c.NextLine()
				Expect(err).NotTo(HaveOccurred())
				page = append(page, l)
				if strings.HasPrefix(l, "*** start of #") || strings.HasPrefix(l, "*** end of this page of #") {
					return page
				}
			}
		}

		It("goes on removing messages past the age limit once an account is stored beside them", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			store := openStore(GinkgoT().TempDir(), history.Retention{MaxAge: time.Hour})
			srv = startServer(nw, chat.Options{History: store, Accounts: accounts.NewBolt(store.DB()), HistoryOnJoin: -1, TrimInterval: time.Millisecond})
			alice := connectAll(srv, nw, 1)[0]
			alice.Send("/register alice correct horse battery\n")
			alice.ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered alice; you are logged in")
			alice.Nick = "alice"
			// Messages from long ago, stored once the account is.
			old := make([]history.Message, 3)
			for i := range old {
				old[i] = history.Message{Room: "attic", Time: time.Now().Add(-2 * time.Hour), Kind: protocol.TypeMessage, From: "ghost", Text: "long ago"}
			}
			Expect(store.Append(old)).To(Succeed())
			alice.Send("/join attic\nstill here\n")
			alice.ExpectLines("*** you are now talking in #attic", alice.Says("still here"))
			Eventually(func() []string { return pageOf(alice, 10) }).Should(Equal([]string{
				"[history 4] alice: still here",
				"*** start of #attic history reached (1 messages)",
			}), "the old messages are removed, the recent one kept")
			Expect(srv.Log).NotTo(gbytes.Say("Trimming history"))
		})

		It("keeps the in-memory history within its byte budget, forgetting the oldest messages of any room, and a room that comes back numbers on above its last message", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			const budget = 8 << 10 // about four rooms of ten short lines
			store := history.NewMemory(history.Retention{MaxBytes: budget})
			srv = startServer(nw, chat.Options{History: store, HistoryOnJoin: -1})
			alice := connectAll(srv, nw, 1)[0]
			for r := range 20 {
				room := fmt.Sprint("room-", r)
				alice.Send("/join " + room + "\n")
				alice.ExpectLines("*** you are now talking in #" + room)
				for i := 1; i <= 10; i++ {
					alice.Send(fmt.Sprintf("%s line %d\n", room, i))
				}
				for i := 1; i <= 10; i++ {
					alice.ExpectLines(alice.Says(fmt.Sprintf("%s line %d", room, i)))
				}
				alice.Send("/part\n")
				alice.ExpectLines("*** you are now talking in #lobby")
				Expect(store.Bytes()).To(BeNumerically("<=", budget), "the store's own count, after room-%d", r)
			}

			alice.Send("/join room-0\n")
			alice.ExpectLines("*** you are now talking in #room-0")
			Expect(pageOf(alice, 10)).To(Equal([]string{"*** start of #room-0 history reached (0 messages)"}), "the oldest room's messages are gone")
			alice.Send("back again\n")
			alice.ExpectLines(alice.Says("back again"))
			page := pageOf(alice, 10)
			Expect(page).To(HaveLen(2))
			var seq int
			_, err := fmt.Sscanf(page[0], "[history %d] "+alice.Nick+": back again", &seq)
			Expect(err).NotTo(HaveOccurred(), "in %q", page[0])
			Expect(seq).To(BeNumerically(">", 10), "room-0's numbers go on above its ten first messages")
			Expect(store.Bytes()).To(BeNumerically("<=", budget))
		})

		It("keeps at most -memory-bytes of history in the server command's -memory mode", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			server := runCommand(servercmd.Run, nw, "-addr", "127.0.0.1:0", "-memory", "-memory-bytes", "2048", "-rate", "0", "-history-on-join", "-1")
			Eventually(server.stderr).Should(gbytes.Say(`INFO History is kept in memory only, at most 2048 bytes of it\n`))
			running := regexp.MustCompile(`INFO Server running on (127\.0\.0\.1:\d+)\n`)
			Eventually(server.stderr).Should(gbytes.Say(running.String()))
			alice := connect(nw, running.FindStringSubmatch(string(server.stderr.Contents()))[1])
			alice.Send(lines(1, 30))
			for i := 1; i <= 30; i++ {
				alice.ExpectLines(alice.Says(fmt.Sprintf("line %d", i)))
			}
			page := pageOf(alice, 30)
			Expect(len(page)).To(BeNumerically("<", 1+30), "not all 30 lines kept in 2048 bytes: %q", page)
			Expect(page[len(page)-1]).To(HavePrefix("*** start of #lobby history reached"))
			Expect(page[len(page)-2]).To(Equal("[history 30] " + alice.Says("line 30")))
		})
	})
}, transports)

// refusedOn dials addr on nw and returns the one line a refused connection
// gets before it is closed.
func refusedOn(nw Network, addr string) string {
	GinkgoHelper()
	c := &testClient{}
	conn, err := nw.DialContext(context.Background(), "tcp", addr)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = conn.Close() })
	c.conn, c.lines = conn, newLineReader(conn)
	l, err := c.ReadLine()
	Expect(err).NotTo(HaveOccurred())
	_, err = c.ReadLine()
	Expect(err).To(BeADisconnection())
	return l
}
