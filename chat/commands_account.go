package chat

// This file is accounts: /register, /login, and what -require-auth asks
// of a client before anything else.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat/accounts"
	"github.com/natter-chat/natter/chat/protocol"
)

// maxLoginLimiters is how many login-attempt limiters are kept before
// idle ones are forgotten.
const maxLoginLimiters = 4096

// authenticate carries out /register and /login. The password hash is
// computed without holding s.mu: bcrypt is slow on purpose, and the rest of
// the chat must not wait for it.
func (ss *session) authenticate(c protocol.Command) {
	srv := ss.srv
	if err := protocol.CheckNick(c.Nick, srv.opts.MaxNickLength); err != nil {
		srv.locked(func() { srv.fail(ss, protocol.CodeBadNick, "can't use %q as a nickname: %v", c.Nick, err) })
		return
	}
	if c.Name == protocol.CmdRegister {
		ss.register(c)
	} else {
		ss.login(c)
	}
}

// register carries out /register. The name is reserved for ss while its
// password is hashed and stored, so that no one can take it meanwhile.
func (ss *session) register(c protocol.Command) {
	srv := ss.srv
	folded := protocol.Fold(c.Nick)
	if !srv.reserve(ss, c.Nick) {
		return
	}
	err := srv.opts.Accounts.Register(c.Nick, c.Password)
	if err != nil {
		srv.log.Info("Registration refused for "+ss.addr, "err", err)
	} else {
		srv.log.Info("Registered account " + c.Nick + " from " + ss.addr)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.reserved, folded)
	if err != nil {
		if srv.opts.Cluster != nil && folded != protocol.Fold(ss.nick) {
			srv.opts.Cluster.ReleaseNick(folded)
		}
		srv.fail(ss, protocol.CodeAccount, "can't register %s: %v", c.Nick, err)
		return
	}
	srv.registrations.Add(1)
	ss.warnIfPlain()
	if other := srv.nicks[folded]; other != nil && other != ss {
		// The reservation kept everyone else off the name; should that
		// ever fail, the account is still this client's to log in to.
		srv.fail(ss, protocol.CodeNickTaken, "registered %s, but the nickname is in use; /login %s PASSWORD once it is free", c.Nick, c.Nick)
		return
	}
	srv.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeRegistered, Text: "registered " + c.Nick + "; you are logged in"})
	srv.loggedIn(ss, c.Nick)
}

// reserve holds name for ss while it registers it, or tells ss why it
// can't, and reports whether it did.
func (s *Server) reserve(ss *session, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if shown, taken := s.claimFor(ss, name); taken {
		s.fail(ss, protocol.CodeNickTaken, "the nickname %s is in use; register a free one", shown)
		return false
	}
	s.reserved[protocol.Fold(name)] = ss
	return true
}

// claimFor claims name for ss, which the server is about to give it (an
// account's name): it reports whether another session here has it or is
// registering it, or a client of another node has it, with the name as
// that holder spells it. s.mu must be held.
func (s *Server) claimFor(ss *session, name string) (shown string, taken bool) {
	if other := s.holder(name); other != nil && other != ss {
		return other.nickFor(name), true
	}
	if protocol.Fold(name) != protocol.Fold(ss.nick) && !s.claimCluster(name) {
		return name, true
	}
	return "", false
}

// login carries out /login. The password is checked without s.mu; once
// s.mu is held, the name is checked again for anyone holding it.
func (ss *session) login(c protocol.Command) {
	srv := ss.srv
	if wait := srv.loginAllowed(c.Nick, ss.ip); wait > 0 {
		srv.log.Warn("Login attempts throttled for " + c.Nick + " from " + ss.addr)
		srv.locked(func() {
			srv.fail(ss, protocol.CodeThrottled, "too many login attempts; try again in %v", wait.Round(time.Second))
		})
		return
	}
	err := srv.opts.Accounts.Check(c.Nick, c.Password)
	switch {
	case errors.Is(err, accounts.ErrUnknown), errors.Is(err, accounts.ErrWrong):
		// The same answer either way, so names can't be probed.
		srv.log.Warn("Failed login for " + c.Nick + " from " + ss.addr)
		srv.locked(func() { srv.fail(ss, protocol.CodeBadLogin, "wrong name or password") })
		return
	case err != nil:
		srv.log.Error("Checking a login failed", "err", err)
		srv.locked(func() { srv.fail(ss, protocol.CodeAccount, "can't log in right now") })
		return
	}
	srv.log.Info("Logged in " + c.Nick + " from " + ss.addr)
	srv.locked(func() {
		if shown, taken := srv.claimFor(ss, c.Nick); taken {
			srv.fail(ss, protocol.CodeAccount, "%s is logged in on another connection", shown)
			return
		}
		ss.warnIfPlain()
		srv.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeLoggedIn, Text: "logged in as " + c.Nick})
		srv.loggedIn(ss, c.Nick)
	})
}

