package chat

// This file is the /nick command and renaming.

import (
	"errors"

	"github.com/natter-chat/natter/chat/protocol"
)

// nickRetries bounds how many times /nick looks at the accounts again
// because an account was registered meanwhile, before it looks with the
// server's lock held.
const nickRetries = 3

// nick carries out /nick. Whether name is registered is read from the
// accounts before s.mu is taken, since that may read the disk; it still
// holds once s.mu is held if no account was registered meanwhile
// (s.registrations), and a registration in progress holds its name in
// s.reserved. It is called without s.mu.
func (s *Server) nick(ss *session, name string) {
	if ev := s.loginFirst(ss, protocol.Command{Name: protocol.CmdNick}); ev != nil {
		s.locked(func() { s.sendTo(ss, ev) })
		return
	}
	bad := protocol.CheckNick(name, s.opts.MaxNickLength)
	registered := func() bool {
		if bad != nil {
			return false
		}
		ok, err := s.opts.Accounts.Exists(name)
		if err != nil {
			s.log.Error("Reading accounts failed", "err", err)
			return true // refuse rather than let a registered name be taken
		}
		return ok
	}
	var ahead error // the cluster's claim, made before the lock
	if bad == nil && name != ss.nick {
		ahead = s.claimAhead(ss, name)
	}
	use := func(registered bool) {
		if !s.nickLocked(ss, name, bad, registered, ahead) && bad == nil && ahead == nil {
			s.unclaim(name)
		}
	}
	for range nickRetries {
		before := s.registrations.Load()
		r := registered()
		s.mu.Lock()
		if s.registrations.Load() == before {
			use(r)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock() // an account was registered meanwhile: look again
	}
	// Registrations keep coming: look once more with the lock held, which
	// no registration can complete under.
	s.mu.Lock()
	defer s.mu.Unlock()
	use(registered())
}

// nickLocked is nick once s.mu is held: bad is what is wrong with name, if
// anything, registered whether it has an account, and ahead the cluster's
// answer to claiming it (claimAhead). It reports whether it renamed ss.
func (s *Server) nickLocked(ss *session, name string, bad error, registered bool, ahead error) bool {
	switch {
	case bad != nil:
		s.fail(ss, protocol.CodeBadNick, "can't use %q as a nickname: %v", name, bad)
		return false
	case name == ss.nick:
		s.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeSameNick, Text: "you are already " + name})
		return false
	}
	if other := s.holder(name); other != nil && other != ss {
		s.fail(ss, protocol.CodeNickTaken, "the nickname %s is taken", other.nickFor(name))
		return false
	}
	if registered && ss.account != protocol.Fold(name) {
		s.fail(ss, protocol.CodeNickRegistered, "the nickname %s is registered; /login %s PASSWORD to use it", name, name)
		return false
	}
	switch {
	case errors.Is(ahead, errNameElsewhere):
		s.fail(ss, protocol.CodeNickTaken, "the nickname %s is taken", name)
		return false
	case ahead != nil:
		s.failClaim(ss, ahead)
		return false
	}
	s.rename(ss, name)
	return true
}

// holder returns the session that has the nickname name, or is
// registering it, or nil. s.mu must be held.
func (s *Server) holder(name string) *session {
	folded := protocol.Fold(name)
	if ss := s.nicks[folded]; ss != nil {
		return ss
	}
	return s.reserved[folded]
}

// nickFor returns how to name name to others: as ss spells it if ss has
// it, as asked for if ss is only registering it. Server.mu must be held.
func (ss *session) nickFor(name string) string {
	if protocol.Fold(ss.nick) == protocol.Fold(name) {
		return ss.nick
	}
	return name
}

// rename gives ss the nickname name and announces it to everyone who
// shares a room with ss. s.mu must be held.
func (s *Server) rename(ss *session, name string) {
	old := ss.nick
	delete(s.nicks, protocol.Fold(old))
	if c := s.opts.Cluster; c != nil {
		if protocol.Fold(old) != protocol.Fold(name) {
			c.ReleaseNick(protocol.Fold(old))
		}
		for _, r := range ss.rooms {
			c.Leave(r.name, old)
			if err := c.Enter(r.name, name); err != nil {
				s.log.Error("Recording presence in the cluster failed", "err", err)
			}
		}
	}
	ss.nick = name
	s.nicks[protocol.Fold(name)] = ss
	s.announceAround(ss, &protocol.Event{Type: protocol.TypeNick, Time: now(), Old: old, Nick: name}, false, nil)
}
