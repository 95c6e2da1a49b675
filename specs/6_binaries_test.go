package specs_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	"github.com/natter-chat/natter/chat/protocol"
)

var _ = Describe("The server and client binaries, run as a user runs them (loopback only: real processes need real sockets)", Ordered, func() {
	var serverBin, clientBin string

	BeforeAll(func() {
		var err error
		serverBin, err = gexec.Build("github.com/natter-chat/natter/cmd/server")
		Expect(err).NotTo(HaveOccurred())
		clientBin, err = gexec.Build("github.com/natter-chat/natter/cmd/client")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(gexec.CleanupBuildArtifacts)
	})

	start := func(cmd *exec.Cmd) *gexec.Session {
		GinkgoHelper()
		s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { s.Kill().Wait() })
		return s
	}
	startServerIn := func(dataDir string, flags ...string) (*gexec.Session, string) {
		GinkgoHelper()
		s := start(exec.Command(serverBin, append([]string{"-addr", "127.0.0.1:0", "-data-dir", dataDir}, flags...)...))
		running := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO Server running on (127\.0\.0\.1:\d+)\n`)
		Eventually(s.Err).Should(gbytes.Say(running.String()))
		return s, running.FindStringSubmatch(string(s.Err.Contents()))[1]
	}
	startServer := func() (*gexec.Session, string) {
		GinkgoHelper()
		return startServerIn(GinkgoT().TempDir())
	}

	It("chat: the server logs where it runs, a client and a raw TCP (nc-style) connection talk, and SIGTERM stops it with exit 0", Label("loopback"), SpecTimeout(specTimeout), func(ctx SpecContext) {
		server, addr := startServer()

		cmd := exec.Command(clientBin, "-addr", addr, "-nick", "alice", "-reconnect", "0")
		stdin, err := cmd.StdinPipe()
		Expect(err).NotTo(HaveOccurred())
		client := start(cmd)
		Eventually(client.Out).Should(gbytes.Say("^Connected to server\n"))
		Eventually(client.Out).Should(gbytes.Say(`\*\*\* guest-1 is now alice\n`))

		nc, err := net.Dial("tcp", addr)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = nc.Close() })
		Eventually(server.Err).Should(gbytes.Say(`INFO New client connected: 127\.0\.0\.1:\d+\n`))
		Eventually(server.Err).Should(gbytes.Say(`INFO New client connected: ` + nc.LocalAddr().String() + `\n`))
		raw := newTestClient(nc)

		_, err = io.WriteString(stdin, "hello from the client binary\n")
		Expect(err).NotTo(HaveOccurred())
		Eventually(client.Out).Should(gbytes.Say("alice: hello from the client binary\n"))
		raw.ExpectLines("alice: hello from the client binary")
		Eventually(server.Err).Should(gbytes.Say(`INFO Received from client: hello from the client binary\n`))

		raw.Send("hello from nc\r\n")
		Eventually(client.Out).Should(gbytes.Say(raw.Says("hello from nc") + "\n"))

		server.Signal(syscall.SIGTERM)
		Eventually(server).Should(gexec.Exit(0))
		Eventually(client).Should(gexec.Exit(1))
		Expect(client.Out).To(gbytes.Say(`\*\*\* server shutting down\n`))
		Expect(client.Err).To(gbytes.Say("^Connection closed by server\n"))
	})

	It("files: an nc user pastes the curl line /upload gives (whatever brackets or braces the name has), the room sees the link, and curl downloads a Range of it", Label("loopback"), SpecTimeout(specTimeout), func(ctx SpecContext) {
		server, addr := startServerIn(GinkgoT().TempDir(), "-files-addr", "127.0.0.1:0")
		Eventually(server.Err).Should(gbytes.Say(`INFO File sharing on 127\.0\.0\.1:\d+\n`))
		dial := func() *testClient {
			GinkgoHelper()
			conn, err := net.Dial("tcp", addr)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _ = conn.Close() })
			return newTestClient(conn)
		}
		alice, bob := dial(), dial()
		alice.Send("/upload notes{1}[2].txt 11\n")
		l, err := alice.NextLine()
		Expect(err).NotTo(HaveOccurred())
		m := regexp.MustCompile(`: (curl -g -T 'notes\{1\}\[2\]\.txt' http://127\.0\.0\.1:\d+/u/\S+)$`).FindStringSubmatch(l)
		Expect(m).NotTo(BeNil(), "got %q", l)

		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "notes{1}[2].txt"), []byte("hello world"), 0o600)).To(Succeed())
		paste := exec.Command("sh", "-c", m[1]+" --silent --fail")
		paste.Dir = dir
		out, err := paste.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		link := strings.TrimSpace(string(out))
		Expect(link).To(MatchRegexp(`^http://127\.0\.0\.1:\d+/f/\S+$`))
		bob.ExpectLines(alice.Nick + " shared notes{1}[2].txt (11 B, sha256 b94d27b9…): " + link)

		out, err = exec.Command("curl", "--silent", "--fail", "--range", "6-", link).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		Expect(string(out)).To(Equal("world"))
	})

	It("client: leaves with exit 0 when stdin ends (Ctrl-D or a finished pipe)", Label("loopback"), SpecTimeout(specTimeout), func(ctx SpecContext) {
		_, addr := startServer()
		cmd := exec.Command(clientBin, "-addr", addr)
		stdin, err := cmd.StdinPipe()
		Expect(err).NotTo(HaveOccurred())
		client := start(cmd)
		_, err = io.WriteString(stdin, "piped line\n")
		Expect(err).NotTo(HaveOccurred())
		Expect(stdin.Close()).To(Succeed())
		Eventually(client).Should(gexec.Exit(0))
		Expect(client.Out).To(gbytes.Say("^Connected to server\n"))
		Expect(client.Out).To(gbytes.Say("guest-1: piped line\n$"))
	})

	It("client: explains an unreachable server in one line, with no Go stack trace, and exits 1", Label("loopback"), SpecTimeout(specTimeout), func(ctx SpecContext) {
		addr := closedPort(&loopback{})
		client := start(exec.Command(clientBin, "-addr", addr))
		Eventually(client).Should(gexec.Exit(1))
		Expect(string(client.Err.Contents())).To(Equal("Error: cannot connect to " + addr + ": connection refused\n"))
	})

	It("history: every message any client received survives kill -9 of the server, in order and without duplicates, crash after crash", Label("loopback"), SpecTimeout(3*time.Minute), func(ctx SpecContext) {
		dir := GinkgoT().TempDir()
		liveLine := regexp.MustCompile(`^guest-\d+: (c\d-\d-\d+)$`)
		var mu sync.Mutex
		received := map[string]bool{} // every chat line any client received live, across crashes

		const cycles, clients, lines = 3, 3, 300
		for cycle := range cycles {
			By(fmt.Sprintf("crash %d of %d", cycle+1, cycles))
			server, addr := startServerIn(dir, "-rate", "0") // as fast as the clients can go
			var count atomic.Int64
			var wg sync.WaitGroup
			tcs := make([]*testClient, clients)
			for c := range tcs {
				conn, err := net.Dial("tcp", addr)
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(func() { _ = conn.Close() })
				tcs[c] = newTestClient(conn)
			}
			for c, tc := range tcs {
				conn := tc.conn
				wg.Go(func() { // writer: stops at the first error, which the kill causes
					for i := range lines {
						if _, err := fmt.Fprintf(conn, "c%d-%d-%d\n", cycle, c, i); err != nil {
							return
						}
					}
				})
				wg.Go(func() { // reader: records live chat lines until the connection dies
					for {
						l, err := tc.ReadLine()
						if err != nil {
							return
						}
						if m := liveLine.FindStringSubmatch(l); m != nil {
							mu.Lock()
							received[m[1]] = true
							mu.Unlock()
							count.Add(1)
						}
					}
				})
			}
			Eventually(count.Load).Should(BeNumerically(">=", lines/2), "chat gets going before the crash")
			server.Kill()
			Eventually(server).Should(gexec.Exit())
			wg.Wait()
		}

		By("reading the whole history back after a last restart")
		_, addr := startServerIn(dir)
		conn, err := net.Dial("tcp", addr)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = conn.Close() })
		reader := newTestClient(conn)
		reader.SwitchToJSON()
		var stored []protocol.Event
		for after, more := uint64(0), true; more; {
			reader.Command(map[string]any{"type": "resume", "room": "lobby", "after": after})
			for {
				ev := reader.Event(protocol.TypeJoin, protocol.TypeQuit)
				if ev.Type == protocol.TypeResumed {
					after, more = ev.Seq, ev.More
					break
				}
				stored = append(stored, ev)
			}
		}
		texts := map[string]bool{}
		cycle, last := 0, map[string]int{} // the crash cycle, and each sender's last line, so far
		for i, ev := range stored {
			Expect(ev.Seq).To(BeEquivalentTo(i+1), "history is numbered without gaps")
			Expect(texts).NotTo(HaveKey(ev.Text), "a message is stored once")
			texts[ev.Text] = true
			var cy, c, k int
			_, err := fmt.Sscanf(ev.Text, "c%d-%d-%d", &cy, &c, &k)
			Expect(err).NotTo(HaveOccurred(), "not a line a client sent: %q", ev.Text)
			Expect(cy).To(BeNumerically(">=", cycle), "%s, sent before a crash, stored after a line sent after it", ev.Text)
			cycle = cy
			sender := fmt.Sprintf("c%d-%d", cy, c)
			if prev, ok := last[sender]; ok {
				Expect(k).To(BeNumerically(">", prev), "%s stored after %s-%d: out of order", ev.Text, sender, prev)
			}
			last[sender] = k
		}
		// Each crash came after lines/2 receptions, and a message reaches
		// every client: at least lines/2/clients different messages a crash.
		Expect(len(received)).To(BeNumerically(">=", cycles*lines/2/clients))
		for text := range received {
			Expect(texts).To(HaveKey(text), "a message a client received is missing from history")
		}
		By(fmt.Sprintf("%d messages received live, %d stored", len(received), len(stored)))
	})
})