// loggedIn makes ss the owner of account and gives it the account's
// nickname; a client that had to log in first now enters the lobby.
// s.mu must be held.
func (s *Server) loggedIn(ss *session, account string) {
	ss.account = protocol.Fold(account)
	if ss.loginTimer != nil {
		ss.loginTimer.Stop()
	}
	if ss.nick != account {
		s.rename(ss, account) // claimed in the cluster by register or login
	}
	if ss.rooms == nil {
		// Read under s.mu, like the replay of a client arriving.
		s.joinLocked(ss, s.lobby.name, s.readLatest(s.lobby.name, s.opts.HistoryOnJoin, true))
	}
}

// warnIfPlain tells a client that sent a password without TLS. s.mu must
// be held.
func (ss *session) warnIfPlain() {
	if _, ok := ss.conn.(*tls.Conn); !ok {
		ss.srv.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodePlaintextPassword,
			Text: "warning: your password crossed the network unencrypted; connect with TLS next time"})
	}
}

// loginAllowed spends a login attempt for account from ip, and returns 0,
// or how long to wait if either has used up its attempts.
func (s *Server) loginAllowed(account, ip string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.LoginRate == rate.Inf {
		return 0
	}
	if len(s.logins) >= maxLoginLimiters {
		// Forget keys that have their full allowance back: nothing changes
		// for them, and guessing at many names can't grow the map forever.
		for k, lim := range s.logins {
			if lim.Tokens() >= float64(s.opts.LoginBurst) {
				delete(s.logins, k)
			}
		}
	}
	// The address first: once it is throttled, guessing at more names
	// creates no more limiters.
	for _, k := range []string{"ip:" + ip, "account:" + protocol.Fold(account)} {
		lim := s.logins[k]
		if lim == nil {
			lim = rate.NewLimiter(s.opts.LoginRate, s.opts.LoginBurst)
			s.logins[k] = lim
		}
		r := lim.Reserve()
		if d := r.Delay(); d > 0 {
			r.Cancel()
			return d
		}
	}
	return 0
}

// requireLogin refuses a command from a client that must log in first, and
// reports whether it did. s.mu must be held.
func (s *Server) requireLogin(ss *session, c protocol.Command) bool {
	if ev := s.loginFirst(ss, c); ev != nil {
		s.sendTo(ss, ev)
		return true
	}
	return false
}

// loginFirst returns the refusal of c from ss if ss must log in before it,
// or nil. It reads only what ss's own reader changes, so that reader may
// call it without s.mu.
func (s *Server) loginFirst(ss *session, c protocol.Command) *protocol.Event {
	if !s.opts.RequireAuth || ss.account != "" {
		return nil
	}
	switch c.Name {
	case protocol.CmdQuit, protocol.CmdHelp, protocol.CmdFormat, protocol.CmdPong:
		return nil
	}
	return refusal(protocol.CodeLoginRequired, "log in first: /login NAME PASSWORD, or /register NAME PASSWORD")
}

// startLoginClock disconnects ss if it has not logged in within
// LoginTimeout. s.mu must be held.
func (s *Server) startLoginClock(ss *session) {
	ss.loginTimer = time.AfterFunc(s.opts.LoginTimeout, func() {
		s.mu.Lock()
		late := ss.account == "" && !s.closing
		if late {
			s.fail(ss, protocol.CodeLoginRequired, "not logged in within %v; disconnecting", s.opts.LoginTimeout)
			ss.closeFor(leftLoginTimeout)
			ss.finish(nil) // flush the error, then close
		}
		s.mu.Unlock()
		if late {
			s.log.Warn(fmt.Sprintf("Disconnecting client %s: not logged in within %v", ss.addr, s.opts.LoginTimeout))
		}
	})
}

// locked runs f with s.mu held.
func (s *Server) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}
