package chat

// This file is the door: accepting connections, admitting them under the
// connection limits, completing TLS handshakes, and refusing with a reason.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat/protocol"
)

// Accept-error backoff, as nats-server does for EMFILE and the like.
const (
	acceptMinSleep = 10 * time.Millisecond
	acceptMaxSleep = time.Second
)

// refuseWriteTimeout bounds the one line written to a refused connection.
const refuseWriteTimeout = time.Second

// maxConnectLimiters is how many per-address connection-rate limiters are
// kept before idle ones are forgotten.
const maxConnectLimiters = 4096

// acceptLoop accepts connections on ln until it is closed, backing off on
// temporary errors such as running out of file descriptors.
func (s *Server) acceptLoop(ctx context.Context, ln net.Listener) error {
	sleep := time.Duration(0)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				sleep = min(max(2*sleep, acceptMinSleep), acceptMaxSleep)
				s.log.Warn("Accept failed; retrying", "err", err, "retry_in", sleep)
				t := time.NewTimer(sleep)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil
				}
				continue
			}
			return err
		}
		sleep = 0
		h, handshakes := conn.(handshaker)
		ip := s.addressOf(conn.RemoteAddr())
		if !s.admit(conn, ip, handshakes) {
			continue
		}
		if handshakes {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.startTLS(conn, h, ip)
			}()
			continue
		}
		if s.opts.Cluster != nil {
			// Naming it asks the cluster, which may take up to the
			// cluster's timeout: no one else's connection waits for it.
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.start(conn, ip)
			}()
			continue
		}
		s.start(conn, ip)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// admit applies the connection limits to a connection just accepted from
// ip, before any work is spent on it, and counts it against them; or
// refuses it and reports false. A TLS connection (handshakes) is counted
// from now, while its handshake is in progress, and its handshake against
// MaxHandshakes and MaxHandshakesPerIP too.
func (s *Server) admit(conn net.Conn, ip string, handshakes bool) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		conn.Close()
		return false
	}
	var kind, why string
	switch {
	case handshakes && s.handshaking >= s.opts.MaxHandshakes:
		kind, why = "handshakes", fmt.Sprintf("too many TLS handshakes in progress (%d)", s.opts.MaxHandshakes)
	case handshakes && s.handshakingFrom[ip] >= s.opts.MaxHandshakesPerIP:
		kind, why = "handshakes_per_ip", fmt.Sprintf("too many TLS handshakes in progress from %s (%d)", ip, s.opts.MaxHandshakesPerIP)
	default:
		// Last, so that a connection the handshake caps refuse spends no
		// token of the address's connection rate.
		kind, why = s.admitConn(ip)
	}
	if why == "" {
		s.perIP[ip]++
		s.pending++
		if handshakes {
			s.handshaking++
			s.handshakingFrom[ip]++
		}
	}
	s.mu.Unlock()
	switch {
	case why == "":
		return true
	case handshakes:
		// Nothing can be said to it before a handshake, which is what the
		// limit spares: it is closed at once.
		s.log.Warn("Refused connection from " + conn.RemoteAddr().String() + ": " + why)
		s.metrics.refused.WithLabelValues(kind).Inc()
		conn.Close()
	default:
		s.refuse(conn, kind, why)
	}
	return false
}

