package specs_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/cli"
	"github.com/natter-chat/natter/chat/cli/clientcmd"
	"github.com/natter-chat/natter/chat/cli/servercmd"
	"github.com/natter-chat/natter/chat/client"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// runningCommand is clientcmd.Run or servercmd.Run running in the
// background with pipes for its standard streams.
type runningCommand struct {
	stdin          *io.PipeWriter
	stdout, stderr *gbytes.Buffer
	cancel         context.CancelFunc
	exited         chan struct{} // closed once run has returned
	code           int           // run's result, once exited is closed
}

// ExitCode returns the command's exit code, or -1 while it is running.
func (rc *runningCommand) ExitCode() int {
	select {
	case <-rc.exited:
		return rc.code
	default:
		return -1
	}
}

// runCommand starts run with args and registers a cleanup that closes its
// stdin, interrupts it and waits for it to return.
func runCommand(run func(context.Context, []string, cli.Env) int, nw Network, args ...string) *runningCommand {
	return runCommandGated(run, nw, nil, args...)
}

// gate blocks writes until it is opened, like a terminal nobody scrolls.
type gate struct {
	w    io.Writer
	open chan struct{}
	once sync.Once
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	return g.w.Write(p)
}

// Open lets writes through, now and from then on.
func (g *gate) Open() { g.once.Do(func() { close(g.open) }) }

// runCommandGated is runCommand with the command's stdout behind held, if
// not nil: writes wait until held is opened.
func runCommandGated(run func(context.Context, []string, cli.Env) int, nw Network, held *gate, args ...string) *runningCommand {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	rc := &runningCommand{
		stdin:  pw,
		stdout: gbytes.NewBuffer(),
		stderr: gbytes.NewBuffer(),
		cancel: cancel,
		exited: make(chan struct{}),
	}
	var stdout io.Writer = io.MultiWriter(rc.stdout, GinkgoWriter)
	if held != nil {
		held.w = stdout
		stdout = held
	}
	env := cli.Env{
		Stdin:  pr,
		Stdout: stdout,
		Stderr: io.MultiWriter(rc.stderr, GinkgoWriter),
		Listen: nw.Listen,
		Dialer: nw,
	}
	go func() {
		defer close(rc.exited)
		rc.code = run(ctx, args, env)
	}()
	DeferCleanup(func() {
		if held != nil {
			held.Open()
		}
		pw.Close()
		cancel()
		Eventually(rc.exited).Should(BeClosed())
	})
	return rc
}

// Type writes to the command's stdin, as a user typing.
func (rc *runningCommand) Type(s string) {
	GinkgoHelper()
	_, err := io.WriteString(rc.stdin, s)
	Expect(err).NotTo(HaveOccurred())
}

// closedPort returns an address on nw where nothing listens.
func closedPort(nw Network) string {
	GinkgoHelper()
	ln, err := nw.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	Expect(ln.Close()).To(Succeed())
	return addr
}

