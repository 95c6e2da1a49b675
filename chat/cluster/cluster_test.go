package cluster

import (
	"context"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/chat/history"
)

func startNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS did not start")
	}
	return ns
}

// connectNode joins a node to the cluster on ns, closing it at cleanup.
func connectNode(t *testing.T, ns *natsserver.Server) *Node {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	n, err := Join(context.Background(), nc, Config{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// join is connectNode with the node's Run going until cleanup.
func join(t *testing.T, ns *natsserver.Server) *Node {
	t.Helper()
	n := connectNode(t, ns)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx, func(history.Message) {})
	}()
	t.Cleanup(func() { // before connectNode's: Run ends, then the node closes
		cancel()
		<-done
	})
	return n
}

func TestANicknameIsClaimedByOneNodeAtATime(t *testing.T) {
	ns := startNATS(t)
	a, b := join(t, ns), join(t, ns)
	claim := func(n *Node, want bool) {
		t.Helper()
		start := time.Now()
		ok, err := n.ClaimNick("alice")
		if err != nil || ok != want {
			t.Fatalf("ClaimNick = %v, %v after %v; want %v", ok, err, time.Since(start), want)
		}
	}
	claim(a, true)
	claim(a, true) // its own
	claim(b, false)
	a.ReleaseNick("alice")
	// ReleaseNick does not wait for NATS: the release is written soon
	// after. Each try is a round trip to NATS.
	for deadline := time.Now().Add(5 * time.Second); ; {
		ok, err := b.ClaimNick("alice")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b could not claim alice within 5s of its release")
		}
	}
	claim(b, true) // its own now
	claim(a, false)
}
