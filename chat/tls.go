package chat

import (
	"context"
	"net"
)

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
