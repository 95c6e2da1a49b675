package chat

import (
	"time"

	"github.com/natter-chat/natter/chat/protocol"
)

// pingLoop finds unresponsive JSON-format clients: it pings a client that
// has sent nothing for PingInterval and disconnects one that has sent
// nothing for twice that. It returns when the server stops.
func (s *Server) pingLoop() {
	t := time.NewTicker(s.opts.PingInterval / 4)
	defer t.Stop()
	ping := &protocol.Event{Type: protocol.TypePing}
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		now := time.Now()
		var unresponsive []*session
		s.mu.Lock()
		for ss := range s.sessions {
			if !ss.jsonOut.Load() {
				continue
			}
			silent := now.Sub(time.Unix(0, ss.lastHeard.Load()))
			switch {
			case silent >= 2*s.opts.PingInterval:
				unresponsive = append(unresponsive, ss)
			case silent >= s.opts.PingInterval && !ss.pinged:
				ss.pinged = true
				s.sendTo(ss, ping)
			case silent < s.opts.PingInterval:
				ss.pinged = false
			}
		}
		s.mu.Unlock()
		// Closed without the lock: closing a TLS connection writes to it.
		// The reader's read fails, and it takes the client out.
		for _, ss := range unresponsive {
			s.log.Warn("Disconnecting unresponsive client " + ss.addr() + ": no answer to ping")
			ss.closeFor(&leftPingTimeout)
			ss.conn.Close()
		}
	}
}
