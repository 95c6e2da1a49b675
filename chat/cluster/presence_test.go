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

func TestANodeWhoseLivenessLapsedClaimsItsKeysAgainAndLosesWhatWasTaken(t *testing.T) {
	ns := startNATS(t)
	const ttl = 1500 * time.Millisecond
	a := joinWith(t, ns, Config{Timeout: 2 * time.Second, PresenceTTL: ttl})
	b := joinWith(t, ns, Config{Timeout: 2 * time.Second, PresenceTTL: ttl})
	lost := make(chan string, 2)
	a.OnClaimLost(func(nick string) { lost <- nick })
	for _, nick := range []string{"alice", "bob"} {
		if ok, err := a.ClaimNick(nick); !ok || err != nil {
			t.Fatalf("ClaimNick(%s) = %v, %v", nick, ok, err)
		}
	}
	a.Enter("lobby", "bob")
	waitFor(t, 5*time.Second, "b sees bob in the lobby", func() bool {
		m, err := b.Members("lobby")
		return err == nil && len(m) == 1 && m[0] == "bob"
	})

	// As if a stalled past the TTL: its liveness key is gone, its claims
	// were reaped, and b's client took alice meanwhile.
	ctx := context.Background()
	a.mu.Lock()
	old := a.p.token
	a.mu.Unlock()
	if err := a.nodes.Purge(ctx, liveKey(old)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "alice reaped", func() bool {
		_, err := b.claims.Get(ctx, "nick.alice")
		return err != nil
	})
	if ok, err := b.ClaimNick("alice"); !ok || err != nil {
		t.Fatalf("b's ClaimNick(alice) = %v, %v", ok, err)
	}

	select {
	case nick := <-lost:
		if nick != "alice" {
			t.Fatalf("lost %q, want alice", nick)
		}
	case <-time.After(3 * ttl):
		t.Fatal("a was not told it lost alice")
	}
	// bob, which no one took, is a's again, under a new token, and b
	// lists him in the lobby again.
	var token string
	waitFor(t, 3*ttl, "a takes a new token", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		token = a.p.token
		return token != old
	})
	waitFor(t, 5*time.Second, "bob claimed again", func() bool {
		e, err := b.claims.Get(ctx, "nick.bob")
		return err == nil && string(e.Value()) == token
	})
	waitFor(t, 5*time.Second, "b lists bob again", func() bool {
		m, err := b.Members("lobby")
		return err == nil && len(m) == 1 && m[0] == "bob"
	})
	if ok, _ := b.ClaimNick("bob"); ok {
		t.Fatal("b could claim bob, a's again")
	}
	select {
	case nick := <-lost:
		t.Fatalf("a lost %q too", nick)
	default:
	}
}
