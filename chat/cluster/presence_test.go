package cluster

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/netfake"
	"github.com/natter-chat/natter/netfake/link"
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

// holdsFor checks that cond holds, every 10ms, for d, and fails t if it
// does not.
func holdsFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		if !cond() {
			t.Fatalf("%s: no longer", what)
		}
		select {
		case <-tick.C:
		case <-end.C:
			return
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

func TestANicknameReleasedAndClaimedAgainAtOnceStaysClaimed(t *testing.T) {
	ns := startNATS(t)
	a := joinWith(t, ns, Config{Timeout: 2 * time.Second})
	b := joinWith(t, ns, Config{Timeout: 2 * time.Second})
	if ok, err := a.ClaimNick("alice"); !ok || err != nil {
		t.Fatalf("ClaimNick(alice) = %v, %v", ok, err)
	}
	// The release waits in a's queue behind a thousand writes, while
	// alice is claimed again on a.
	for i := range 1000 {
		a.Enter("lobby", fmt.Sprintf("user%d", i))
	}
	a.ReleaseNick("alice")
	if ok, err := a.ClaimNick("alice"); !ok || err != nil {
		t.Fatalf("ClaimNick(alice) = %v, %v", ok, err)
	}
	waitFor(t, 5*time.Second, "a's writes made", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.p.written) == 0
	})
	if ok, _ := b.ClaimNick("alice"); ok {
		t.Fatal("b could claim alice, which a claimed last")
	}
}

func TestANodeWithManyClientsClaimsThemAgainWithinTheTTLThoughNATSIsFar(t *testing.T) {
	ns := startNATS(t)
	const ttl = 1500 * time.Millisecond
	// a reaches NATS through a link with a 10ms round trip.
	var nw netfake.Network
	ln, err := nw.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := link.New(ln, func(context.Context) (net.Conn, error) { return ns.InProcessConn() })
	t.Cleanup(func() { l.Close() })
	nc, err := nats.Connect("nats://"+ln.Addr().String(), nats.SetCustomDialer(fakeDialer{&nw}), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	a, err := Join(context.Background(), nc, Config{Timeout: 2 * time.Second, PresenceTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := joinWith(t, ns, Config{Timeout: 2 * time.Second, PresenceTTL: ttl})
	const clients = 300
	for i := range clients {
		nick := fmt.Sprintf("user%d", i)
		if ok, err := a.ClaimNick(nick); !ok || err != nil {
			t.Fatalf("ClaimNick(%s) = %v, %v", nick, ok, err)
		}
		a.Enter("lobby", nick)
	}
	waitFor(t, 10*time.Second, "b lists a's clients", func() bool {
		m, err := b.Members("lobby")
		return err == nil && len(m) == clients
	})
	l.SetDelay(5 * time.Millisecond)

	// a's liveness key lapses: its 600 keys are reaped, and must be
	// claimed again, one round trip each, before the new key lapses too.
	a.mu.Lock()
	old := a.p.token
	a.mu.Unlock()
	if err := b.nodes.Purge(context.Background(), liveKey(old)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a's token changes", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.p.token != old
	})
	waitFor(t, 3*ttl, "a's claims fresh again", a.ClaimsFresh)
	waitFor(t, ttl, "b lists a's clients again", func() bool {
		m, err := b.Members("lobby")
		return err == nil && len(m) == clients
	})
	// And they stay fresh: the new key did not lapse while a claimed.
	holdsFor(t, 2*ttl, "a's claims fresh", a.ClaimsFresh)
	if ok, _ := b.ClaimNick("user0"); ok {
		t.Fatal("b could claim a's client's nickname")
	}
}

// fakeDialer dials NATS over a netfake network.
type fakeDialer struct{ nw *netfake.Network }

func (d fakeDialer) Dial(network, address string) (net.Conn, error) {
	return d.nw.Dial(network, address)
}
