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
	err := ss.registerAccount(c)
	if err != nil {
		srv.log.Info("Registration refused for "+ss.addr(), "err", err)
	} else {
		srv.log.Info("Registered account " + c.Nick + " from " + ss.addr())
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.reserved, folded)
	if err != nil {
		srv.unclaim(c.Nick)
		var t throttled
		if errors.As(err, &t) {
			srv.fail(ss, protocol.CodeThrottled, "too many password attempts from %s; %v", ss.ip, t)
			return
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

// registerAccount creates the account for /register once the name is
// reserved: it looks first whether the name is registered, which costs no
// hash, then spends one of the address's password attempts, then hashes
// the password on one of the server's hashers. It is called without s.mu.
func (ss *session) registerAccount(c protocol.Command) error {
	srv := ss.srv
	switch exists, err := srv.opts.Accounts.Exists(c.Nick); {
	case err != nil:
		return err
	case exists:
		return accounts.ErrExists
	}
	if wait := srv.passwordAttempt(ss.ip, ""); wait > 0 {
		srv.log.Warn("Registrations throttled from " + ss.addr())
		return throttled(wait)
	}
	return srv.hashing(func() error { return srv.opts.Accounts.Register(c.Nick, c.Password) })
}

// throttled is the error of a registration refused for the address's
// password attempts: how long to wait.
type throttled time.Duration

func (t throttled) Error() string {
	return fmt.Sprintf("try again in %v", time.Duration(t).Round(time.Second))
}

// hashing runs f, which hashes a password, once one of the server's
// PasswordHashers is free, so that hashing never takes more of the
// machine than that, whoever asks; the caller waits meanwhile. It is
// called without s.mu.
func (s *Server) hashing(f func() error) error {
	// Waiters are bounded too: past that, a client is told to try again
	// rather than queue a hash that would run long after it left.
	if s.hashWaiting.Add(1) > int64(maxHashWaitersPerHasher*cap(s.hashers)) {
		s.hashWaiting.Add(-1)
		return errHashersBusy
	}
	select {
	case s.hashers <- struct{}{}:
		s.hashWaiting.Add(-1)
	case <-s.stopping:
		s.hashWaiting.Add(-1)
		return errors.New("the server is shutting down")
	}
	defer func() { <-s.hashers }()
	return f()
}

// maxHashWaitersPerHasher bounds the password hashes waiting for a hasher,
// per hasher.
const maxHashWaitersPerHasher = 8

// errHashersBusy is the error of a password hash refused because too many
// wait already.
var errHashersBusy = errors.New("too many password checks are waiting; try again in a moment")

// reserve holds name for ss while it registers it, or tells ss why it
// can't, and reports whether it did.
func (s *Server) reserve(ss *session, name string) bool {
	ahead := s.claimAhead(ss, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch shown, taken, err := s.claimFor(ss, name, ahead); {
	case err != nil:
		s.failClaim(ss, err)
		return false
	case taken:
		if ahead == nil {
			s.unclaim(name)
		}
		s.fail(ss, protocol.CodeNickTaken, "the nickname %s is in use; register a free one", shown)
		return false
	}
	s.reserved[protocol.Fold(name)] = ss
	return true
}

// claimAhead claims name across the cluster for ss, before s.mu is taken,
// since that is a NATS round trip: unless there is no cluster or name is
// ss's already. It returns errNameElsewhere if a client of another node
// has it, or the cluster's error if it can't say. The claim is this node's:
// a caller that then doesn't give ss the name gives it up with unclaim.
// It is called without s.mu, by ss's reader (which alone renames ss).
func (s *Server) claimAhead(ss *session, name string) error {
	if s.opts.Cluster == nil || protocol.Fold(name) == protocol.Fold(ss.nick) {
		return nil
	}
	switch ok, err := s.opts.Cluster.ClaimNick(protocol.Fold(name)); {
	case err != nil:
		return err
	case !ok:
		return errNameElsewhere
	}
	return nil
}

// errNameElsewhere is claimAhead's error for a name a client of another
// node has.
var errNameElsewhere = errors.New("the name is another node's client's")

// unclaim gives up the cluster's claim on name, claimed ahead for a client
// that did not take it after all, unless a client here holds it (the
// node's claim is then that client's). s.mu must be held.
func (s *Server) unclaim(name string) {
	if s.opts.Cluster != nil && s.holder(name) == nil {
		s.opts.Cluster.ReleaseNick(protocol.Fold(name))
	}
}

// claimFor checks, once s.mu is held, that name may be given to ss (an
// account's name): it reports whether another session here has it or is
// registering it, or, as ahead (claimAhead's answer) says, a client of
// another node has it, with the name as that holder spells it; or the
// cluster's error. s.mu must be held.
func (s *Server) claimFor(ss *session, name string, ahead error) (shown string, taken bool, err error) {
	if other := s.holder(name); other != nil && other != ss {
		return other.nickFor(name), true, nil
	}
	switch {
	case errors.Is(ahead, errNameElsewhere):
		return name, true, nil
	case ahead != nil:
		return "", false, ahead
	}
	return "", false, nil
}

// failClaim tells ss that the cluster could not say whether a name is
// free, so it is not given, and logs why. s.mu must be held.
func (s *Server) failClaim(ss *session, err error) {
	s.log.Error("Claiming a nickname in the cluster failed", "err", err)
	s.fail(ss, protocol.CodeClusterDown, "can't check that nickname right now: the cluster is unreachable")
}

// login carries out /login. The password is checked without s.mu; once
// s.mu is held, the name is checked again for anyone holding it.
func (ss *session) login(c protocol.Command) {
	srv := ss.srv
	if wait := srv.passwordAttempt(ss.ip, c.Nick); wait > 0 {
		srv.log.Warn("Login attempts throttled for " + c.Nick + " from " + ss.addr())
		srv.locked(func() {
			srv.fail(ss, protocol.CodeThrottled, "too many login attempts; try again in %v", wait.Round(time.Second))
		})
		return
	}
	err := srv.hashing(func() error { return srv.opts.Accounts.Check(c.Nick, c.Password) })
	switch {
	case errors.Is(err, accounts.ErrUnknown), errors.Is(err, accounts.ErrWrong):
		// The same answer either way, so names can't be probed.
		srv.log.Warn("Failed login for " + c.Nick + " from " + ss.addr())
		srv.locked(func() { srv.fail(ss, protocol.CodeBadLogin, "wrong name or password") })
		return
	case errors.Is(err, errHashersBusy):
		srv.locked(func() { srv.fail(ss, protocol.CodeThrottled, "%v", err) })
		return
	case err != nil:
		srv.log.Error("Checking a login failed", "err", err)
		srv.locked(func() { srv.fail(ss, protocol.CodeAccount, "can't log in right now") })
		return
	}
	srv.log.Info("Logged in " + c.Nick + " from " + ss.addr())
	ahead := srv.claimAhead(ss, c.Nick)
	srv.locked(func() {
		switch shown, taken, err := srv.claimFor(ss, c.Nick, ahead); {
		case err != nil:
			srv.failClaim(ss, err)
			return
		case taken:
			if ahead == nil {
				srv.unclaim(c.Nick)
			}
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

// passwordAttempt spends one of the password attempts (a login, or a
// registration, each a password hash) of the address ip and, for a login,
// of account from ip, and returns 0, or how long to wait if either has
// used up its attempts. An address may make twice LoginBurst attempts in
// all, and LoginBurst at any one account, both coming back at LoginRate:
// guessing stays slow, and someone guessing at an account from elsewhere
// can't lock its owner out.
func (s *Server) passwordAttempt(ip, account string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.LoginRate == rate.Inf {
		return 0
	}
	// Guessing at many names, from many addresses, can't grow the map
	// forever, nor make every attempt sweep it.
	forgetLimiters(s.logins, maxLoginLimiters)
	type key struct {
		k     string
		burst int
	}
	// The address first: once it is throttled, guessing at more names
	// creates no more limiters.
	keys := []key{{"ip:" + ip, 2 * s.opts.LoginBurst}}
	if account != "" {
		keys = append(keys, key{"account:" + protocol.Fold(account) + "@" + ip, s.opts.LoginBurst})
	}
	var taken []*rate.Reservation
	for _, k := range keys {
		lim := s.logins[k.k]
		if lim == nil {
			lim = rate.NewLimiter(s.opts.LoginRate, k.burst)
			s.logins[k.k] = lim
		}
		r := lim.Reserve()
		if d := r.Delay(); d > 0 {
			// A refused attempt spends nothing, of either allowance.
			r.Cancel()
			for _, t := range taken {
				t.Cancel()
			}
			return d
		}
		taken = append(taken, r)
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
			ss.closeFor(&leftLoginTimeout)
			ss.finish(nil) // flush the error, then close
		}
		s.mu.Unlock()
		if late {
			s.log.Warn(fmt.Sprintf("Disconnecting client %s: not logged in within %v", ss.addr(), s.opts.LoginTimeout))
		}
	})
}

// locked runs f with s.mu held.
func (s *Server) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}