// scriptedServer listens on nw like a natter server that can't be trusted:
// to each client that connects it sends lines, once the client has asked for
// the JSON format, and then keeps the connection open until the spec ends.
// It returns its address.
func scriptedServer(nw Network, lines ...string) string {
	GinkgoHelper()
	ln, err := nw.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	DeferCleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // the spec is over
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() {
				lr := newLineReader(conn)
				if l, err := lr.Next(); err != nil || string(l) != "/format json" {
					return
				}
				for _, l := range lines {
					if _, err := io.WriteString(conn, l+"\n"); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// event is ev as a natter server sends it in the JSON format, without its
// line end.
func event(ev protocol.Event) string { return strings.TrimSuffix(string(ev.AppendJSON(nil)), "\n") }

var _ = DescribeTableSubtree("The client command", func(tr Transport) {
	var (
		nw  Network
		srv *runningServer
	)

	BeforeEach(func() {
		nw = tr.New(false)
		srv = startServer(nw, chat.Options{})
	})

	It("says it is connected, sends what is typed and prints what the server sends", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", srv.Addr, "-nick", "alice")
		Eventually(client.stdout).Should(gbytes.Say("^Connected to server\n"))
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* guest-1 is now alice\n`))
		other := connectAll(srv, nw, 1)[0]

		client.Type("hi from the client\n")
		Eventually(client.stdout).Should(gbytes.Say("alice: hi from the client\n"))
		other.ExpectLines("alice: hi from the client")

		other.Send("hi from nc\n")
		Eventually(client.stdout).Should(gbytes.Say(other.Says("hi from nc") + "\n"))
	})

	It("renders events for people: rooms, private messages and notices, with /commands passed through", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", srv.Addr, "-nick", "alice")
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* Welcome, guest-1! You are in #lobby\. `))
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* guest-1 is now alice\n`))
		bob := connectAll(srv, nw, 1)[0]

		client.Type("/join games\n")
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* alice joined #games\n\*\*\* you are now talking in #games\n`))
		bob.Send("in the lobby\n")
		Eventually(client.stdout).Should(gbytes.Say(`\[#lobby\] ` + bob.Says("in the lobby") + `\n`))
		bob.Send("/msg alice psst\n")
		Eventually(client.stdout).Should(gbytes.Say(`\[pm\] ` + bob.Says("psst") + `\n`))
		client.Type("/msg " + bob.Nick + " hi\n")
		Eventually(client.stdout).Should(gbytes.Say(`\[pm to ` + bob.Nick + `\] alice: hi\n`))
		client.Type("/bogus\n")
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* error: unknown command /bogus; /help lists the commands\n`))

		By("printing no colour codes when its output is not a terminal")
		Expect(string(client.stdout.Contents())).NotTo(ContainSubstring("\x1b["))
	})

	It("colours notices, errors and private messages when asked to, one line at a time", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", srv.Addr, "-nick", "alice", "-color", "always")
		Eventually(client.stdout).Should(gbytes.Say("\x1b\\[36m\\*\\*\\* guest-1 is now alice\x1b\\[0m\n"))
		client.Type("/bogus\n")
		Eventually(client.stdout).Should(gbytes.Say("\x1b\\[31m\\*\\*\\* error: unknown command /bogus; /help lists the commands\x1b\\[0m\n"))
		client.Type("plain words\n")
		Eventually(client.stdout).Should(gbytes.Say("^alice: plain words\n"))
	})

	It("leaves cleanly and exits 0 when its input ends, after printing the replies to piped lines", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", srv.Addr)
		client.Type("first\nsecond\n")
		Expect(client.stdin.Close()).To(Succeed())
		Eventually(client.ExitCode).Should(Equal(cli.ExitOK))
		Expect(client.stdout).To(gbytes.Say("^Connected to server\n"))
		Expect(client.stdout).To(gbytes.Say(`guest-1: first\nguest-1: second\n`))
		Eventually(srv.Clients).Should(BeZero())
		Expect(srv.Log).To(gbytes.Say(`INFO Client disconnected: `))
	})

	It("says so and exits non-zero when the server closes the connection, if told not to reconnect", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", srv.Addr, "-reconnect", "0")
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* Welcome, `)) // connected and chatting
		Expect(srv.Stop()).To(Succeed())
		Eventually(client.ExitCode).Should(Equal(cli.ExitFailure))
		Expect(client.stdout).To(gbytes.Say("\\*\\*\\* server shutting down\n"))
		Expect(client.stderr).To(gbytes.Say("^Connection closed by server\n"))
	})

	It("reconnects after losing the server, rejoins its rooms and catches up on what it missed, showing nothing twice", SpecTimeout(specTimeout), func(ctx SpecContext) {
		store := history.NewMemory(history.Retention{})
		first := startServer(nw, chat.Options{History: store})
		client := runCommand(clientcmd.Run, nw, "-addr", first.Addr, "-nick", "alice")
		client.Type("/join games\n")
		client.Type("before the restart\n")
		Eventually(client.stdout).Should(gbytes.Say("alice: before the restart\n"))

		Expect(first.Stop()).To(Succeed())
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* connection lost; reconnecting in \d+ms \(attempt 1 of 10\)\n`))

		By("restarting the server on the same address and history, where bob talks before alice is back")
		second := startServerOn(nw, first.Addr, chat.Options{History: store})
		bob := connectAll(second, nw, 1)[0]
		bob.Send("/join games\nwhile you were away\n")
		bob.ExpectLines("*** you are now talking in #games", "[history 1] alice: before the restart", bob.Says("while you were away"))

		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* reconnected to ` + first.Addr + `\n`))
		Eventually(second.Clients).Should(Equal(2))
		Eventually(client.stdout).Should(gbytes.Say(bob.Nick + `: while you were away\n`))
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* you are now talking in #games\n`))

		bob.Send("welcome back\n")
		Eventually(client.stdout).Should(gbytes.Say(`^` + bob.Says("welcome back") + `\n`))
		out := string(client.stdout.Contents())
		Expect(strings.Count(out, "alice: before the restart")).To(Equal(1), "a message seen before the restart is not shown again")
		Expect(strings.Count(out, bob.Says("while you were away"))).To(Equal(1))
	})

	It("fetches from history the messages the server dropped because it read too slowly, showing each message once", SpecTimeout(specTimeout), func(ctx SpecContext) {
		nw = tr.New(true)
		slow := startServer(nw, chat.Options{OutboundQueue: 16})
		held := &gate{open: make(chan struct{})}
		client := runCommandGated(clientcmd.Run, nw, held, "-addr", slow.Addr, "-nick", "alice")
		Eventually(slow.Clients).Should(Equal(1))
		bob := connectAll(slow, nw, 1)[0]
		// The client takes its nickname once it has switched to JSON: from
		// then on it misses nothing it can't get back.
		Eventually(func() string {
			bob.Send("/who\n")
			l, err := bob.NextLine()
			Expect(err).NotTo(HaveOccurred())
			return l
		}).Should(ContainSubstring("alice"))

		By("talking while the client's terminal is stuck, far past what its queue holds")
		const n = 300
		msg := func(i int) string { return fmt.Sprintf("msg %03d %s", i, strings.Repeat(".", 500)) }
		for i := range n {
			bob.Send(msg(i) + "\n")
			bob.ExpectLines(bob.Says(msg(i)))
		}

		held.Open()
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* you missed \d+ messages of #lobby because your connection could not keep up`))
		Eventually(func() bool {
			return strings.Contains(string(client.stdout.Contents()), msg(n-1))
		}).Should(BeTrue())
		// shown returns the messages not shown exactly once, with how many
		// times they were.
		shown := func() map[int]int {
			out := string(client.stdout.Contents())
			wrong := map[int]int{}
			for i := range n {
				if k := strings.Count(out, msg(i)+"\n"); k != 1 {
					wrong[i] = k
				}
			}
			return wrong
		}
		Eventually(shown).Should(BeEmpty(), "each message shown once, live or from history")
		// A message shown again would come from a replay still on its way:
		// none may, for as long as a replay of them all would take.
		Consistently(shown, time.Second).Should(BeEmpty(), "a message shown twice")
		out := string(client.stdout.Contents())
		Expect(out).To(ContainSubstring("[history "), "some messages came from history")
	})

	It("answers the server's pings without showing them", SpecTimeout(specTimeout), func(ctx SpecContext) {
		pinging := startServer(nw, chat.Options{PingInterval: 100 * time.Millisecond})
		client := runCommand(clientcmd.Run, nw, "-addr", pinging.Addr, "-reconnect", "0")
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* Welcome, `))
		Consistently(pinging.Clients, time.Second).Should(Equal(1), "still connected after several ping intervals")
		Expect(string(client.stdout.Contents())).NotTo(ContainSubstring("ping"))
	})

	It("gives up after its reconnect attempts, saying so at each", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", srv.Addr, "-reconnect", "2")
		Eventually(client.stdout).Should(gbytes.Say(`\*\*\* Welcome, `)) // connected and chatting
		Expect(srv.Stop()).To(Succeed())
		Eventually(client.ExitCode).Should(Equal(cli.ExitFailure))
		Expect(client.stdout).To(gbytes.Say(`attempt 1 of 2\)\n`))
		Expect(client.stdout).To(gbytes.Say(`attempt 2 of 2\)\n`))
		Expect(client.stderr).To(gbytes.Say("^Connection closed by server; gave up reconnecting after 2 attempts\n"))
	})

	DescribeTable("explains an address it cannot connect to, and exits non-zero",
		func(ctx SpecContext, addr func() string, why string) {
			a := addr()
			client := runCommand(clientcmd.Run, nw, "-addr", a)
			Eventually(client.ExitCode).Should(Equal(cli.ExitFailure))
			Expect(client.stderr).To(gbytes.Say("^Error: cannot connect to %s: %s\n$", a, why))
			Expect(client.stdout.Contents()).To(BeEmpty())
		},
		Entry("nothing listening", SpecTimeout(specTimeout), func() string { return closedPort(nw) }, "connection refused"),
		Entry("no port", SpecTimeout(specTimeout), func() string { return "127.0.0.1" }, "missing port in address"),
	)

	Context("when the server can't be trusted", func() {
		It("prints the control characters and line breaks of what it sends as escapes, each event on its own lines", SpecTimeout(specTimeout), func(ctx SpecContext) {
			addr := scriptedServer(nw,
				event(protocol.Event{Type: protocol.TypeWelcome, Nick: "alice\x1b]0;owned\a", Room: "lobby", Commands: []string{"/nick\r\n*** /op"}}),
				event(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", Seq: 1, From: "bob", Text: "hi\x1b[2J\x1b[H\r*** you are banned"}),
				event(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", Seq: 2, From: "bob\n*** server", Text: "one\n*** server shutting down"}),
				event(protocol.Event{Type: protocol.TypeTopic, Room: "lobby", Text: "a\r\n*** alice is now root"}),
				event(protocol.Event{Type: protocol.TypeWho, Room: "lobby", Members: []string{"bob\a", "carol\b"}}),
				event(protocol.Event{Type: protocol.TypeQuit, Nick: "bob", Reason: "bye\x1b[1A\x1b[2K"}),
				`{"type":"private","from":"bob","to":"alice","text":"see txt.\u202eexe \u009b2J \u007f"}`,
				event(protocol.Event{Type: protocol.TypeNotice, Text: "the end"}),
			)
			client := runCommand(clientcmd.Run, nw, "-addr", addr, "-reconnect", "0")
			Eventually(client.stdout).Should(gbytes.Say(`\*\*\* the end\n`))
			Expect(string(client.stdout.Contents())).To(HavePrefix("Connected to server\n" +
				`*** Welcome, alice\x1b]0;owned\a! You are in #lobby. Type a line to chat; commands: /nick\r\n*** /op. Limits: ` +
				"lines of 0 bytes, nicknames of 0 characters, room names of 0 characters, 0 rooms per client, 0 members per room.\n" +
				`bob: hi\x1b[2J\x1b[H\r*** you are banned` + "\n" +
				`bob\n*** server: one\n*** server shutting down` + "\n" +
				`*** topic of #lobby: a\r\n*** alice is now root` + "\n" +
				`*** in #lobby (2): bob\a, carol\b` + "\n" +
				`*** bob quit (bye\x1b[1A\x1b[2K)` + "\n" +
				`[pm] bob: see txt.\u202eexe \u009b2J \x7f` + "\n" +
				"*** the end\n"))
		})

		It("shows the longest answers a server sends: /rooms with 900 rooms and their topics", SpecTimeout(specTimeout), func(ctx SpecContext) {
			// One page for them all: the longest reply a server can be set to send.
			roomy := startServer(nw, chat.Options{MaxRoomsPerClient: 1000, MaxListPage: 1000})
			bob := connectAll(roomy, nw, 1)[0]
			topic := strings.Repeat("a topic of 300 bytes, ", 14)[:300]
			for i := range 900 {
				bob.Send(fmt.Sprintf("/join r%03d\n/topic %s\n", i, topic))
				bob.ExpectLines(fmt.Sprintf("*** you are now talking in #r%03d", i),
					fmt.Sprintf("*** %s set the topic of #r%03d: %s", bob.Nick, i, topic))
			}
			client := runCommand(clientcmd.Run, nw, "-addr", roomy.Addr, "-nick", "alice")
			Eventually(client.stdout).Should(gbytes.Say(`\*\*\* guest-2 is now alice\n`))
			client.Type("/rooms\n")
			Eventually(client.stdout).Should(gbytes.Say(`\*\*\* rooms: #lobby \(2\), #r000 \(1\), #r001 \(1\), .*, #r899 \(1\)\n`))
		})

		It("shows the messages of a server that restarted without its history, though their numbers start over", SpecTimeout(specTimeout), func(ctx SpecContext) {
			first := startServer(nw, chat.Options{}) // its history in memory, as with -memory
			client := runCommand(clientcmd.Run, nw, "-addr", first.Addr, "-nick", "alice", "-reconnect", "10")
			Eventually(client.stdout).Should(gbytes.Say(`\*\*\* guest-1 is now alice\n`))
			bob := connectAll(first, nw, 1)[0]
			bob.Send("one\ntwo\nthree\n")
			Eventually(client.stdout).Should(gbytes.Say(bob.Says("one") + "\n" + bob.Says("two") + "\n" + bob.Says("three") + "\n"))

			Expect(first.Stop()).To(Succeed())
			Eventually(client.stdout).Should(gbytes.Say(`\*\*\* connection lost; reconnecting in `))
			By("starting a server with a history of its own on the same address, where carol talks before alice is back")
			second := startServerOn(nw, first.Addr, chat.Options{})
			carol := connectAll(second, nw, 1)[0]
			carol.Send("while you were away\n")
			carol.ExpectLines(carol.Says("while you were away"))

			Eventually(client.stdout).Should(gbytes.Say(`\*\*\* reconnected to ` + first.Addr + `\n` +
				`\*\*\* the server's history is not the one before: its messages are numbered anew\n`))
			Eventually(client.stdout).Should(gbytes.Say(`\[history 1\] ` + carol.Says("while you were away") + `\n`))
			Eventually(second.Clients).Should(Equal(2))
			carol.Send("after the restart\n")
			Eventually(client.stdout).Should(gbytes.Say(`\n` + carol.Says("after the restart") + `\n`))
		})

		It("says so when it skips a line longer than it takes, and goes on", SpecTimeout(specTimeout), func(ctx SpecContext) {
			addr := scriptedServer(nw,
				event(protocol.Event{Type: protocol.TypeWelcome, Nick: "alice", Room: "lobby"}),
				event(protocol.Event{Type: protocol.TypeNotice, Text: strings.Repeat("x", client.MaxServerLineBytes)}),
				event(protocol.Event{Type: protocol.TypeNotice, Text: "the end"}),
			)
			cmd := runCommand(clientcmd.Run, nw, "-addr", addr, "-reconnect", "0")
			Eventually(cmd.stdout, 3*readTimeout).Should(gbytes.Say(fmt.Sprintf(
				`\*\*\* skipped a line from the server: line too long \(the limit is %d bytes\)\n\*\*\* the end\n`, client.MaxServerLineBytes)))
		})
	})
}, transports)

