package specs_test

import (
	"crypto/tls"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/cli"
	"github.com/natter-chat/natter/chat/cli/clientcmd"
	"github.com/natter-chat/natter/chat/client"
)

var _ = DescribeTableSubtree("Encryption with TLS", func(tr Transport) {
	var (
		nw      Network
		srv     *runningServer
		cert    *devCert
		tlsAddr string
	)

	BeforeEach(func() {
		nw = tr.New(false)
		cert = newDevCert()
		ln, err := nw.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		tlsAddr = ln.Addr().String()
		srv = startServer(nw, chat.Options{
			TLSListener:      tls.NewListener(ln, cert.ServerConfig()),
			HandshakeTimeout: 500 * time.Millisecond,
		})
	})

	It("carries the chat over TLS, in the same rooms as plain TCP clients", SpecTimeout(specTimeout), func(ctx SpecContext) {
		Eventually(srv.Log).Should(gbytes.Say(`INFO Server running on ` + tlsAddr + ` \(TLS\)`))
		conn, err := client.TLSDialer(nw, &tls.Config{RootCAs: cert.Pool}).DialContext(ctx, "tcp", tlsAddr)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = conn.Close() })
		secure := newTestClient(conn)
		plain := connect(nw, srv.Addr)
		Eventually(srv.Clients).Should(Equal(2))

		secure.Send("over TLS\n")
		plain.ExpectLines(secure.Says("over TLS"))
		plain.Send("over plain TCP\n")
		secure.ExpectLines(secure.Says("over TLS"), plain.Says("over plain TCP"))
	})

	It("lets the client command connect with -tls and -ca", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", tlsAddr, "-tls", "-ca", cert.CertFile, "-nick", "alice")
		Eventually(client.stdout).Should(gbytes.Say("^Connected to server\n"))
		client.Type("hello securely\n")
		Eventually(client.stdout).Should(gbytes.Say("alice: hello securely\n"))
	})

	It("refuses a server certificate the client does not trust", SpecTimeout(specTimeout), func(ctx SpecContext) {
		stranger := newDevCert()
		client := runCommand(clientcmd.Run, nw, "-addr", tlsAddr, "-tls", "-ca", stranger.CertFile)
		Eventually(client.ExitCode).Should(Equal(cli.ExitFailure))
		Expect(client.stderr).To(gbytes.Say(`^Error: cannot connect to ` + tlsAddr + `: tls: failed to verify certificate: x509: certificate signed by unknown authority`))
		Eventually(srv.Log).Should(gbytes.Say(`WARN TLS handshake failed; dropping 127\.0\.0\.1:\d+`))
		Expect(srv.Clients()).To(BeZero())
	})

	It("drops a plain client on the TLS port, and the client says what is likely wrong", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", tlsAddr)
		Eventually(client.ExitCode).Should(Equal(cli.ExitFailure))
		Expect(client.stderr).To(gbytes.Say(`^Error: cannot connect to ` + tlsAddr + `: the server hung up before greeting us \(is it a TLS port\? then use -tls\)\n`))
		Eventually(srv.Log).Should(gbytes.Say(`WARN TLS handshake failed; dropping 127\.0\.0\.1:\d+ err=.*first record does not look like a TLS handshake`))
	})

	It("fails clearly when a TLS client reaches the plain port", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client := runCommand(clientcmd.Run, nw, "-addr", srv.Addr, "-tls", "-ca", cert.CertFile)
		Eventually(client.ExitCode).Should(Equal(cli.ExitFailure))
		Expect(client.stderr).To(gbytes.Say(`^Error: cannot connect to ` + srv.Addr + `: tls: first record does not look like a TLS handshake\n`))
	})

	It("drops a client that does not complete its handshake in time, and serves the others", SpecTimeout(specTimeout), func(ctx SpecContext) {
		silent := &testClient{}
		conn, err := nw.DialContext(ctx, "tcp", tlsAddr)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = conn.Close() })
		silent.conn, silent.lines = conn, newLineReader(conn)
		_, err = silent.ReadLine()
		Expect(err).To(BeADisconnection())
		Eventually(srv.Log).Should(gbytes.Say(`WARN TLS handshake failed; dropping 127\.0\.0\.1:\d+ err="context deadline exceeded"`))

		plain := connect(nw, srv.Addr)
		plain.Send("fine here\n")
		plain.ExpectLines(plain.Says("fine here"))
	})
}, transports)
