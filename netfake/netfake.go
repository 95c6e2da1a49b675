// Package netfake implements an in-memory network with the semantics of TCP,
// for tests that must not depend on the machine's network stack.
//
// A [Network] hands out listeners and connections that behave like their
// loopback TCP twins, so code under test cannot tell them apart:
//
//   - addresses are *net.TCPAddr, and listening on port 0 picks a free port;
//   - each connection buffers up to [Network.BufferSize] bytes per direction, so
//     a Write returns once its bytes are buffered (unlike net.Pipe, both ends
//     may write before either reads), and blocks while the buffer is full;
//   - a listener has a backlog, so Dial returns before Accept is called;
//   - errors are the standard ones, inside *net.OpError: dialing an address
//     with no listener gives syscall.ECONNREFUSED, listening on a taken port
//     syscall.EADDRINUSE, using a closed conn or listener net.ErrClosed, a
//     passed deadline os.ErrDeadlineExceeded (a net.Error whose Timeout is
//     true), and writing to a conn whose peer has closed syscall.EPIPE;
//   - when the peer closes, Read returns the data already sent, then a bare
//     io.EOF;
//   - deadlines start no goroutine: a timer wakes blocked calls when it fires.
//
// Known differences from a real socket, which callers should not rely on
// either way: a Write to a peer that has closed fails at once with EPIPE
// (TCP may accept one more write first), and a connection closed with unread
// data does not reset its peer.
//
// The network is one flat namespace of ports: a listener on port P takes P
// for every address, and accepts dials to any IP on that port that matches
// its own IP or, if it listens on an unspecified address, to any IP.
// Host names other than "localhost" are not resolved.
package netfake

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// DefaultBufferSize is the per-direction buffer of a connection when
// [Network.BufferSize] is zero.
const DefaultBufferSize = 64 << 10

// DefaultBacklog is the number of dialed connections a listener holds for
// Accept when [Network.Backlog] is zero.
const DefaultBacklog = 128

// Ephemeral ports, as Linux's default ip_local_port_range.
const (
	firstEphemeralPort = 32768
	lastEphemeralPort  = 60999
)

// Network is an in-memory TCP network. Its zero value is ready to use; a
// Network must not be copied after first use.
type Network struct {
	// BufferSize is the number of bytes each direction of a connection
	// buffers; zero means DefaultBufferSize. Any positive value works, down
	// to 1 byte for stress tests. It must not change while the Network is in
	// use.
	BufferSize int

	// Backlog is the number of connections a listener holds before Accept;
	// zero means DefaultBacklog. A Dial to a full backlog waits for room,
	// for the listener to close, or for its context.
	Backlog int

	mu        sync.Mutex
	listeners map[int]*listener // by port
	ports     map[int]bool      // ports in use by listeners and conns
	nextPort  int
}

// Listen announces on the local address, as [net.Listen] does. The network
// must be "tcp", "tcp4" or "tcp6".
func (n *Network) Listen(network, address string) (net.Listener, error) {
	addr, err := resolve("listen", network, address, netip.IPv4Unspecified())
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.initLocked()
	if addr.Port == 0 {
		port, ok := n.allocPortLocked()
		if !ok {
			return nil, &net.OpError{Op: "listen", Net: network, Addr: addr,
				Err: &os.SyscallError{Syscall: "bind", Err: syscall.EADDRINUSE}}
		}
		addr.Port = port
	} else if n.ports[addr.Port] {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: addr,
			Err: &os.SyscallError{Syscall: "bind", Err: syscall.EADDRINUSE}}
	}
	n.ports[addr.Port] = true
	backlog := n.Backlog
	if backlog <= 0 {
		backlog = DefaultBacklog
	}
	l := &listener{
		network: n,
		addr:    addr,
		slots:   make(chan struct{}, backlog),
		queue:   make(chan *conn, backlog),
		closed:  make(chan struct{}),
	}
	n.listeners[addr.Port] = l
	return l, nil
}

// Dial connects to the address on the named network, as [net.Dial] does.
func (n *Network) Dial(network, address string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, address)
}

// DialContext connects to the address on the named network using the
// provided context, with the signature of [net.Dialer.DialContext]. The
// context bounds only the connection attempt; once connected, its expiry does
// not affect the connection.
func (n *Network) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	raddr, err := resolve("dial", network, address, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	if err != nil {
		return nil, err
	}
	refused := &net.OpError{Op: "dial", Net: network, Addr: raddr,
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: err}
	}

	n.mu.Lock()
	n.initLocked()
	l := n.listeners[raddr.Port]
	if l == nil || !l.accepts(raddr) {
		n.mu.Unlock()
		return nil, refused
	}
	port, ok := n.allocPortLocked()
	if !ok {
		n.mu.Unlock()
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr,
			Err: &os.SyscallError{Syscall: "connect", Err: syscall.EADDRNOTAVAIL}}
	}
	n.ports[port] = true
	n.mu.Unlock()

	if raddr.IP.IsUnspecified() {
		// Like a socket, dialing the unspecified address reaches this host.
		raddr.IP = net.IPv4(127, 0, 0, 1)
	}
	laddr := &net.TCPAddr{IP: raddr.IP, Port: port}
	client, server := newConnPair(laddr, raddr, n.bufferSize())
	var once sync.Once
	client.onClose = func() { once.Do(func() { n.releasePort(port) }) }

	if err := l.enqueue(ctx, server); err != nil {
		client.abort()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: ctxErr}
		}
		return nil, refused
	}
	return client, nil
}

func (n *Network) bufferSize() int {
	if n.BufferSize > 0 {
		return n.BufferSize
	}
	return DefaultBufferSize
}

// initLocked makes the zero Network usable. n.mu must be held.
func (n *Network) initLocked() {
	if n.listeners == nil {
		n.listeners = make(map[int]*listener)
		n.ports = make(map[int]bool)
	}
}

// allocPortLocked finds a free ephemeral port. n.mu must be held.
func (n *Network) allocPortLocked() (int, bool) {
	const span = lastEphemeralPort - firstEphemeralPort + 1
	for range span {
		if n.nextPort < firstEphemeralPort || n.nextPort > lastEphemeralPort {
			n.nextPort = firstEphemeralPort
		}
		port := n.nextPort
		n.nextPort++
		if !n.ports[port] {
			return port, true
		}
	}
	return 0, false
}

func (n *Network) releasePort(port int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.ports, port)
}

func (n *Network) removeListener(l *listener) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listeners[l.addr.Port] == l {
		delete(n.listeners, l.addr.Port)
		delete(n.ports, l.addr.Port)
	}
}

// resolve parses address for op the way package net reports errors, without
// touching DNS: the host must be an IP literal, "localhost" or empty (which
// means emptyHost).
func resolve(op, network, address string, emptyHost netip.Addr) (*net.TCPAddr, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &net.OpError{Op: op, Net: network, Err: net.UnknownNetworkError(network)}
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: op, Net: network, Err: err}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &net.OpError{Op: op, Net: network,
			Err: &net.AddrError{Err: "invalid port", Addr: address}}
	}
	ip := emptyHost
	switch host {
	case "":
	case "localhost":
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		ip, err = netip.ParseAddr(host)
		if err != nil {
			return nil, &net.OpError{Op: op, Net: network,
				Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		}
	}
	if ip.Is4() && network == "tcp6" || ip.Is6() && !ip.Is4In6() && network == "tcp4" {
		return nil, &net.OpError{Op: op, Net: network,
			Err: &net.AddrError{Err: "no suitable address found", Addr: host}}
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), uint16(port))), nil
}
