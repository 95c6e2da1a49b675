package specs_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/protocol"
	"github.com/natter-chat/natter/netfake"
)

var _ = DescribeTableSubtree("The chat server", func(tr Transport) {
	var (
		nw  Network
		srv *runningServer
	)

	Context("with one client connected", func() {
		var alice *testClient

		BeforeEach(func() {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{})
			alice = connectAll(srv, nw, 1)[0]
		})

		It("sends each line back to its sender, content unchanged", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("hello, natter ✓\n")
			alice.ExpectLines(alice.Says("hello, natter ✓"))
		})

		It("logs the connection and every line it receives", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("log me\n")
			alice.ExpectLines(alice.Says("log me"))
			Expect(srv.Log).To(gbytes.Say(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO Server running on 127\.0\.0\.1:\d+\n`))
			Expect(srv.Log).To(gbytes.Say(`INFO New client connected: ` + alice.Name() + `\n`))
			Expect(srv.Log).To(gbytes.Say(`INFO Received from client: log me\n`))
		})

		It("ignores empty and blank lines", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("\n\r\n   \n\t\nafter the blanks\n")
			alice.ExpectLines(alice.Says("after the blanks"))
		})

		It("ends a line at \\n or at \\r\\n alike", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("unix\nwindows\r\n")
			alice.ExpectLines(alice.Says("unix"), alice.Says("windows"))
		})

		It("delivers several lines in the order they were sent", SpecTimeout(specTimeout), func(ctx SpecContext) {
			var want []string
			for i := range 50 {
				want = append(want, fmt.Sprintf("line %02d", i))
			}
			alice.Send(strings.Join(want, "\n") + "\n")
			for _, w := range want {
				alice.ExpectLines(alice.Says(w))
			}
		})

		It("forgets a client that leaves", SpecTimeout(specTimeout), func(ctx SpecContext) {
			name := alice.Name()
			Expect(alice.conn.Close()).To(Succeed())
			Eventually(srv.Clients).Should(BeZero())
			Eventually(srv.Log).Should(gbytes.Say(`INFO Client disconnected: ` + name + ` reason=closed\n`))
		})
	})

	Context("with several clients connected", func() {
		var clients []*testClient

		BeforeEach(func() {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{})
			clients = connectAll(srv, nw, 4)
		})

		It("delivers every line to every client, the sender included", SpecTimeout(specTimeout), func(ctx SpecContext) {
			clients[1].Send("from the second client\n")
			for _, c := range clients {
				c.ExpectLines(clients[1].Says("from the second client"))
			}
		})

		It("gives every client the same order when all of them send at once", SpecTimeout(specTimeout), func(ctx SpecContext) {
			const perClient = 50
			var wg sync.WaitGroup
			for i, c := range clients {
				wg.Go(func() {
					defer GinkgoRecover()
					var b strings.Builder
					for j := range perClient {
						fmt.Fprintf(&b, "client %d says %02d\n", i, j)
					}
					// One line per Write, so the server sees them interleaved.
					for l := range strings.Lines(b.String()) {
						c.Send(l)
					}
				})
			}
			wg.Wait()

			var first []string
			for i, c := range clients {
				got := make([]string, 0, perClient*len(clients))
				for range perClient * len(clients) {
					l, err := c.NextLine()
					Expect(err).NotTo(HaveOccurred())
					_, text, _ := strings.Cut(l, ": ")
					got = append(got, text)
				}
				if i == 0 {
					first = got
					continue
				}
				Expect(got).To(Equal(first), "client %d saw another order than client 0", i)
			}
			By("keeping each sender's own lines in the order it sent them")
			for i := range clients {
				var mine []string
				for _, l := range first {
					if strings.HasPrefix(l, fmt.Sprintf("client %d ", i)) {
						mine = append(mine, l)
					}
				}
				Expect(mine).To(HaveLen(perClient))
				Expect(slices.IsSorted(mine)).To(BeTrue(), "client %d's lines out of order: %v", i, mine)
				var sent []string
				for j := range perClient {
					sent = append(sent, fmt.Sprintf("client %d says %02d", i, j))
				}
				Expect(mine).To(Equal(sent), "client %d's lines, each once, in the order sent", i)
			}
		})

		It("keeps the others chatting when one client leaves", SpecTimeout(specTimeout), func(ctx SpecContext) {
			Expect(clients[0].conn.Close()).To(Succeed())
			Eventually(srv.Clients).Should(Equal(3))
			clients[1].Send("still here\n")
			for _, c := range clients[1:] {
				c.ExpectLines(clients[1].Says("still here"))
			}
		})
	})

	Context("when a client sends a line that breaks the rules", func() {
		var sender, other *testClient

		BeforeEach(func() {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{MaxLineBytes: 64})
			cs := connectAll(srv, nw, 2)
			sender, other = cs[0], cs[1]
		})

		It("relays a line of exactly the limit", SpecTimeout(specTimeout), func(ctx SpecContext) {
			full := strings.Repeat("é", 32) // 64 bytes
			sender.Send(full + "\r\n")
			sender.ExpectLines(sender.Says(full))
			other.ExpectLines(sender.Says(full))
		})

		DescribeTable("rejects it with an error to the sender only, relays none of it, and keeps the connection",
			func(ctx SpecContext, bad, wantError string) {
				sender.Send(bad + "\n")
				sender.Send("next line\n")
				sender.ExpectLines(wantError, sender.Says("next line"))
				other.ExpectLines(sender.Says("next line"))
			},
			Entry("a line over the length limit", SpecTimeout(specTimeout), strings.Repeat("x", 65),
				"*** error: line longer than 64 bytes; it was discarded"),
			Entry("a line far over the length limit", SpecTimeout(specTimeout), strings.Repeat("long ", 10000),
				"*** error: line longer than 64 bytes; it was discarded"),
			Entry("invalid UTF-8", SpecTimeout(specTimeout), "caf\xe9 au lait",
				"*** error: line is not valid UTF-8; it was discarded"),
			Entry("a NUL byte", SpecTimeout(specTimeout), "nul\x00byte",
				"*** error: line contains a NUL byte; it was discarded"),
			Entry("a terminal escape sequence", SpecTimeout(specTimeout), "\x1b[2J\x1b[31mall your screen",
				"*** error: line contains a control character; it was discarded"),
			Entry("a C1 control character", SpecTimeout(specTimeout), "csi \u009b2J",
				"*** error: line contains a control character; it was discarded"),
		)
	})

	Context("when a client stops reading", func() {
		// Each spec uses a network with small buffers, so the stuck
		// client's connection backs up after a few kilobytes.
		const lineSize = 1000

		payload := func(i int) string {
			head := fmt.Sprintf("msg %04d ", i)
			return head + strings.Repeat(".", lineSize-len(head))
		}

		It("never delays the others: they receive every line while it is stuck", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(true)
			srv = startServer(nw, chat.Options{OutboundQueue: 16})
			cs := connectAll(srv, nw, 3)
			sender, reader, stuck := cs[0], cs[1], cs[2]
			_ = stuck // connected, never reads

			// Far more than the stuck client's buffers and queue hold: a
			// server that waited for it would stall part-way.
			const n = 400
			for i := range n {
				sender.Send(payload(i) + "\n")
				reader.ExpectLines(sender.Says(payload(i)))
				sender.ExpectLines(sender.Says(payload(i)))
			}
			Expect(srv.Clients()).To(Equal(3))
		})

		It("drops its oldest queued lines and tells it how many it missed", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(true)
			srv = startServer(nw, chat.Options{OutboundQueue: 16})
			cs := connectAll(srv, nw, 2)
			sender, slow := cs[0], cs[1]

			const n = 400 // far more than the slow client's buffers and queue hold
			By("sending in step with the sender's own echo, so only the slow client falls behind")
			for i := range n {
				sender.Send(payload(i) + "\n")
				sender.ExpectLines(sender.Says(payload(i)))
			}

			By("reading everything the slow client was sent, once it reads again")
			received, missed := 0, 0
			last := -1
			for received+missed < n {
				l, err := slow.NextLine()
				Expect(err).NotTo(HaveOccurred())
				var k int
				var after int
				if _, err := fmt.Sscanf(l, "*** you missed %d messages of #lobby because your connection could not keep up; /resume lobby %d to catch up", &k, &after); err == nil {
					Expect(after).To(Equal(received+missed), "the notice names the last message before the gap")
					missed += k
					continue
				}
				var i int
				_, err = fmt.Sscanf(l, sender.Nick+": msg %04d", &i)
				Expect(err).NotTo(HaveOccurred(), "unexpected line %q", l)
				Expect(i).To(BeNumerically(">", last), "lines out of order")
				Expect(i).To(Equal(received+missed), "a gap in the lines without a notice")
				last = i
				received++
			}
			Expect(missed).To(BeNumerically(">", 0), "the slow client missed nothing; the spec did not back it up")
			Expect(last).To(Equal(n-1), "the newest line must survive")
			Expect(srv.Clients()).To(Equal(2), "the slow client stays connected")
		})

		It("disconnects it once a write to it has waited for the write timeout, and the others go on", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(true)
			srv = startServer(nw, chat.Options{WriteTimeout: 200 * time.Millisecond, OutboundQueue: 16})
			cs := connectAll(srv, nw, 2)
			sender, stuck := cs[0], cs[1]

			By("chatting until the server gives up on the stuck client")
			for i := 0; srv.Clients() == 2; i++ {
				Expect(ctx.Err()).NotTo(HaveOccurred())
				sender.Send(payload(i) + "\n")
				sender.ExpectLines(sender.Says(payload(i)))
			}
			Eventually(srv.Log).Should(gbytes.Say(`WARN Disconnecting slow client ` + stuck.Name() + `: write deadline exceeded\n`))
			stuck.ExpectDisconnected()

			sender.Send("life goes on\n")
			sender.ExpectLines(sender.Says("life goes on"))
		})
	})

	Context("when a client reads slowly but steadily", func() {
		It("sends it everything and keeps it connected, though the whole takes longer than the write timeout to arrive", SpecTimeout(specTimeout), func(ctx SpecContext) {
			// 100 lines of 20,000 bytes: a page that takes 5s at the
			// reader's 400 KB/s, more than twice the write timeout, and
			// fits in half of the outbound bytes, as a page must. Each
			// write (64 KiB) takes the reader 160ms, so even a reader slowed
			// down by a loaded machine keeps well within the timeout.
			const (
				writeTimeout = 2 * time.Second
				n            = 100
				lineSize     = 20000
				readSize     = 8 << 10
				readEvery    = 20 * time.Millisecond
			)
			nw = tr.New(true)
			srv = startServer(nw, chat.Options{WriteTimeout: writeTimeout, MaxLineBytes: lineSize, OutboundBytes: 4 << 20, HistoryOnJoin: -1})
			cs := connectAll(srv, nw, 2)
			sender, reader := cs[0], cs[1]
			line := func(i int) string { return numberedLine(i, lineSize) }

			By("filling the history while the reader keeps up")
			for i := 1; i <= n; i++ {
				sender.Send(line(i) + "\n")
				sender.ExpectLines(sender.Says(line(i)))
				reader.ExpectLines(sender.Says(line(i)))
			}

			By("asking for all of it at once, then reading 8 KB every 20ms, never pausing for as long as the write timeout")
			tick := time.NewTicker(readEvery)
			DeferCleanup(tick.Stop)
			reader.lines = newLineReader(&pacedReader{r: reader.conn, n: readSize, tick: tick.C})
			start := time.Now()
			reader.Send(fmt.Sprintf("/history %d\n", n))
			for i := 1; i <= n; i++ {
				reader.ExpectExactly(fmt.Sprintf("[history %d] %s", i, sender.Says(line(i))))
			}
			reader.ExpectExactly(fmt.Sprintf("*** start of #lobby history reached (%d messages)", n))
			Expect(time.Since(start)).To(BeNumerically(">", writeTimeout), "the page arrived within the write timeout: the spec proves nothing")

			reader.Send("still here\n")
			reader.ExpectLines(reader.Says("still here"))
			Expect(srv.Clients()).To(Equal(2))
			Expect(srv.Log).NotTo(gbytes.Say(`Disconnecting slow client`))
		})
	})

	Context("when a client asks for more than its queue's bytes", func() {
		It("holds no more than -outbound-bytes for it, dropping the oldest, cuts each page to fit, and tells it exactly what it missed, and where each page cut short goes on", SpecTimeout(specTimeout), func(ctx SpecContext) {
			// The budget is well above one write (64 KiB), which the flusher
			// holds besides the queue while the write waits.
			const (
				budget   = 256 << 10
				lineSize = 4000 // about 4.1 KB as JSON: 31 to a page of half the budget
				pages    = 10
				step     = 40 // a page asked for every 40 messages, from 100
				n        = 100 + pages*step
			)
			nw = tr.New(true)
			srv = startServer(nw, chat.Options{OutboundBytes: budget, MaxLineBytes: lineSize, HistoryOnJoin: -1})
			sender := connectAll(srv, nw, 1)[0]
			line := func(i int) string { return numberedLine(i, lineSize) }
			By("filling the history")
			for i := 1; i <= n; i++ {
				sender.Send(line(i) + "\n")
				sender.ExpectLines(sender.Says(line(i)))
			}

			stuck := connectAll(srv, nw, 1)[0]
			stuck.SwitchToJSON()
			By("asking, without reading, for ten pages, far more than its queue may hold")
			for k := range pages {
				stuck.Command(map[string]any{"type": "resume", "room": "lobby", "after": 100 + k*step})
			}
			queued := func(g Gomega) float64 {
				v, err := strconv.ParseFloat(metric(scrape(srv), "natter_queued_bytes"), 64)
				g.Expect(err).NotTo(HaveOccurred(), "no natter_queued_bytes")
				return v
			}
			Eventually(queued).WithPolling(20*time.Millisecond).Should(BeNumerically(">", budget/2), "the queue holds about the budget")
			Consistently(queued, 300*time.Millisecond, 20*time.Millisecond).Should(BeNumerically("<=", budget))
			Expect(metric(scrape(srv), "natter_messages_dropped_total")).NotTo(BeElementOf("", "0"), "nothing dropped: the spec did not fill the queue")

			By("reading: every message it asked for arrives, or a missed event names it, exactly")
			received := map[uint64]bool{}
			closed := map[uint64]bool{} // the pages whose closing event came, by their after
			var missedRoom []protocol.Event
			missedOther := 0
			var last protocol.Event
			for last.Type == "" {
				ev := stuck.Event(presenceEvents...)
				switch ev.Type {
				case protocol.TypeMessage:
					Expect(ev.History).To(BeTrue())
					received[ev.Seq] = true
				case protocol.TypeMissed:
					if ev.Room == "" {
						missedOther += ev.Count
					} else {
						missedRoom = append(missedRoom, ev)
					}
				case protocol.TypeResumed:
					closed[ev.After] = true
					if ev.After == uint64(100+(pages-1)*step) {
						last = ev // the newest is always kept
					}
				default:
					Fail(fmt.Sprintf("unexpected event %+v", ev))
				}
			}
			k := last.Count
			Expect(k).To(BeNumerically("<", step), "the page was not cut to half the budget")
			Expect(last.More).To(BeTrue(), "a page cut short says there is more")
			Expect(last.Seq).To(BeEquivalentTo(int(last.After) + k))
			// A page's closing event says there is more, and the client
			// asks for the next page when it gets it: lost, it is told as
			// the room's replay cut short, from the page's next message.
			var asked, lost, cutShort []uint64
			for p := range pages {
				if !closed[uint64(100+p*step)] {
					cutShort = append(cutShort, uint64(100+p*step+k+1))
				}
				for q := range k {
					seq := uint64(100 + p*step + q + 1)
					asked = append(asked, seq)
					if !received[seq] {
						lost = append(lost, seq)
					}
				}
			}
			Expect(len(received)).To(Equal(len(asked)-len(lost)), "a message it did not ask for")
			Expect(lost).NotTo(BeEmpty())
			Expect(missedOther).To(BeZero(), "lost events that are neither messages nor a page's closing")
			counted := 0
			for _, m := range missedRoom {
				Expect(m.Room).To(Equal("lobby"))
				Expect(append(lost, cutShort...)).To(ContainElements(m.After+1, m.Seq), "a missed event's range starts and ends with lost messages, or where a page cut short goes on")
				counted += m.Count
			}
			for _, seq := range cutShort {
				Expect(slices.ContainsFunc(missedRoom, func(m protocol.Event) bool { return m.After < seq && seq <= m.Seq })).To(BeTrue(), "the page going on at %d, whose closing event was lost, named by no missed event", seq)
			}
			Expect(counted).To(Equal(len(lost)), "the missed events count every lost message once")
			for _, seq := range lost {
				Expect(slices.ContainsFunc(missedRoom, func(m protocol.Event) bool { return m.After < seq && seq <= m.Seq })).To(BeTrue(), "lost message %d named by no missed event", seq)
			}

			By("resuming where the first missed event says")
			stuck.Command(map[string]any{"type": "resume", "room": "lobby", "after": missedRoom[0].After})
			Expect(stuck.Event(presenceEvents...).Seq).To(Equal(missedRoom[0].After + 1))
			Expect(srv.Clients()).To(Equal(2))
		})

		It("ends a /history page early at half of -outbound-bytes, with the newest messages, and says where to page on", SpecTimeout(specTimeout), func(ctx SpecContext) {
			const (
				budget   = 64 << 10
				lineSize = 2000 // about 2 KB as text: 16 to a page of half the budget
				n        = 50
			)
			nw = tr.New(true)
			srv = startServer(nw, chat.Options{OutboundBytes: budget, MaxLineBytes: lineSize, HistoryOnJoin: -1})
			alice := connectAll(srv, nw, 1)[0]
			line := func(i int) string { return numberedLine(i, lineSize) }
			for i := 1; i <= n; i++ {
				alice.Send(line(i) + "\n")
				alice.ExpectLines(alice.Says(line(i)))
			}

			page := func(before int) (first, count int) {
				GinkgoHelper()
				got := map[int]bool{}
				for {
					l, err := alice.NextLine()
					Expect(err).NotTo(HaveOccurred())
					var seq int
					if _, err := fmt.Sscanf(l, "[history %d] ", &seq); err == nil {
						Expect(l).To(Equal(fmt.Sprintf("[history %d] %s", seq, alice.Says(line(seq)))))
						got[seq] = true
						continue
					}
					var k, next int
					_, err = fmt.Sscanf(l, "*** end of this page of #lobby history (%d messages); /history %d before %d for older ones", &k, &k, &next)
					Expect(err).NotTo(HaveOccurred(), "unexpected line %q", l)
					Expect(got).To(HaveLen(k))
					for seq := next; seq < before; seq++ {
						Expect(got).To(HaveKey(seq), "the page holds the newest messages before %d, up to %d", before, next)
					}
					return next, k
				}
			}
			alice.Send(fmt.Sprintf("/history %d\n", n))
			next, k := page(n + 1)
			Expect(k).To(BeNumerically("<", n), "the page was not cut to half the budget")
			Expect(k * lineSize).To(BeNumerically("<=", budget/2))
			alice.Send(fmt.Sprintf("/history %d before %d\n", n, next))
			_, k2 := page(next)
			Expect(k2).To(Equal(k), "the next page, cut alike")
		})
	})

	Context("when accepting a connection fails", func() {
		It("logs it, backs off and keeps accepting (e.g. when out of file descriptors)", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = &failingAccepts{Network: tr.New(false), failures: 3}
			srv = startServer(nw, chat.Options{})
			c := connectAll(srv, nw, 1)[0]
			c.Send("still accepting\n")
			c.ExpectLines(c.Says("still accepting"))
			Expect(srv.Log).To(gbytes.Say(`WARN Accept failed; retrying err=.*too many open files`))
		})
	})

	Context("when it shuts down", func() {
		It("stops accepting, tells every client it is going away, and closes their connections", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{})
			clients := connectAll(srv, nw, 3)
			clients[0].Send("before the end\n")
			for _, c := range clients {
				c.ExpectLines(clients[0].Says("before the end"))
			}

			Expect(srv.Stop()).To(Succeed())
			for _, c := range clients {
				Expect(c.ExpectDisconnected()).To(Equal([]string{"*** server shutting down"}))
			}
			_, err := nw.DialContext(ctx, "tcp", srv.Addr)
			Expect(err).To(HaveOccurred())
			Expect(srv.Log).To(gbytes.Say(`INFO Server stopped\n`))
		})

		It("closes a client that won't take its last messages once the shutdown timeout passes", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(true)
			srv = startServer(nw, chat.Options{ShutdownTimeout: 300 * time.Millisecond, OutboundQueue: 16})
			cs := connectAll(srv, nw, 2)
			sender, stuck := cs[0], cs[1]
			for i := range 100 {
				line := fmt.Sprintf("%04d %s", i, strings.Repeat("x", 1000))
				sender.Send(line + "\n")
				sender.ExpectLines(sender.Says(line))
			}

			Expect(srv.Stop()).To(Succeed())
			Expect(srv.Log).To(gbytes.Say(`WARN Shutdown timeout; closing remaining connections\n`))
			stuck.ExpectDisconnected()
		})
	})
}, transports)

var _ = Describe("The chat server on a network whose buffers hold 1 byte (netfake only: real sockets can't be made that small)", func() {
	It("still relays every line intact, in one order, to every client", Label("netfake"), SpecTimeout(specTimeout), func(ctx SpecContext) {
		nw := &netfake.Network{BufferSize: 1}
		srv := startServer(nw, chat.Options{})
		clients := connectAll(srv, nw, 3)

		const perClient = 20
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() {
				defer GinkgoRecover()
				for j := range perClient {
					c.Send(fmt.Sprintf("client %d, line %02d: every byte waits for its reader\n", i, j))
				}
			})
		}
		var sent []string
		for i, c := range clients {
			for j := range perClient {
				sent = append(sent, c.Says(fmt.Sprintf("client %d, line %02d: every byte waits for its reader", i, j)))
			}
		}
		var first []string
		for i, c := range clients {
			var got []string
			for range perClient * len(clients) {
				l, err := c.NextLine()
				Expect(err).NotTo(HaveOccurred())
				Expect(l).To(MatchRegexp(`^guest-\d+: client \d, line \d\d: every byte waits for its reader$`))
				got = append(got, l)
			}
			if i == 0 {
				Expect(got).To(ConsistOf(sent), "every line, intact and from its sender, once")
				first = got
				continue
			}
			Expect(got).To(Equal(first), "client %d saw another order than client 0", i)
		}
		wg.Wait()
	})
})

// numberedLine returns line i, padded to size bytes: "line 007 ~~~~...".
func numberedLine(i, size int) string {
	head := fmt.Sprintf("line %03d ", i)
	return head + strings.Repeat("~", size-len(head))
}
