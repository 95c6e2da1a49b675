package specs_test

import (
	"context"
	"fmt"
	"net"
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
		// refused dials and returns the one line a refused connection gets.
		refused := func() string {
			GinkgoHelper()
			c := &testClient{}
			conn, err := nw.DialContext(context.Background(), "tcp", srv.Addr)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _ = conn.Close() })
			c.conn, c.lines = conn, newLineReader(conn)
			l, err := c.ReadLine()
			Expect(err).NotTo(HaveOccurred())
			_, err = c.ReadLine()
			Expect(err).To(BeADisconnection())
			return l
		}

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
