package main

import (
	"encoding/json"
	"os"
	"slices"
	"time"
)

// record is a report as one JSON object, for programs: make bench builds
// its table from these. Durations are in nanoseconds, sizes in bytes, and
// a field a scenario does not measure is left out.
type record struct {
	Scenario string `json:"scenario"`
	Proto    string `json:"proto"`
	Label    string `json:"label,omitempty"`
	Round    int    `json:"round,omitempty"`
	N        int    `json:"n"`

	// fanout, slow and chatter
	Window         int     `json:"window,omitempty"`
	Rate           float64 `json:"rate,omitempty"` // chatter: messages a second per client
	Deliveries     int64   `json:"deliveries,omitempty"`
	Lost           int64   `json:"lost"`
	Dups           int64   `json:"dups"`
	DeliveriesPerS float64 `json:"deliveries_per_s,omitempty"`
	P50            int64   `json:"p50_ns,omitempty"`
	P90            int64   `json:"p90_ns,omitempty"`
	P99            int64   `json:"p99_ns,omitempty"`
	Max            int64   `json:"max_ns,omitempty"`
	ServerCPU      int64   `json:"server_cpu_ns,omitempty"`
	ServerRSS      int64   `json:"server_rss_bytes,omitempty"`

	// idle
	Held        int     `json:"held,omitempty"`
	RSSPerConn  float64 `json:"rss_per_conn_bytes,omitempty"`
	IdleRSS     int64   `json:"idle_rss_bytes,omitempty"`
	IdleRSSGrow int64   `json:"idle_rss_delta_bytes,omitempty"`

	// connect
	Connected    int64   `json:"connected,omitempty"`
	ConnectsPerS float64 `json:"connects_per_s,omitempty"`

	// attacks: the probe's median echo under attack is P50
	Attackers int   `json:"attackers,omitempty"`
	QuietP50  int64 `json:"quiet_p50_ns,omitempty"`

	WallNs int64 `json:"wall_ns"`
}

// record returns the report as a record; r.latencies must be sorted.
func (r report) record(c config) record {
	rec := record{
		Scenario: c.scenario, Proto: c.proto, Label: c.label, Round: c.round, N: c.n,
		Lost: r.lost, Dups: r.dups, ServerRSS: r.serverRSS, WallNs: r.wall.Nanoseconds(),
	}
	ns := func(d time.Duration) int64 { return d.Nanoseconds() }
	switch c.scenario {
	case "idle":
		rec.Held, rec.IdleRSS, rec.IdleRSSGrow = r.held, r.idleRSS, r.idleRSSDelta
		if c.serverPID != 0 {
			rec.RSSPerConn = float64(r.idleRSSDelta) / float64(max(r.held, 1))
		}
	case "connect":
		rec.Connected = r.connected
		rec.ConnectsPerS = float64(r.connected) / r.wall.Seconds()
		rec.P50, rec.P99 = ns(r.pct(0.5)), ns(r.pct(0.99))
	case "fanout", "slow", "chatter":
		rec.Window = c.window
		if c.scenario == "chatter" {
			rec.Window, rec.Rate = 0, c.rate
		}
		rec.Deliveries, rec.DeliveriesPerS = r.deliveries, r.rate
		rec.P50, rec.P90, rec.P99, rec.Max = ns(r.pct(0.5)), ns(r.pct(0.9)), ns(r.pct(0.99)), ns(r.pct(1))
		rec.ServerCPU = r.serverCPU.Nanoseconds()
	default: // an attack
		rec.Attackers, rec.P50 = r.attackers, ns(r.pct(0.5))
		if q := slices.Sorted(slices.Values(r.quiet)); len(q) > 0 {
			rec.QuietP50 = ns(q[len(q)/2])
		}
	}
	return rec
}

// appendJSON appends rec to the file at path as one line.
func appendJSON(path string, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
