package client

import (
	"context"
	"crypto/tls"
	"net"
)

// tlsDialer dials through another Dialer and runs a TLS client handshake on
// the connection.
type tlsDialer struct {
	d   Dialer
	cfg *tls.Config
}

// TLSDialer returns a Dialer that connects through d and then speaks TLS
// with cfg. If cfg has no ServerName, the host of the address dialed is
// used. The handshake is bounded by the context of DialContext.
func TLSDialer(d Dialer, cfg *tls.Config) Dialer { return &tlsDialer{d: d, cfg: cfg} }

func (t *tlsDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	conn, err := t.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	cfg := t.cfg.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			conn.Close()
			return nil, err
		}
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err // crypto/tls errors say "tls: ..." already
	}
	return tc, nil
}
