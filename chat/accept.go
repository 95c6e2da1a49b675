package chat

// This file is the door: accepting connections, admitting them under the
// connection limits, completing TLS handshakes, and refusing with a reason.

import (
	"context"
	"errors"
	"fmt"
	"net"
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
		if h, ok := conn.(handshaker); ok {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.startTLS(ctx, conn, h)
			}()
			continue
		}
		s.start(conn)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// start registers a new connection, greets it, and starts its reader and
// writer.
func (s *Server) start(conn net.Conn) {
	ss := newSession(s, conn)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		conn.Close()
		return
	}
	if kind, why := s.admitConn(ss.ip); why != "" {
		s.mu.Unlock()
		s.refuse(conn, kind, why)
		return
	}
	s.perIP[ss.ip]++
	s.sessions[ss] = struct{}{}
	s.arrive(ss)
	// Added under mu, so that shutdown, which sets closing under mu, never
	// waits for readers before this one is counted.
	s.readers.Add(1)
	s.mu.Unlock()

	s.log.Info("New client connected: " + ss.addr)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.readers.Done()
		ss.readLoop()
	}()
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
	case len(s.sessions) >= o.MaxClients:
		return "full", fmt.Sprintf("the server is full (%d clients); try again later", o.MaxClients)
	case s.perIP[ip] >= o.MaxClientsPerIP:
		return "per_ip", fmt.Sprintf("too many connections from %s (%d); close one first", ip, o.MaxClientsPerIP)
	}
	if o.ConnectRate == rate.Inf {
		return "", ""
	}
	lim := s.connects[ip]
	if lim == nil {
		if len(s.connects) >= maxConnectLimiters {
			s.forgetIdleLimiters()
		}
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

// forgetIdleLimiters drops the limiters of addresses that have not
// connected for long enough to have their full burst back: forgetting them
// changes nothing. s.mu must be held.
func (s *Server) forgetIdleLimiters() {
	for ip, lim := range s.connects {
		if lim.Tokens() >= float64(s.opts.ConnectBurst) {
			delete(s.connects, ip)
		}
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

// startTLS completes conn's handshake within HandshakeTimeout, then starts
// its session; a client that can't or won't complete it is dropped and
// logged. It runs in its own goroutine so that a slow handshake can't hold
// up Accept.
func (s *Server) startTLS(ctx context.Context, conn net.Conn, h handshaker) {
	hctx, cancel := context.WithTimeout(ctx, s.opts.HandshakeTimeout)
	err := h.HandshakeContext(hctx)
	cancel()
	if err != nil {
		s.log.Warn("TLS handshake failed; dropping "+conn.RemoteAddr().String(), "err", err)
		s.metrics.refused.WithLabelValues("tls_handshake").Inc()
		conn.Close()
		return
	}
	s.start(conn)
}
