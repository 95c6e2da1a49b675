package main

// This file is the attack scenarios: what an attacker does to the server,
// measured by how long an unrelated client's echo takes while it does,
// against the same run's quiet baseline.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// attack is what one of the scenarios does to the server until ctx ends.
type attack func(ctx context.Context, c config, d *dialer) (started int, err error)

// attacks are the attack scenarios by name.
var attacks = map[string]attack{
	"register-flood": registerFlood,
	"tls-idle":       tlsIdle,
	"rooms-flood":    roomsFlood,
}

// underAttack measures a probe client's echo latency for c.duration with
// the server quiet, then for c.duration again while the attack runs, and
// reports both.
func underAttack(ctx context.Context, c config, a attack) (report, error) {
	d := &dialer{sources: c.sources}
	probe, err := connect(ctx, d, c.addr)
	if err != nil {
		return report{}, fmt.Errorf("probe: %w", err)
	}
	defer probe.conn.Close()
	quiet, err := echoes(ctx, probe, c.duration)
	if err != nil {
		return report{}, fmt.Errorf("quiet probe: %w", err)
	}
	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var started int
	var aerr error
	wg.Go(func() { started, aerr = a(actx, c, d) })
	loud, err := echoes(ctx, probe, c.duration)
	stop()
	wg.Wait()
	if err != nil {
		return report{}, fmt.Errorf("probe under attack: %w", err)
	}
	if aerr != nil {
		return report{}, fmt.Errorf("attack: %w", aerr)
	}
	return report{quiet: quiet, latencies: loud, attackers: started}, nil
}

// echoes sends a line every 250ms (within the default line rate) for d and returns how long each took to
// come back to its sender.
func echoes(ctx context.Context, probe *client, d time.Duration) ([]time.Duration, error) {
	var lat []time.Duration
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	end := time.After(d)
	for seq := 0; ; seq++ {
		select {
		case <-tick.C:
		case <-end:
			return lat, nil
		case <-ctx.Done():
			return lat, ctx.Err()
		}
		mark := []byte("probe " + strconv.Itoa(seq) + "\n")
		start := time.Now()
		probe.conn.SetDeadline(start.Add(30 * time.Second))
		if _, err := probe.conn.Write(mark); err != nil {
			return lat, err
		}
		for {
			l, err := probe.next()
			if err != nil {
				return lat, err
			}
			if bytes.HasSuffix(l, mark) {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
}

// every runs f on each of n connections every interval until ctx ends;
// the connections' input is drained meanwhile.
func every(ctx context.Context, c config, d *dialer, interval time.Duration, setup, f func(cl *client) error) (int, error) {
	cs, err := connectAll(ctx, d, c.addr, c.n)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	defer func() {
		for _, cl := range cs {
			cl.conn.Close()
		}
		wg.Wait()
	}()
	for _, cl := range cs {
		wg.Go(func() { io.Copy(io.Discard, cl.r) })
		if setup != nil {
			if err := setup(cl); err != nil {
				return 0, err
			}
		}
	}
	for i, cl := range cs {
		wg.Go(func() {
			t := time.NewTimer(time.Duration(i) * interval / time.Duration(len(cs)))
			defer t.Stop()
			for {
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
				if f(cl) != nil {
					return
				}
				t.Reset(interval)
			}
		})
	}
	<-ctx.Done()
	return len(cs), nil
}

// registerFlood has c.n clients send "/register dave whatever123" four
// times a second each (inside the default line rate), dave being
// registered: the attack of the report this scenario comes from. (A
// server that looks before it hashes refuses it without a hash; one that
// doesn't hashes every time.)
func registerFlood(ctx context.Context, c config, d *dialer) (int, error) {
	// The owner registers dave and leaves: the name is registered, not in
	// use, so only the account store can refuse it.
	owner, err := connect(ctx, d, c.addr)
	if err != nil {
		return 0, err
	}
	name := "dave" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
	fmt.Fprintf(owner.conn, "/register %s correct-horse-battery\n", name)
	for {
		l, err := owner.next()
		if err != nil {
			owner.conn.Close()
			return 0, fmt.Errorf("registering %s: %w", name, err)
		}
		if bytes.Contains(l, []byte("registered "+name)) {
			break
		}
	}
	owner.conn.Close()
	line := []byte("/register " + name + " whatever123\n")
	return every(ctx, c, d, 250*time.Millisecond, nil, func(cl *client) error {
		_, err := cl.conn.Write(line)
		return err
	})
}

// roomsFlood has c.n clients ask for /rooms four times a second each, on a
// server with c.rooms rooms (made by clients that join ten each).
func roomsFlood(ctx context.Context, c config, d *dialer) (int, error) {
	var makers []*client
	var wg sync.WaitGroup
	defer func() {
		for _, m := range makers {
			m.conn.Close()
		}
		wg.Wait()
	}()
	for i := 0; i < c.rooms; i += 10 {
		m, err := connect(ctx, d, c.addr)
		if err != nil {
			return 0, err
		}
		makers = append(makers, m)
		wg.Go(func() { io.Copy(io.Discard, m.r) })
		// Out of the lobby first: it counts among a client's ten rooms.
		b := bytes.NewBufferString("/part lobby\n")
		for k := i; k < min(i+10, c.rooms); k++ {
			fmt.Fprintf(b, "/join room%d\n", k)
		}
		if _, err := m.conn.Write(b.Bytes()); err != nil {
			return 0, err
		}
	}
	return every(ctx, c, d, 250*time.Millisecond, nil, func(cl *client) error {
		_, err := cl.conn.Write([]byte("/rooms\n"))
		return err
	})
}

// tlsIdle opens c.n TCP connections to the TLS address -tls-addr and never
// starts a handshake; it reports how many the server still holds open
// after a second.
func tlsIdle(ctx context.Context, c config, d *dialer) (int, error) {
	if c.tlsAddr == "" {
		return 0, fmt.Errorf("tls-idle needs -tls-addr")
	}
	var conns []net.Conn
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for range c.n {
		conn, err := d.dial(ctx, c.tlsAddr)
		if err != nil {
			break // the server or the system refuses more: that is the point
		}
		conns = append(conns, conn)
	}
	// A connection the server closed reads EOF at once; one it holds
	// times out.
	time.Sleep(time.Second)
	held := 0
	for _, conn := range conns {
		conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := conn.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				held++
			}
		}
	}
	<-ctx.Done()
	return held, nil
}

// printAttack prints the quiet and loud echo latencies and their ratio.
func (r report) printAttack(out io.Writer) {
	p50 := func(l []time.Duration) time.Duration {
		if len(l) == 0 {
			return 0
		}
		s := slices.Clone(l)
		slices.Sort(s)
		return s[len(s)/2]
	}
	q, l := p50(r.quiet), p50(r.latencies)
	ratio := 0.0
	if q > 0 {
		ratio = float64(l) / float64(q)
	}
	fmt.Fprintf(out, " attackers=%d probe_p50_quiet=%v probe_p50_attack=%v ratio=%.2f probes=%d+%d",
		r.attackers, q, l, ratio, len(r.quiet), len(r.latencies))
}
