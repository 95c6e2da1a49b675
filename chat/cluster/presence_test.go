package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// joinWith joins a node with cfg to the cluster on ns, closing it at
// cleanup.
func joinWith(t testing.TB, ns *natsserver.Server, cfg Config) *Node {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	n, err := Join(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitFor waits until cond holds, or fails t after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// inMsgs returns how many messages the NATS server has received.
func inMsgs(t testing.TB, ns *natsserver.Server) int64 {
	t.Helper()
	v, err := ns.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return v.InMsgs
}

func TestRenewingCostsNATSTheSameWhateverTheNumberOfClients(t *testing.T) {
	ns := startNATS(t)
	const ttl = 1500 * time.Millisecond
	n := joinWith(t, ns, Config{Timeout: 2 * time.Second, PresenceTTL: ttl})
	const clients, rooms = 200, 4
	for i := range clients {
		nick := fmt.Sprintf("user%d", i)
		if ok, err := n.ClaimNick(nick); !ok || err != nil {
			t.Fatalf("ClaimNick(%s) = %v, %v", nick, ok, err)
		}
		for r := range rooms {
			n.Enter(fmt.Sprintf("room%d", r), nick)
		}
	}
	keys := clients * (1 + rooms)
	waitFor(t, 10*time.Second, "every client listed", func() bool {
		m, err := n.Members("room3")
		return err == nil && len(m) == clients
	})
	// Two renewals, from the start of one to the end of the next.
	renewed := func() int64 { return n.renewedAt.Load() }
	first := renewed()
	waitFor(t, 2*ttl, "a renewal", func() bool { return renewed() != first })
	before, from := inMsgs(t, ns), renewed()
	waitFor(t, 2*ttl, "a renewal", func() bool { return renewed() != from })
	second := renewed()
	waitFor(t, 2*ttl, "a renewal", func() bool { return renewed() != second })
	sent := inMsgs(t, ns) - before
	// A renewal of each key would be keys messages per renewal. Whatever
	// else the node sends (pull requests, flow control) is far fewer.
	if sent >= int64(keys)/10 {
		t.Fatalf("two renewals of %d keys sent NATS %d messages; want fewer than %d", keys, sent, keys/10)
	}
	t.Logf("two renewals of %d keys sent NATS %d messages", keys, sent)
}
