package chat_test

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/netfake"
)

// BenchmarkMessageLatency measures how long a chat line takes from its
// sender back to the sender (commit before broadcast included) over
// netfake, with the history in memory and on disk (the log store, the
// server's, and the bolt store it replaced: a disk sync per commit). ns/op
// is the mean; p50 and p99 are reported too.
func BenchmarkMessageLatency(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) history.Store
	}{
		{"memory", func(b *testing.B) history.Store { return history.NewMemory(history.Retention{}) }},
		{"log", func(b *testing.B) history.Store {
			s, err := history.OpenLog(b.TempDir(), history.Retention{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"bolt", func(b *testing.B) history.Store {
			s, err := history.OpenBolt(b.TempDir(), history.Retention{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	}
	for _, st := range stores {
		b.Run("history="+st.name, func(b *testing.B) {
			var nw netfake.Network
			ln, err := nw.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			srv := chat.NewServer(ln, chat.Options{History: st.open(b), HistoryOnJoin: -1, MessageRate: rate.Inf})
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx) }()
			defer func() { cancel(); <-done }()

			conn, err := nw.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			if _, err := r.ReadString('\n'); err != nil { // the welcome
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				fmt.Fprintf(conn, "message %d\n", i)
				if _, err := r.ReadString('\n'); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
