package specs_test

import (
	"io"
	"net"
	"os/exec"
	"regexp"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"
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
	startServer := func() (*gexec.Session, string) {
		GinkgoHelper()
		s := start(exec.Command(serverBin, "-addr", "127.0.0.1:0", "-data-dir", GinkgoT().TempDir()))
		running := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO Server running on (127\.0\.0\.1:\d+)\n`)
		Eventually(s.Err).Should(gbytes.Say(running.String()))
		return s, running.FindStringSubmatch(string(s.Err.Contents()))[1]
	}

	It("chat: the server logs where it runs, a client and a raw TCP (nc-style) connection talk, and SIGTERM stops it with exit 0", Label("loopback"), SpecTimeout(specTimeout), func(ctx SpecContext) {
		server, addr := startServer()

		cmd := exec.Command(clientBin, "-addr", addr, "-nick", "alice")
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
})