// unadmit takes back what admit counted for a connection from ip that
// will not become a client. s.mu must be held.
func (s *Server) unadmit(ip string) {
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// start gives a connection admitted from ip a guest name, registers it,
// greets it, and starts its reader. On a cluster node the name is claimed
// in the cluster first, without s.mu, and checked again under it; if the
// cluster can't confirm one, the connection is refused, since a name
// handed out unconfirmed could be another node's client's too.
func (s *Server) start(conn net.Conn, ip string) {
	ss := newSession(s, conn, ip)
	for {
		var name string
		var err error
		if s.opts.Cluster != nil {
			name, err = s.claimGuest()
		}
		s.mu.Lock()
		switch {
		case s.closing:
			s.unadmit(ip)
			s.pending--
			release := name != "" && s.holder(name) == nil
			s.mu.Unlock()
			if release {
				s.opts.Cluster.ReleaseNick(protocol.Fold(name))
			}
			conn.Close()
			return
		case err != nil:
			s.unadmit(ip)
			s.pending--
			s.mu.Unlock()
			s.log.Error("Claiming a guest name in the cluster failed", "err", err)
			s.refuse(conn, "cluster", "the cluster is unreachable; try again later")
			return
		case name == "":
			name = s.localGuest()
		case s.holder(name) != nil:
			// A client here took it meanwhile, and holds its claim: this
			// node's claims are one per name, so it is not released.
			s.mu.Unlock()
			continue
		}
		ss.nick = name
		break
	}
	s.pending--
	s.sessions[ss] = struct{}{}
	s.arrive(ss)
	// Added under mu, so that shutdown, which sets closing under mu, never
	// waits for readers before this one is counted.
	s.readers.Add(1)
	s.mu.Unlock()

	s.log.Info("New client connected: " + ss.addr())
	s.wg.Add(1)
	go ss.read()
}

// addressOf returns what names addr's host for the per-address limits: an
// IPv4 address, or an IPv6 address's first IPv6Prefix bits as a prefix
// ("2001:db8::/64").
func (s *Server) addressOf(addr net.Addr) string { return s.addressOfHost(hostOf(addr)) }

// addressOfHost is addressOf of a host's IP address.
func (s *Server) addressOfHost(host string) string {
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is6() || a.Is4In6() || s.opts.IPv6Prefix >= 128 {
		if err == nil {
			return a.Unmap().String()
		}
		return host
	}
	p, err := a.WithZone("").Prefix(s.opts.IPv6Prefix)
	if err != nil {
		return host
	}
	return p.String()
}

// hostOf returns the IP address part of addr.
func hostOf(addr net.Addr) string {
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// admitConn applies the connection limits to a new connection from ip and
// returns which limit refuses it and why, or "". s.mu must be held.
func (s *Server) admitConn(ip string) (kind, why string) {
	o := s.opts
	switch {
	case len(s.sessions)+s.pending >= o.MaxClients:
		return "full", fmt.Sprintf("the server is full (%d clients); try again later", o.MaxClients)
	case s.perIP[ip] >= o.MaxClientsPerIP:
		return "per_ip", fmt.Sprintf("too many connections from %s (%d); close one first", ip, o.MaxClientsPerIP)
	}
	if o.ConnectRate == rate.Inf {
		return "", ""
	}
	lim := s.connects[ip]
	if lim == nil {
		forgetLimiters(s.connects, maxConnectLimiters)
		lim = rate.NewLimiter(o.ConnectRate, o.ConnectBurst)
		s.connects[ip] = lim
	}
	if r := lim.Reserve(); r.Delay() > 0 {
		wait := r.Delay()
		r.Cancel()
		return "connect_rate", fmt.Sprintf("too many new connections from %s; try again in %v", ip, wait.Round(time.Second))
	}
	return "", ""
}

// forgetLimiters makes room in m, a map of limiters by key, once it holds
// max: it forgets the limiters that have their full burst back (forgetting
// them changes nothing), and, should that free less than a quarter of m,
// arbitrary others down to three quarters, so that the next sweep is a
// quarter of max insertions away whatever keys an attacker rotates
// through (one forgotten gets a fresh allowance, as a new key would).
// s.mu must be held.
func forgetLimiters(m map[string]*rate.Limiter, max int) {
	if len(m) < max {
		return
	}
	for k, lim := range m {
		if lim.Tokens() >= float64(lim.Burst()) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) <= max*3/4 {
			break
		}
		delete(m, k)
	}
}

// refuse tells a connection in one line why it is refused, and closes it.
// The line is written in a goroutine of its own, so that a slow peer can't
// hold up Accept.
func (s *Server) refuse(conn net.Conn, kind, why string) {
	s.log.Warn("Refused connection from " + conn.RemoteAddr().String() + ": " + why)
	s.metrics.refused.WithLabelValues(kind).Inc()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer conn.Close()
		conn.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		ev := protocol.Event{Type: protocol.TypeError, Code: protocol.CodeRefused, Text: why}
		conn.Write(ev.AppendText(nil, protocol.View{}))
	}()
}

// handshaker is a connection that negotiates before it carries data, such
// as a *tls.Conn.
type handshaker interface {
	HandshakeContext(ctx context.Context) error
}

// startTLS completes the handshake of conn, admitted from ip, within
// HandshakeTimeout, then starts its session; a client that can't or won't
// complete it is dropped and logged. It runs in its own goroutine so that a
// slow handshake can't hold up Accept.
func (s *Server) startTLS(conn net.Conn, h handshaker, ip string) {
	// Bounded by the shutdown too, which must not wait for peers that
	// keep a handshake open.
	hctx, cancel := context.WithTimeout(s.stopCtx, s.opts.HandshakeTimeout)
	err := h.HandshakeContext(hctx)
	cancel()
	s.mu.Lock()
	s.handshaking--
	if s.handshakingFrom[ip]--; s.handshakingFrom[ip] <= 0 {
		delete(s.handshakingFrom, ip)
	}
	if err != nil {
		s.unadmit(ip)
		s.pending-- // else start's, once it is a session
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("TLS handshake failed; dropping "+conn.RemoteAddr().String(), "err", err)
		s.metrics.refused.WithLabelValues("tls_handshake").Inc()
		conn.Close()
		return
	}
	s.start(conn, ip)
}
