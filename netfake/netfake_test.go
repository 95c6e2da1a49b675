package netfake

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestListenPortZeroPicksAFreePort(t *testing.T) {
	var n Network
	l1, err := n.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := n.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	a1, a2 := l1.Addr().(*net.TCPAddr), l2.Addr().(*net.TCPAddr)
	if a1.Port == 0 || a1.Port == a2.Port {
		t.Fatalf("ports = %d, %d; want two distinct non-zero ports", a1.Port, a2.Port)
	}
	if got := a1.String(); got != "127.0.0.1:"+itoa(a1.Port) {
		t.Fatalf("Addr().String() = %q", got)
	}
}

func itoa(i int) string { return (&net.TCPAddr{Port: i}).String()[1:] }

func TestListenOnTakenPortIsEADDRINUSE(t *testing.T) {
	var n Network
	l, err := n.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Listen("tcp", "127.0.0.1:8080")
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "listen" || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second Listen = %v; want listen *net.OpError wrapping EADDRINUSE", err)
	}
	l.Close()
	l, err = n.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatalf("Listen after Close = %v; want the port free again", err)
	}
	l.Close()
}

func TestBadAddressesFailLikePackageNet(t *testing.T) {
	var n Network
	tests := []struct {
		network, address string
	}{
		{"tcp", "no-port"},
		{"tcp", "127.0.0.1:http-ish"},
		{"tcp", "127.0.0.1:99999"},
		{"udp", "127.0.0.1:0"},
		{"tcp", "not a host:80"},
	}
	for _, tt := range tests {
		_, lerr := n.Listen(tt.network, tt.address)
		_, derr := n.Dial(tt.network, tt.address)
		_, realErr := net.Listen(tt.network, tt.address)
		for _, err := range []error{lerr, derr} {
			var oe *net.OpError
			if !errors.As(err, &oe) {
				t.Errorf("(%q, %q) = %v; want *net.OpError", tt.network, tt.address, err)
			}
		}
		if realErr == nil {
			t.Errorf("net.Listen(%q, %q) succeeded; the table is wrong", tt.network, tt.address)
		}
	}
}

func TestDialNothingListeningIsECONNREFUSED(t *testing.T) {
	var n Network
	_, err := n.Dial("tcp", "127.0.0.1:9")
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial = %v; want dial *net.OpError wrapping ECONNREFUSED", err)
	}
}

func TestDialReturnsBeforeAccept(t *testing.T) {
	n := Network{Backlog: 2}
	ln, err := n.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c1, err := n.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("first Dial = %v", err)
	}
	defer c1.Close()
	c2, err := n.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("second Dial = %v", err)
	}
	defer c2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := n.DialContext(ctx, "tcp", ln.Addr().String()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a full backlog = %v; want it to wait until the context expires", err)
	}
	s1, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	if s1.RemoteAddr().String() != c1.LocalAddr().String() {
		t.Fatalf("accepted %v; want the first dialed conn %v", s1.RemoteAddr(), c1.LocalAddr())
	}
}

func TestListenerCloseResetsPendingAndStopsAccept(t *testing.T) {
	var n Network
	ln, err := n.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ln.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read on a never-accepted conn = %v; want ECONNRESET", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v; want net.ErrClosed", err)
	}
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close = %v; want net.ErrClosed", err)
	}
	if _, err := n.Dial("tcp", ln.Addr().String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial after listener Close = %v; want ECONNREFUSED", err)
	}
}

func TestCancelledDialContext(t *testing.T) {
	var n Network
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.DialContext(ctx, "tcp", "127.0.0.1:1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("DialContext(cancelled) = %v; want context.Canceled", err)
	}
}
