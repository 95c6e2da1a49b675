// Command loadgen puts load on a natter server and reports what it saw.
//
//	go run ./cmd/loadgen -scenario fanout -n 1000 -messages 20000 -window 64
//
// Scenarios:
//
//	fanout   one sender, n receivers in the lobby; at most -window messages
//	         in flight (sent but not yet received by every receiver)
//	chatter  n clients, each sending -rate messages a second for -duration;
//	         everyone receives everything
//	slow     fanout, with -stalled of the receivers never reading
//	idle     n clients connect and stay silent; with -server-pid, the
//	         server's memory per connection
//	connect  n clients connect as fast as they can, then leave
//
// With -proto nats the fanout, slow, chatter and idle scenarios drive a
// nats-server instead: every client subscribes to one subject and
// publishes to it, so everyone receives everything, as in natter's lobby.
//
// Attack scenarios measure an unrelated probe client's echo (a line every
// 250ms) for -duration with the server quiet, then for -duration while n
// attackers do their worst, and report both medians and their ratio:
//
//	register-flood  "/register dave whatever123" four times a second
//	                each, dave taken
//	tls-idle        TCP connections to -tls-addr that never start a
//	                handshake; reports how many the server holds open
//	rooms-flood     /rooms four times a second each, with -rooms rooms
//
// Every message carries its number and its send time; each receiver
// records the latency of every message and counts losses and duplicates.
// With -server-pid the report adds the server's CPU time and RSS (from
// /proc). With -json FILE the report is also appended to FILE as one JSON
// object a line, for programs (make bench builds its table from them).
// Client sockets are spread over -sources loopback addresses
// (127.0.0.1, 127.0.0.2, ...), and the process raises its open-file limit.
// The server should run with its per-address and rate limits opened up, for
// example: go run ./cmd/server -rate 0 -connect-rate 0 -max-clients-per-ip 100000.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type config struct {
	addr      string
	scenario  string
	n         int
	messages  int
	window    int
	rate      float64
	duration  time.Duration
	size      int
	stalled   int
	sources   int
	serverPID int
	label     string
	proto     string
	tlsAddr   string
	rooms     int
	jsonOut   string
	round     int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "server `address`; several, comma-separated, spread the clients over the nodes of a cluster (the sender uses the first)")
	fs.StringVar(&c.scenario, "scenario", "fanout", "fanout, chatter, slow, idle, connect, or an attack: register-flood, tls-idle, rooms-flood")
	fs.StringVar(&c.tlsAddr, "tls-addr", "", "the server's TLS `address` (tls-idle)")
	fs.IntVar(&c.rooms, "rooms", 500, "`rooms` to make before flooding /rooms (rooms-flood)")
	fs.IntVar(&c.n, "n", 100, "clients (receivers, for fanout and slow)")
	fs.IntVar(&c.messages, "messages", 10000, "messages to send (fanout, slow)")
	fs.IntVar(&c.window, "window", 8, "messages in flight at most (fanout, slow)")
	fs.Float64Var(&c.rate, "rate", 5, "messages a second per client (chatter)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to chatter, or to hold idle clients")
	fs.IntVar(&c.size, "size", 64, "message size in bytes")
	fs.IntVar(&c.stalled, "stalled", 1, "receivers that never read (slow)")
	fs.IntVar(&c.sources, "sources", 8, "loopback source addresses to spread sockets over")
	fs.IntVar(&c.serverPID, "server-pid", 0, "server `pid`, to report its CPU time and memory from /proc")
	fs.StringVar(&c.label, "label", "", "a label for the report line")
	fs.StringVar(&c.proto, "proto", "natter", "natter, or nats to drive a nats-server with the same scenario (fanout, slow, chatter and idle)")
	fs.StringVar(&c.jsonOut, "json", "", "also append the report to `file` as one JSON object a line")
	fs.IntVar(&c.round, "round", 0, "a round number for the JSON report, to tell repeated runs apart")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raiseFileLimit()
	var (
		r   report
		err error
	)
	before := readProc(c.serverPID)
	start := time.Now()
	switch c.scenario {
	case "fanout":
		r, err = fanout(ctx, c, 0)
	case "slow":
		r, err = fanout(ctx, c, c.stalled)
	case "chatter":
		r, err = chatter(ctx, c)
	case "idle":
		r, err = idle(ctx, c)
	case "connect":
		r, err = connectStorm(ctx, c)
	default:
		a, ok := attacks[c.scenario]
		if !ok {
			return fmt.Errorf("unknown scenario %q", c.scenario)
		}
		r, err = underAttack(ctx, c, a)
	}
	if err != nil {
		return err
	}
	r.wall = time.Since(start)
	if c.serverPID != 0 {
		after := readProc(c.serverPID)
		if r.serverCPU == 0 { // not measured over a phase of its own
			r.serverCPU = after.cpu - before.cpu
		}
		r.serverRSS = after.rss
		if r.idleRSSDelta == 0 && c.scenario == "idle" {
			r.idleRSSDelta = r.idleRSS - before.rss
		}
	}
	slices.Sort(r.latencies)
	r.print(out, c)
	if c.jsonOut != "" {
		return appendJSON(c.jsonOut, r.record(c))
	}
	return nil
}

