package chat_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/cluster"
	"github.com/natter-chat/natter/netfake"
	"github.com/natter-chat/natter/netfake/link"
)

// BenchmarkJoinStorm measures 1,000 clients arriving at once at a cluster
// node whose connection to NATS goes through a link adding delay each way:
// each is given a guest name (claimed in the cluster), and joins a room;
// with nick=true it takes a nickname (claimed too) first, and each rename
// is told to everyone in the lobby. It reports the time until all of them
// are in (storm-ms), and the median and p99 echo of a client already
// there, in a room of its own, before the storm (quiet-p50/p99-µs) and
// during it (storm-p50/p99-µs). Were the claims made under the server
// lock, the arrivals would wait for each other: a round trip each, in
// series.
func BenchmarkJoinStorm(b *testing.B) {
	for _, named := range []bool{false, true} {
		for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
			b.Run(fmt.Sprintf("nick=%v/delay=%v", named, delay), func(b *testing.B) {
				benchmarkJoinStorm(b, delay, named)
			})
		}
	}
}

// benchmarkJoinStorm runs b.N storms and reports the medians of their
// figures.
func benchmarkJoinStorm(b *testing.B, delay time.Duration, named bool) {
	var storm, quietP50, quietP99, stormP50, stormP99 []time.Duration
	for range b.N {
		s := joinStorm(b, delay, 1000, named)
		storm = append(storm, s.total)
		quietP50, quietP99 = append(quietP50, s.quiet[len(s.quiet)/2]), append(quietP99, s.quiet[len(s.quiet)*99/100])
		stormP50, stormP99 = append(stormP50, s.storm[len(s.storm)/2]), append(stormP99, s.storm[len(s.storm)*99/100])
	}
	med := func(d []time.Duration) float64 { slices.Sort(d); return float64(d[len(d)/2]) }
	b.ReportMetric(med(storm)/1e6, "storm-ms")
	b.ReportMetric(med(quietP50)/1e3, "quiet-p50-µs")
	b.ReportMetric(med(quietP99)/1e3, "quiet-p99-µs")
	b.ReportMetric(med(stormP50)/1e3, "storm-p50-µs")
	b.ReportMetric(med(stormP99)/1e3, "storm-p99-µs")
}

type stormResult struct {
	total        time.Duration
	quiet, storm []time.Duration // the probe's echoes, sorted
}

// joinStorm runs one storm of n clients against a fresh node and NATS.
// With named, each client takes a nickname too, before joining.
func joinStorm(b *testing.B, delay time.Duration, n int, named bool) stormResult {
	b.StopTimer()
	ns, err := natsserver.NewServer(&natsserver.Options{JetStream: true, StoreDir: b.TempDir(), DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(5 * time.Second) {
		b.Fatal("NATS did not start")
	}
	var nw netfake.Network
	lnNATS, err := nw.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	l := link.New(lnNATS, func(context.Context) (net.Conn, error) { return ns.InProcessConn() })
	defer l.Close()
	l.SetDelay(delay)
	nc, err := nats.Connect("nats://"+l.Addr().String(), nats.SetCustomDialer(netfakeDialer{&nw}), nats.ReconnectBufSize(-1))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	node, err := cluster.Join(context.Background(), nc, cluster.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()

	ln, err := nw.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := chat.NewServer(ln, chat.Options{
		Cluster: node, Accounts: node.Accounts(), HistoryOnJoin: -1,
		MessageRate: rate.Inf, ConnectRate: rate.Inf, MaxClients: 10 * n, MaxClientsPerIP: 10 * n,
		MaxRoomMembers: 10 * n,
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() { cancel(); <-served }()
	dial := func() (net.Conn, *bufio.Reader) {
		conn, err := nw.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReaderSize(conn, 64<<10)
		if _, err := r.ReadString('\n'); err != nil { // the welcome
			b.Fatal(err)
		}
		return conn, r
	}
	// readUntil reads lines until one ends with suffix.
	readUntil := func(r *bufio.Reader, suffix string) error {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if strings.HasSuffix(l, suffix+"\n") {
				return nil
			}
		}
	}

	probe, pr := dial()
	defer probe.Close()
	fmt.Fprintf(probe, "/nick probe\n/join probe\n")
	if err := readUntil(pr, "you are now talking in #probe"); err != nil {
		b.Fatal(err)
	}
	echo := func(i int) time.Duration {
		start := time.Now()
		fmt.Fprintf(probe, "probe %d\n", i)
		if err := readUntil(pr, fmt.Sprintf(": probe %d", i)); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var res stormResult
	for i := range 200 {
		res.quiet = append(res.quiet, echo(i))
	}

	b.StartTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	conns := make(chan net.Conn, n)
	for i := range n {
		wg.Go(func() {
			conn, err := nw.Dial("tcp", ln.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			conns <- conn
			r := bufio.NewReaderSize(conn, 64<<10)
			if _, err := r.ReadString('\n'); err != nil {
				errs <- fmt.Errorf("welcome: %w", err)
				return
			}
			if named {
				fmt.Fprintf(conn, "/nick j%d\n", i)
			}
			fmt.Fprintf(conn, "/join storm\n")
			if err := readUntil(r, "you are now talking in #storm"); err != nil {
				errs <- fmt.Errorf("joining: %w", err)
			}
		})
	}
	joined := make(chan struct{})
	go func() { wg.Wait(); close(joined) }()
	for i := 200; ; i++ {
		res.storm = append(res.storm, echo(i))
		select {
		case <-joined:
		default:
			continue
		}
		break
	}
	res.total = time.Since(start)
	b.StopTimer()
	close(conns)
	for c := range conns {
		c.Close()
	}
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	slices.Sort(res.quiet)
	slices.Sort(res.storm)
	return res
}

// netfakeDialer dials NATS over a netfake network.
type netfakeDialer struct{ nw *netfake.Network }

func (d netfakeDialer) Dial(network, address string) (net.Conn, error) {
	return d.nw.Dial(network, address)
}
