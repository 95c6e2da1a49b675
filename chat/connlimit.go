package chat

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat/protocol"
)

// refuseWriteTimeout bounds the one line written to a refused connection.
const refuseWriteTimeout = time.Second

// maxConnectLimiters is how many per-address connection-rate limiters are
// kept before idle ones are forgotten.
const maxConnectLimiters = 4096

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
// It runs in its own goroutine so that a slow peer can't hold up Accept.
func (s *Server) refuse(conn net.Conn, kind, why string) {
	s.log.Warn("Refused connection from " + conn.RemoteAddr().String() + ": " + why)
	s.metrics.refused.WithLabelValues(kind).Inc()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer conn.Close()
		conn.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		ev := protocol.Event{Type: protocol.TypeError, Code: codeRefused, Text: why}
		conn.Write(ev.AppendText(nil, protocol.View{}))
	}()
}