// dialer spreads connections over several loopback source addresses, so
// that more than one address's worth of ephemeral ports is available.
type dialer struct {
	sources int
	nats    bool
	next    atomic.Int64
}

func (d *dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	i := d.next.Add(1)
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+int(i)%max(d.sources, 1)))}}
	return nd.DialContext(ctx, "tcp", addr)
}

// client is one connection, past the server's welcome.
type client struct {
	conn net.Conn
	r    *bufio.Reader
	nats bool // speaking NATS's protocol to a nats-server
}

func connect(ctx context.Context, d *dialer, addr string) (*client, error) {
	conn, err := d.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), nats: d.nats}
	if _, err := c.r.ReadString('\n'); err != nil { // natter's welcome, or NATS's INFO
		conn.Close()
		return nil, fmt.Errorf("welcome: %w", err)
	}
	if c.nats {
		// Subscribe every client to the one subject, and wait for the
		// PONG that says the server has processed the SUB.
		fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB chat 1\r\nPING\r\n")
		for {
			l, err := c.r.ReadString('\n')
			if err != nil {
				conn.Close()
				return nil, fmt.Errorf("nats handshake: %w", err)
			}
			if strings.HasPrefix(l, "PONG") {
				break
			}
		}
	}
	return c, nil
}

// send sends one payload line.
func (c *client) send(p []byte) error {
	if c.nats {
		_, err := fmt.Fprintf(c.conn, "PUB chat %d\r\n%s\r\n", len(p)-1, p[:len(p)-1])
		return err
	}
	_, err := c.conn.Write(p)
	return err
}

// next returns the next line that may carry a payload, answering NATS
// PINGs on the way. The line is only valid until the next call: reading
// must cost the load generator as little as it can, or it measures itself.
func (c *client) next() ([]byte, error) {
	for {
		l, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // longer than any payload: not one
		}
		if err != nil || !c.nats {
			return l, err
		}
		switch {
		case bytes.HasPrefix(l, []byte("MSG ")):
			return c.r.ReadSlice('\n')
		case bytes.HasPrefix(l, []byte("PING")):
			c.conn.Write([]byte("PONG\r\n"))
		}
	}
}

// connectAll connects n clients, in turn to each of the comma-separated
// addresses in addrs.
func connectAll(ctx context.Context, d *dialer, addrs string, n int) ([]*client, error) {
	list := strings.Split(addrs, ",")
	cs := make([]*client, n)
	for i := range cs {
		c, err := connect(ctx, d, list[i%len(list)])
		if err != nil {
			for _, c := range cs[:i] {
				c.conn.Close()
			}
			return nil, fmt.Errorf("client %d of %d: %w", i+1, n, err)
		}
		cs[i] = c
	}
	return cs, nil
}

