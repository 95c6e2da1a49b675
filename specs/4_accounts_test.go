package specs_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/natter-chat/natter/chat"
)

var _ = DescribeTableSubtree("Accounts", func(tr Transport) {
	var (
		nw  Network
		srv *runningServer
	)
	const password = "correct horse battery"

	serve := func(opts chat.Options) {
		GinkgoHelper()
		nw = tr.New(false)
		srv = startServer(nw, opts)
	}

	It("registers a nickname with a password, logs the client in, and warns that it crossed plain TCP", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{})
		alice := connectAll(srv, nw, 1)[0]
		old := alice.Nick
		alice.Send("/register alice " + password + "\n")
		alice.ExpectExactly(
			"*** warning: your password crossed the network unencrypted; connect with TLS next time",
			"*** registered alice; you are logged in",
			"*** "+old+" is now alice")
	})

	It("keeps a registered nickname for its owner: nobody else may take it", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{})
		cs := connectAll(srv, nw, 2)
		alice, bob := cs[0], cs[1]
		alice.Send("/register alice " + password + "\n")
		alice.ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered alice; you are logged in")
		bob.Send("/nick alice\n")
		bob.ExpectLines("*** error: the nickname alice is taken")

		Expect(alice.conn.Close()).To(Succeed())
		Eventually(srv.Clients).Should(Equal(1))
		bob.Send("/nick ALICE\n")
		bob.ExpectLines("*** error: the nickname ALICE is registered; /login ALICE PASSWORD to use it")
		bob.Send("/register alice another password\n")
		bob.ExpectLines("*** error: can't register alice: that name is already registered")
	})

	It("logs in to an account from a new connection and gives it the account's nickname", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{})
		first := connectAll(srv, nw, 1)[0]
		first.Send("/register alice " + password + "\n")
		first.ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered alice; you are logged in")
		Expect(first.conn.Close()).To(Succeed())
		Eventually(srv.Clients).Should(BeZero())

		again := connectAll(srv, nw, 1)[0]
		again.Send("/login ALICE " + password + "\n")
		again.ExpectExactly(
			"*** warning: your password crossed the network unencrypted; connect with TLS next time",
			"*** logged in as ALICE",
			"*** "+again.Nick+" is now ALICE")
	})

	It("answers a wrong password and an unknown name alike", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{})
		cs := connectAll(srv, nw, 2)
		cs[0].Send("/register alice " + password + "\n")
		cs[0].ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered alice; you are logged in")
		cs[1].Send("/login alice not the password\n")
		cs[1].ExpectLines("*** error: wrong name or password")
		cs[1].Send("/login nosuchperson whatever123\n")
		cs[1].ExpectLines("*** error: wrong name or password")
		Expect(srv.Log).To(gbytes.Say(`WARN Failed login for alice from ` + cs[1].Name()))
	})

	It("slows down password guessing: past a few attempts, even the right password waits", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{LoginBurst: 2, LoginRate: 0.001})
		cs := connectAll(srv, nw, 2)
		cs[0].Send("/register alice " + password + "\n")
		cs[0].ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered alice; you are logged in")
		Expect(cs[0].conn.Close()).To(Succeed())

		guesser := cs[1]
		for _, guess := range []string{"password1", "letmein123"} {
			guesser.Send("/login alice " + guess + "\n")
			guesser.ExpectLines("*** error: wrong name or password")
		}
		guesser.Send("/login alice " + password + "\n")
		l, err := guesser.NextLine()
		Expect(err).NotTo(HaveOccurred())
		Expect(l).To(MatchRegexp(`^\*\*\* error: too many login attempts; try again in (\d+m)?\d+s$`))
	})

	It("never writes a password to the log", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{})
		alice := connectAll(srv, nw, 1)[0]
		alice.Send("/register alice " + password + "\n/login alice wrong-password-1\n/login alice " + password + "\n")
		alice.ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered alice; you are logged in")
		alice.ExpectLines("*** error: wrong name or password")
		alice.Send("done\n")
		Eventually(func() string {
			l, err := alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			return l
		}).Should(Equal("alice: done"))
		// The log holds what the server did with those lines, so it had the
		// chance to give the passwords away.
		Expect(srv.Log).To(gbytes.Say(`WARN Failed login for alice from ` + alice.Name()))
		Expect(string(srv.Log.Contents())).NotTo(ContainSubstring(password))
		Expect(string(srv.Log.Contents())).NotTo(ContainSubstring("wrong-password-1"))
	})

	Context("when the server requires a login", func() {
		It("lets a client do nothing but log in or register first, then puts it in the lobby", SpecTimeout(specTimeout), func(ctx SpecContext) {
			serve(chat.Options{RequireAuth: true})
			conn, err := nw.DialContext(ctx, "tcp", srv.Addr)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _ = conn.Close() })
			c := &testClient{conn: conn, lines: newLineReader(conn)}
			l, err := c.ReadLine()
			Expect(err).NotTo(HaveOccurred())
			Expect(l).To(HavePrefix("*** Welcome, guest-1! You are in no room. "))
			c.ExpectExactly("*** this server requires an account: /login NAME PASSWORD or /register NAME PASSWORD, within 1m0s")

			c.Send("hello?\n/join games\n")
			c.ExpectExactly(
				"*** error: log in first: /login NAME PASSWORD, or /register NAME PASSWORD",
				"*** error: log in first: /login NAME PASSWORD, or /register NAME PASSWORD")
			c.Send("/register alice " + password + "\n")
			c.ExpectLines("*** warning: your password crossed the network unencrypted; connect with TLS next time", "*** registered alice; you are logged in")
			c.Nick = "alice"
			c.Send("hello!\n")
			c.ExpectLines("*** you are now talking in #lobby", "alice: hello!")
		})

		It("disconnects a client that does not log in in time", SpecTimeout(specTimeout), func(ctx SpecContext) {
			serve(chat.Options{RequireAuth: true, LoginTimeout: 300 * time.Millisecond})
			conn, err := nw.DialContext(ctx, "tcp", srv.Addr)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _ = conn.Close() })
			c := &testClient{conn: conn, lines: newLineReader(conn)}
			lines := c.ExpectDisconnected()
			Expect(lines).To(HaveLen(3))
			Expect(lines[2]).To(Equal("*** error: not logged in within 300ms; disconnecting"))
			Eventually(srv.Log).Should(gbytes.Say(`WARN Disconnecting client 127\.0\.0\.1:\d+: not logged in within 300ms`))
		})
	})
}, transports)
