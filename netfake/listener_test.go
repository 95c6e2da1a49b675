package netfake

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

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