// payload is a message: "lg SEQ SENDNANOS" padded with dots to size.
func payload(seq int, size int) []byte {
	b := fmt.Appendf(nil, "lg %d %d ", seq, time.Now().UnixNano())
	for len(b) < size-1 {
		b = append(b, '.')
	}
	return append(b, '\n')
}

// parse finds a payload in a line as the server relays it live
// ("nick: lg ..."); replayed history ("[history N] nick: lg ...") is not
// this run's traffic. It allocates nothing.
func parse(line []byte) (seq int, sent int64, ok bool) {
	if len(line) == 0 || line[0] == '[' {
		return 0, 0, false
	}
	rest, found := bytes.CutPrefix(line, []byte("lg ")) // a NATS payload
	if !found {
		_, rest, found = bytes.Cut(line, []byte(": lg "))
	}
	if !found {
		return 0, 0, false
	}
	s, rest, ok1 := number(rest)
	t, _, ok2 := number(rest)
	return int(s), t, ok1 && ok2
}

// number reads a decimal number ended by a space.
func number(b []byte) (n int64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 || i == len(b) || b[i] != ' ' {
		return 0, b, false
	}
	return n, b[i+1:], true
}

// receiver reads one client's lines and records what it got.
type receiver struct {
	count     atomic.Int64 // payloads received, readable while reading
	latencies []time.Duration
	seen      []uint8 // times each sequence number arrived
	other     int     // lines that were not payloads (notices, joins...)
}

func (rc *receiver) read(c *client, total int, got func(seq int)) {
	rc.seen = make([]uint8, total)
	rc.latencies = make([]time.Duration, 0, total)
	for {
		line, err := c.next()
		if err != nil {
			return
		}
		seq, sent, ok := parse(line)
		if !ok || seq < 0 || seq >= total {
			rc.other++
			continue
		}
		rc.latencies = append(rc.latencies, time.Duration(time.Now().UnixNano()-sent))
		rc.count.Add(1)
		if rc.seen[seq] < 255 {
			rc.seen[seq]++
		}
		if got != nil {
			got(seq)
		}
	}
}

// fanout sends c.messages from one client to c.n receivers, at most
// c.window in flight; stalled of the receivers never read.
func fanout(ctx context.Context, c config, stalled int) (report, error) {
	d := &dialer{sources: c.sources, nats: c.proto == "nats"}
	sender, err := connect(ctx, d, strings.Split(c.addr, ",")[0])
	if err != nil {
		return report{}, err
	}
	defer sender.conn.Close()
	go func() { // its own echoes, and NATS's pings
		for {
			if _, err := sender.next(); err != nil {
				return
			}
		}
	}()
	receivers, err := connectAll(ctx, d, c.addr, c.n)
	if err != nil {
		return report{}, err
	}
	defer func() {
		for _, r := range receivers {
			r.conn.Close()
		}
	}()
	live := c.n - stalled
	pending := make([]atomic.Int32, c.messages)
	window := make(chan struct{}, c.window)
	var wg sync.WaitGroup
	recs := make([]*receiver, live)
	for i := range live {
		recs[i] = &receiver{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i].read(receivers[stalled+i], c.messages, func(seq int) {
				if pending[seq].Add(1) == int32(live) {
					<-window
				}
			})
		}()
	}
	ph := startPhase(c.serverPID)
	start := time.Now()
	for seq := range c.messages {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return report{}, ctx.Err()
		case <-time.After(10 * time.Second):
			return report{}, fmt.Errorf("message %d: the window did not move for 10s (messages lost?)", seq)
		}
		if err := sender.send(payload(seq, c.size)); err != nil {
			return report{}, err
		}
	}
	// Wait for the last window to drain.
	for range c.window {
		select {
		case window <- struct{}{}:
		case <-time.After(10 * time.Second):
			return report{}, errors.New("the last messages did not all arrive within 10s")
		}
	}
	elapsed := time.Since(start)
	serverCPU, selfCPU := ph.end()
	for _, r := range receivers {
		r.conn.Close()
	}
	wg.Wait()
	r := merge(recs, c.messages)
	r.serverCPU, r.selfCPU = serverCPU, selfCPU
	r.deliveries = int64(live) * int64(c.messages)
	r.rate = float64(r.deliveries) / elapsed.Seconds()
	return r, nil
}

