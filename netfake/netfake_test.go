package netfake

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
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

func TestCancelledDialContext(t *testing.T) {
	var n Network
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.DialContext(ctx, "tcp", "127.0.0.1:1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("DialContext(cancelled) = %v; want context.Canceled", err)
	}
}