var _ = DescribeTableSubtree("The server command", func(tr Transport) {
	var nw Network

	BeforeEach(func() { nw = tr.New(false) })

	It("logs the address it runs on, serves clients, and exits 0 after a graceful shutdown", SpecTimeout(specTimeout), func(ctx SpecContext) {
		server := runCommand(servercmd.Run, nw, "-addr", "127.0.0.1:0", "-data-dir", GinkgoT().TempDir())
		running := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO Server running on (127\.0\.0\.1:\d+)\n`)
		Eventually(server.stderr).Should(gbytes.Say(running.String()))
		addr := running.FindStringSubmatch(string(server.stderr.Contents()))[1]

		c := connect(nw, addr)
		c.Send("anyone?\n")
		c.ExpectLines(c.Says("anyone?"))
		Eventually(server.stderr).Should(gbytes.Say(`INFO New client connected: ` + c.Name() + `\n`))
		Eventually(server.stderr).Should(gbytes.Say(`INFO Received from client: anyone\?\n`))

		server.cancel()
		Eventually(server.ExitCode).Should(Equal(cli.ExitOK))
		Expect(c.ExpectDisconnected()).To(Equal([]string{"*** server shutting down"}))
	})

	It("logs JSON lines when asked to", SpecTimeout(specTimeout), func(ctx SpecContext) {
		server := runCommand(servercmd.Run, nw, "-addr", "127.0.0.1:0", "-log-format", "json", "-memory")
		Eventually(server.stderr).Should(gbytes.Say(`(?m)^\{"time":"[^"]+Z","level":"INFO","msg":"Server running on 127\.0\.0\.1:\d+"\}\n`))
	})

	It("explains an address already in use and exits non-zero", SpecTimeout(specTimeout), func(ctx SpecContext) {
		ln, err := nw.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = ln.Close() })

		server := runCommand(servercmd.Run, nw, "-addr", ln.Addr().String(), "-memory")
		Eventually(server.ExitCode).Should(Equal(cli.ExitFailure))
		Expect(server.stderr).To(gbytes.Say(fmt.Sprintf(`ERROR Cannot listen on %s: address already in use\n`, ln.Addr())))
	})

	It("explains a data directory it cannot use and exits non-zero", SpecTimeout(specTimeout), func(ctx SpecContext) {
		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "history.db"), []byte("this is not a bbolt database, just bytes"), 0o600)).To(Succeed())
		server := runCommand(servercmd.Run, nw, "-addr", "127.0.0.1:0", "-data-dir", dir)
		Eventually(server.ExitCode).Should(Equal(cli.ExitFailure))
		Expect(server.stderr).To(gbytes.Say(`ERROR Cannot open the history in ` + regexp.QuoteMeta(dir) + `: history: opening .*history\.db: .+\n`))
		Expect(string(server.stderr.Contents())).NotTo(ContainSubstring("Server running"))
	})

	It("rejects a bad flag with usage and exit code 2", SpecTimeout(specTimeout), func(ctx SpecContext) {
		server := runCommand(servercmd.Run, nw, "-log-format", "xml")
		Eventually(server.ExitCode).Should(Equal(cli.ExitUsage))
		Expect(server.stderr).To(gbytes.Say(`unknown log format "xml"`))
	})
}, transports)