// chatter has c.n clients each send c.rate messages a second.
func chatter(ctx context.Context, c config) (report, error) {
	d := &dialer{sources: c.sources, nats: c.proto == "nats"}
	cs, err := connectAll(ctx, d, c.addr, c.n)
	if err != nil {
		return report{}, err
	}
	perClient := int(c.rate * c.duration.Seconds())
	total := perClient * c.n
	recs := make([]*receiver, c.n)
	var rwg, swg sync.WaitGroup
	for i, cl := range cs {
		recs[i] = &receiver{}
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			recs[i].read(cl, total, nil)
		}()
	}
	ph := startPhase(c.serverPID)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / c.rate)
	for i, cl := range cs {
		swg.Add(1)
		go func() {
			defer swg.Done()
			// Spread the clients' ticks over one interval.
			t := time.NewTimer(time.Duration(i) * interval / time.Duration(c.n))
			defer t.Stop()
			for k := range perClient {
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
				cl.send(payload(i*perClient+k, c.size))
				t.Reset(interval)
			}
		}()
	}
	swg.Wait()
	// Give the last messages time to arrive, then stop reading.
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for delivered(recs) < int64(total)*int64(c.n) {
		select {
		case <-tick.C:
		case <-deadline:
			break wait
		}
	}
	elapsed := time.Since(start)
	serverCPU, selfCPU := ph.end()
	for _, cl := range cs {
		cl.conn.Close()
	}
	rwg.Wait()
	r := merge(recs, total)
	r.serverCPU, r.selfCPU = serverCPU, selfCPU
	r.deliveries = int64(total) * int64(c.n)
	r.rate = float64(r.deliveries-r.lost) / elapsed.Seconds()
	return r, nil
}

func delivered(recs []*receiver) int64 {
	var n int64
	for _, r := range recs {
		n += r.count.Load()
	}
	return n
}

// idle connects c.n silent clients and holds them for c.duration.
func idle(ctx context.Context, c config) (report, error) {
	d := &dialer{sources: c.sources, nats: c.proto == "nats"}
	before := readProc(c.serverPID)
	cs, err := connectAll(ctx, d, c.addr, c.n)
	if err != nil {
		return report{}, err
	}
	defer func() {
		for _, cl := range cs {
			cl.conn.Close()
		}
	}()
	// Drain announcements so the server's queues don't fill up (and
	// answer NATS's pings, so that nats-server keeps the clients).
	for _, cl := range cs {
		if cl.nats {
			go func() {
				for {
					if _, err := cl.next(); err != nil {
						return
					}
				}
			}()
			continue
		}
		go io.Copy(io.Discard, cl.r)
	}
	select {
	case <-time.After(c.duration):
	case <-ctx.Done():
	}
	after := readProc(c.serverPID)
	return report{held: len(cs), idleRSS: after.rss, idleRSSDelta: after.rss - before.rss}, nil
}

// connectStorm connects c.n clients as fast as it can, 64 at a time.
func connectStorm(ctx context.Context, c config) (report, error) {
	d := &dialer{sources: c.sources}
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var lat []time.Duration
	var mu sync.Mutex
	for range c.n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t := time.Now()
			cl, err := connect(ctx, d, strings.Split(c.addr, ",")[0])
			if err != nil {
				failed.Add(1)
				return
			}
			mu.Lock()
			lat = append(lat, time.Since(t))
			mu.Unlock()
			ok.Add(1)
			cl.conn.Close()
		}()
	}
	wg.Wait()
	return report{connected: ok.Load(), lost: failed.Load(), latencies: lat}, nil
}

