package cluster

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkRenewing measures what keeping the presence of 10,000 clients
// on one node costs NATS: the messages NATS receives per renewal
// (msgs/renewal), and per second at the default TTL, whose renewals come
// every DefaultPresenceTTL/3 (msgs/s@default). Each client holds a
// nickname and is in two rooms. The renewals here come faster (every
// second) so that the benchmark is short; what a renewal costs does not
// depend on how often it comes.
func BenchmarkRenewing(b *testing.B) {
	const clients, rooms = 10000, 2
	ns := startNATS(b)
	const ttl = 3 * time.Second
	n := joinWith(b, ns, Config{Timeout: 10 * time.Second, PresenceTTL: ttl})
	for i := range clients {
		nick := fmt.Sprintf("user%d", i)
		if ok, err := n.ClaimNick(nick); !ok || err != nil {
			b.Fatalf("ClaimNick(%s) = %v, %v", nick, ok, err)
		}
		for r := range rooms {
			n.Enter(fmt.Sprintf("room%d", r), nick)
		}
	}
	waitFor(b, 5*time.Minute, "every key written", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, rev := range n.p.held {
			if rev == 0 {
				return false
			}
		}
		return len(n.p.held) == clients*(1+rooms)
	})
	renewed := func() int64 { return n.renewedAt.Load() }
	// From the start of one renewal to the start of the next: the first
	// renewal after the clients came may still be writing their keys.
	first := renewed()
	waitFor(b, time.Minute, "a renewal", func() bool { return renewed() != first })
	b.ResetTimer()
	var sent int64
	for range b.N {
		before, from := inMsgs(b, ns), renewed()
		waitFor(b, time.Minute, "a renewal", func() bool { return renewed() != from })
		sent += inMsgs(b, ns) - before
	}
	perRenewal := float64(sent) / float64(b.N)
	b.ReportMetric(perRenewal, "msgs/renewal")
	b.ReportMetric(perRenewal/(DefaultPresenceTTL/3).Seconds(), "msgs/s@default")
}
