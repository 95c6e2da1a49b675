package specs_test

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"syscall"

	. "github.com/onsi/ginkgo/v2"

	"github.com/natter-chat/natter/netfake"
)

// Network is what a spec needs of a transport: somewhere to listen and a way
// to dial. *netfake.Network is one; loopback is the other.
type Network interface {
	Listen(network, address string) (net.Listener, error)
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Transport makes a fresh Network for each spec.
type Transport struct {
	// New returns a network whose connections buffer as little as the
	// transport allows when small is set, so that a client that stops
	// reading backs up quickly.
	New func(small bool) Network
}

// transports are the table entries every behavioural spec runs over.
var transports = []TableEntry{
	Entry("over netfake", Label("netfake"), Transport{New: func(small bool) Network {
		if small {
			return &netfake.Network{BufferSize: smallBuffer}
		}
		return &netfake.Network{}
	}}),
	Entry("over loopback TCP", Label("loopback"), Transport{New: func(small bool) Network {
		return &loopback{small: small}
	}}),
}

// smallBuffer is the socket buffer size asked for on small networks. Linux
// doubles it and enforces a minimum, so kernel buffering stays in the tens
// of kilobytes.
const smallBuffer = 4096

// loopback is real TCP on 127.0.0.1.
type loopback struct {
	small bool
}

func (l *loopback) Listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil || !l.small {
		return ln, err
	}
	return smallListener{ln.(*net.TCPListener)}, nil
}

func (l *loopback) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d := &net.Dialer{}
	if l.small {
		// The receive buffer must be set before connecting to limit the
		// window the peer is offered.
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, smallBuffer)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d.DialContext(ctx, network, address)
}

// smallListener gives accepted connections a small send buffer.
type smallListener struct{ *net.TCPListener }

func (s smallListener) Accept() (net.Conn, error) {
	c, err := s.AcceptTCP()
	if err != nil {
		return nil, err
	}
	if err := c.SetWriteBuffer(smallBuffer); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// failingAccepts fails a listener's first few Accept calls with EMFILE, the
// error a server sees when it runs out of file descriptors.
type failingAccepts struct {
	Network
	failures int32
}

func (f *failingAccepts) Listen(network, address string) (net.Listener, error) {
	ln, err := f.Network.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &failingListener{Listener: ln, failures: &f.failures}, nil
}

type failingListener struct {
	net.Listener
	failures *int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if atomic.AddInt32(l.failures, -1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(),
			Err: os.NewSyscallError("accept", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// fromAddrs is a network whose listeners report their connections as
// coming from addrs, in turn (the last one from then on), as a server
// behind many addresses would see them.
type fromAddrs struct {
	Network
	addrs []string
	next  atomic.Int32
}

func (f *fromAddrs) Listen(network, address string) (net.Listener, error) {
	ln, err := f.Network.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &addressedListener{Listener: ln, f: f}, nil
}

type addressedListener struct {
	net.Listener
	f *fromAddrs
}

func (l *addressedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	i := min(int(l.f.next.Add(1))-1, len(l.f.addrs)-1)
	addr, err := net.ResolveTCPAddr("tcp", l.f.addrs[i])
	if err != nil {
		c.Close()
		return nil, err
	}
	return addressedConn{Conn: c, remote: addr}, nil
}

// addressedConn is a connection with another remote address.
type addressedConn struct {
	net.Conn
	remote net.Addr
}

func (c addressedConn) RemoteAddr() net.Addr { return c.remote }