func merge(recs []*receiver, total int) report {
	var r report
	for _, rc := range recs {
		r.latencies = append(r.latencies, rc.latencies...)
		for _, n := range rc.seen {
			switch {
			case n == 0:
				r.lost++
			case n > 1:
				r.dups += int64(n - 1)
			}
		}
	}
	return r
}

type report struct {
	latencies    []time.Duration
	deliveries   int64
	lost, dups   int64
	rate         float64
	wall         time.Duration
	serverCPU    time.Duration // over the measured phase
	selfCPU      time.Duration // the load generator's own, likewise
	serverRSS    int64
	held         int
	idleRSS      int64
	idleRSSDelta int64
	connected    int64
	quiet        []time.Duration // an attack scenario's probe, before the attack
	attackers    int             // connections attacking (tls-idle: held open by the server)
}

// pct is the p-quantile of the latencies, which must be sorted.
func (r report) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
}

func (r report) print(out io.Writer, c config) {
	pct := r.pct
	fmt.Fprintf(out, "scenario=%s proto=%s label=%q n=%d", c.scenario, c.proto, c.label, c.n)
	switch c.scenario {
	case "idle":
		fmt.Fprintf(out, " held=%d", r.held)
		if c.serverPID != 0 {
			fmt.Fprintf(out, " server_rss=%dKiB rss_per_conn=%.1fKiB", r.idleRSS>>10, float64(r.idleRSSDelta)/1024/float64(max(r.held, 1)))
		}
	case "connect":
		fmt.Fprintf(out, " connected=%d failed=%d connects_per_s=%.0f p50=%v p99=%v", r.connected, r.lost,
			float64(r.connected)/r.wall.Seconds(), pct(0.5), pct(0.99))
	case "register-flood", "tls-idle", "rooms-flood":
		r.printAttack(out)
	default:
		fmt.Fprintf(out, " window=%d deliveries=%d lost=%d dups=%d deliveries_per_s=%.0f p50=%v p90=%v p99=%v max=%v",
			c.window, r.deliveries, r.lost, r.dups, r.rate, pct(0.5), pct(0.9), pct(0.99), pct(1))
		if c.serverPID != 0 && r.deliveries > 0 {
			fmt.Fprintf(out, " server_cpu=%v cpu_per_delivery=%.0fns server_rss=%dKiB", r.serverCPU.Round(time.Millisecond),
				float64(r.serverCPU.Nanoseconds())/float64(r.deliveries-r.lost), r.serverRSS>>10)
		}
		if r.deliveries > 0 {
			fmt.Fprintf(out, " loadgen_cpu_per_delivery=%.0fns", float64(r.selfCPU.Nanoseconds())/float64(r.deliveries-r.lost))
		}
	}
	fmt.Fprintln(out)
}

// phase measures the server's CPU time, and the load generator's own, over
// the part of a scenario that counts (not the connecting before it).
type phase struct {
	pid    int
	server procStat
	self   time.Duration
}

func startPhase(pid int) phase {
	return phase{pid: pid, server: readProc(pid), self: selfCPU()}
}

func (p phase) end() (server, self time.Duration) {
	if p.pid != 0 {
		server = readProc(p.pid).cpu - p.server.cpu
	}
	return server, selfCPU() - p.self
}

// selfCPU is the load generator's own CPU time, user and system.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type procStat struct {
	cpu time.Duration
	rss int64
}

// readProc reads a process's CPU time (user+system) and resident memory.
func readProc(pid int) procStat {
	if pid == 0 {
		return procStat{}
	}
	var s procStat
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			s.cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for l := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
				s.rss = kb << 10
			}
		}
	}
	return s
}

// raiseFileLimit lifts the soft open-file limit to the hard one.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
