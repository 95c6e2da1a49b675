package specs_test

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// These specs hold netfake to its promise: code can't tell it from loopback
// TCP. Each makes the same assertions on both transports.
var _ = DescribeTableSubtree("netfake and loopback TCP behave alike", func(tr Transport) {
	var nw Network

	BeforeEach(func() { nw = tr.New(false) })

	listen := func() net.Listener {
		GinkgoHelper()
		ln, err := nw.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = ln.Close() })
		return ln
	}
	// pair returns a dialed conn and its accepted twin.
	pair := func(ctx SpecContext) (client, server net.Conn) {
		GinkgoHelper()
		ln := listen()
		client, err := nw.DialContext(ctx, "tcp", ln.Addr().String())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = client.Close() })
		server, err = ln.Accept()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = server.Close() })
		return client, server
	}

	It("refuses a dial to a port nobody listens on, with ECONNREFUSED in a *net.OpError", SpecTimeout(specTimeout), func(ctx SpecContext) {
		_, err := nw.DialContext(ctx, "tcp", closedPort(nw))
		var oe *net.OpError
		Expect(errors.As(err, &oe)).To(BeTrue(), "got %T: %v", err, err)
		Expect(oe.Op).To(Equal("dial"))
		Expect(errors.Is(err, syscall.ECONNREFUSED)).To(BeTrue(), "got %v", err)
	})

	It("refuses to listen on a port in use, with EADDRINUSE in a *net.OpError", SpecTimeout(specTimeout), func(ctx SpecContext) {
		ln := listen()
		_, err := nw.Listen("tcp", ln.Addr().String())
		var oe *net.OpError
		Expect(errors.As(err, &oe)).To(BeTrue(), "got %T: %v", err, err)
		Expect(oe.Op).To(Equal("listen"))
		Expect(errors.Is(err, syscall.EADDRINUSE)).To(BeTrue(), "got %v", err)
	})

	It("rejects an address without a port, with a *net.AddrError in a *net.OpError", SpecTimeout(specTimeout), func(ctx SpecContext) {
		for _, err := range []error{
			func() error { _, err := nw.Listen("tcp", "127.0.0.1"); return err }(),
			func() error { _, err := nw.DialContext(ctx, "tcp", "127.0.0.1"); return err }(),
		} {
			var ae *net.AddrError
			Expect(errors.As(err, &ae)).To(BeTrue(), "got %T: %v", err, err)
			Expect(ae.Err).To(Equal("missing port in address"))
		}
	})

	It("gives *net.TCPAddr addresses on 127.0.0.1, the two ends mirroring each other", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client, server := pair(ctx)
		for _, a := range []net.Addr{client.LocalAddr(), client.RemoteAddr(), server.LocalAddr(), server.RemoteAddr()} {
			ta, ok := a.(*net.TCPAddr)
			Expect(ok).To(BeTrue(), "got %T", a)
			Expect(ta.IP.String()).To(Equal("127.0.0.1"))
			Expect(ta.Port).NotTo(BeZero())
		}
		Expect(client.LocalAddr().String()).To(Equal(server.RemoteAddr().String()))
		Expect(client.RemoteAddr().String()).To(Equal(server.LocalAddr().String()))
	})

	It("completes a dial before Accept is called, thanks to the backlog", SpecTimeout(specTimeout), func(ctx SpecContext) {
		ln := listen()
		c, err := nw.DialContext(ctx, "tcp", ln.Addr().String())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = c.Close() })
		_, err = c.Write([]byte("early bird\n"))
		Expect(err).NotTo(HaveOccurred())

		s, err := ln.Accept()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = s.Close() })
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(s, buf, len("early bird\n"))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(buf[:n])).To(Equal("early bird\n"))
	})

	It("lets both ends write before either reads", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client, server := pair(ctx)
		_, err := client.Write([]byte("hello"))
		Expect(err).NotTo(HaveOccurred())
		_, err = server.Write([]byte("hi"))
		Expect(err).NotTo(HaveOccurred())
		buf := make([]byte, 5)
		_, err = io.ReadFull(server, buf)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(buf)).To(Equal("hello"))
		_, err = io.ReadFull(client, buf[:2])
		Expect(err).NotTo(HaveOccurred())
		Expect(string(buf[:2])).To(Equal("hi"))
	})

	It("delivers what the peer wrote before closing, then a bare io.EOF", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client, server := pair(ctx)
		_, err := server.Write([]byte("goodbye"))
		Expect(err).NotTo(HaveOccurred())
		Expect(server.Close()).To(Succeed())
		got, err := io.ReadAll(client)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(got)).To(Equal("goodbye"))
		_, err = client.Read(make([]byte, 1))
		Expect(err).To(BeIdenticalTo(io.EOF))
	})

	It("fails a read at its deadline with os.ErrDeadlineExceeded, a net.Error whose Timeout() is true, and can read again after", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client, server := pair(ctx)
		Expect(client.SetReadDeadline(time.Now().Add(20 * time.Millisecond))).To(Succeed())
		_, err := client.Read(make([]byte, 1))
		Expect(errors.Is(err, os.ErrDeadlineExceeded)).To(BeTrue(), "got %v", err)
		var ne net.Error
		Expect(errors.As(err, &ne)).To(BeTrue())
		Expect(ne.Timeout()).To(BeTrue())

		Expect(client.SetReadDeadline(time.Time{})).To(Succeed())
		_, err = server.Write([]byte("x"))
		Expect(err).NotTo(HaveOccurred())
		_, err = client.Read(make([]byte, 1))
		Expect(err).NotTo(HaveOccurred())
	})

	It("fails reads, writes and a second Close on a closed connection with net.ErrClosed", SpecTimeout(specTimeout), func(ctx SpecContext) {
		client, _ := pair(ctx)
		Expect(client.Close()).To(Succeed())
		_, rerr := client.Read(make([]byte, 1))
		_, werr := client.Write([]byte("x"))
		for _, err := range []error{rerr, werr, client.Close()} {
			Expect(errors.Is(err, net.ErrClosed)).To(BeTrue(), "got %v", err)
		}
	})

	It("fails Accept with net.ErrClosed once the listener is closed", SpecTimeout(specTimeout), func(ctx SpecContext) {
		ln := listen()
		accepted := make(chan error, 1)
		go func() {
			_, err := ln.Accept()
			accepted <- err
		}()
		Expect(ln.Close()).To(Succeed())
		var err error
		Eventually(accepted).Should(Receive(&err))
		Expect(errors.Is(err, net.ErrClosed)).To(BeTrue(), "got %v", err)
	})

	It("resets a connection still waiting in the backlog when the listener closes", SpecTimeout(specTimeout), func(ctx SpecContext) {
		ln := listen()
		c, err := nw.DialContext(ctx, "tcp", ln.Addr().String())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = c.Close() })
		Expect(ln.Close()).To(Succeed())
		Expect(c.SetReadDeadline(time.Now().Add(readTimeout))).To(Succeed())
		_, err = c.Read(make([]byte, 1))
		Expect(errors.Is(err, syscall.ECONNRESET)).To(BeTrue(), "got %v", err)
	})
}, transports)
