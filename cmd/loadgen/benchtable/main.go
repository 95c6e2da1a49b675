// Command benchtable turns the JSON reports of make bench's load runs
// (loadgen -json) into one Markdown table, natter with history on disk and
// with -memory against nats-server measured in the same run, and checks
// the performance goals against it.
//
//	benchtable -in runs.jsonl [-out table.md] [-note "measured on ..."]
//	benchtable -splice README.md -table table.md
//
// Runs are told apart by their label (history-on, history-off,
// nats-server) and their round (loadgen -round). Every figure in the table
// is the median over the rounds; a ratio (×a–b) is the range, lowest to
// highest, of the per-round ratios of natter's figure to nats-server's in
// the same round. With -out the table and the note line are also written to
// a file; -splice puts such a file into a README between the lines
// <!-- bench-table:start --> and <!-- bench-table:end -->.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	startMarker = "<!-- bench-table:start -->"
	endMarker   = "<!-- bench-table:end -->"
)

// The columns, by loadgen label.
const (
	on   = "history-on"
	off  = "history-off"
	nats = "nats-server"
)

var columns = []string{on, off, nats}

// record holds the fields of a loadgen -json line that the table uses.
type record struct {
	Scenario       string  `json:"scenario"`
	Label          string  `json:"label"`
	Round          int     `json:"round"`
	N              int     `json:"n"`
	Window         int     `json:"window"`
	Rate           float64 `json:"rate"`
	Lost           int64   `json:"lost"`
	Dups           int64   `json:"dups"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	P99            int64   `json:"p99_ns"`
	RSSPerConn     float64 `json:"rss_per_conn_bytes"`
	Held           int     `json:"held"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	in := fs.String("in", "-", "loadgen -json `file` to read (- for standard input)")
	out := fs.String("out", "", "also write the table and the note to `file`")
	note := fs.String("note", "", "a `line` to print under the table (what it was measured on)")
	splice := fs.String("splice", "", "put the -table file into this `README` between its bench-table markers, and do nothing else")
	table := fs.String("table", "", "the table `file` for -splice (one written by -out)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *splice != "" {
		if *table == "" {
			return errors.New("-splice needs -table")
		}
		return spliceFile(*splice, *table)
	}
	var src io.Reader = stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	}
	recs, err := readRecords(src)
	if err != nil {
		return err
	}
	t := build(recs)
	md := t.markdown(*note)
	fmt.Fprint(stdout, md)
	fmt.Fprintln(stdout)
	for _, l := range t.goals() {
		fmt.Fprintln(stdout, l)
	}
	if *out != "" {
		return os.WriteFile(*out, []byte(md), 0o644)
	}
	return nil
}

func readRecords(r io.Reader) ([]record, error) {
	var recs []record
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec record
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("no runs to tabulate")
	}
	return recs, nil
}

// key says which row a run belongs to.
type key struct {
	scenario string
	n        int
	window   int     // fanout
	rate     float64 // chatter
}

// cell is one row's runs with one server, by round.
type cell map[int]float64

func (c cell) median() (float64, bool) {
	if len(c) == 0 {
		return 0, false
	}
	v := make([]float64, 0, len(c))
	for _, x := range c {
		v = append(v, x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

// ratios returns c's figure over d's, round by round, lowest to highest.
func (c cell) ratios(d cell) []float64 {
	var r []float64
	for round, x := range c {
		if y, ok := d[round]; ok && y != 0 {
			r = append(r, x/y)
		}
	}
	slices.Sort(r)
	return r
}

type row struct {
	key
	value map[string]cell // by column: deliveries/s, or p99 ns, or bytes
	p99   map[string]cell // fanout only
}

type table struct {
	rows        []*row
	rounds      map[int]bool
	lost, dups  int64
	short       []string // idle runs that did not hold every connection
	largeN      int      // the largest fan-out
	smallN      int      // the smallest
	unknownLbls map[string]bool
}

func build(recs []record) *table {
	t := &table{rounds: map[int]bool{}, unknownLbls: map[string]bool{}}
	byKey := map[key]*row{}
	for _, rec := range recs {
		if !slices.Contains(columns, rec.Label) {
			t.unknownLbls[rec.Label] = true
			continue
		}
		k := key{scenario: rec.Scenario, n: rec.N}
		var v float64
		switch rec.Scenario {
		case "fanout":
			k.window, v = rec.Window, rec.DeliveriesPerS
		case "chatter":
			k.rate, v = rec.Rate, float64(rec.P99)
		case "idle":
			v = rec.RSSPerConn
			if rec.Held < rec.N {
				t.short = append(t.short, fmt.Sprintf("%s held %d of %d", rec.Label, rec.Held, rec.N))
			}
		default:
			continue
		}
		r := byKey[k]
		if r == nil {
			r = &row{key: k, value: map[string]cell{}, p99: map[string]cell{}}
			byKey[k] = r
			t.rows = append(t.rows, r)
		}
		if r.value[rec.Label] == nil {
			r.value[rec.Label], r.p99[rec.Label] = cell{}, cell{}
		}
		r.value[rec.Label][rec.Round] = v
		r.p99[rec.Label][rec.Round] = float64(rec.P99)
		t.rounds[rec.Round] = true
		t.lost += rec.Lost
		t.dups += rec.Dups
		if rec.Scenario == "fanout" {
			if t.largeN == 0 || rec.N > t.largeN {
				t.largeN = rec.N
			}
			if t.smallN == 0 || rec.N < t.smallN {
				t.smallN = rec.N
			}
		}
	}
	order := map[string]int{"fanout": 0, "chatter": 1, "idle": 2}
	slices.SortStableFunc(t.rows, func(a, b *row) int {
		if d := order[a.scenario] - order[b.scenario]; d != 0 {
			return d
		}
		if a.n != b.n { // the biggest fan-out first
			return b.n - a.n
		}
		return b.window - a.window
	})
	return t
}

func (t *table) find(k key) *row {
	for _, r := range t.rows {
		if r.key == k {
			return r
		}
	}
	return nil
}

func (t *table) chatter() *row {
	for _, r := range t.rows {
		if r.scenario == "chatter" {
			return r
		}
	}
	return nil
}

func (r *row) title() string {
	switch r.scenario {
	case "fanout":
		return fmt.Sprintf("fan-out 1→%d, window %d", r.n, r.window)
	case "chatter":
		return fmt.Sprintf("chatter %s × %s/s, p99", thousands(float64(r.n)), strconv.FormatFloat(r.rate, 'f', -1, 64))
	default:
		return fmt.Sprintf("idle, bytes per connection at %s", thousands(float64(r.n)))
	}
}

func (t *table) markdown(note string) string {
	var b strings.Builder
	b.WriteString("| scenario | natter, history on disk | natter `-memory` | nats-server |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, r := range t.rows {
		fmt.Fprintf(&b, "| %s |", r.title())
		for _, col := range columns {
			fmt.Fprintf(&b, " %s |", t.cell(r, col))
		}
		b.WriteString("\n")
	}
	var notes []string
	if note != "" {
		notes = append(notes, note)
	}
	if len(t.rounds) > 1 {
		notes = append(notes, fmt.Sprintf("medians of %d rounds; (×a–b) is the range of the rounds' ratios to nats-server in the same round", len(t.rounds)))
	} else {
		notes = append(notes, "one round; (×a) is the ratio to nats-server")
	}
	if t.lost+t.dups == 0 {
		notes = append(notes, "no run lost or duplicated a message")
	} else {
		notes = append(notes, fmt.Sprintf("**%d messages lost and %d duplicated over the runs**", t.lost, t.dups))
	}
	if len(t.short) > 0 {
		notes = append(notes, "**idle: "+strings.Join(t.short, ", ")+"**")
	}
	b.WriteString("\n" + strings.Join(notes, "; ") + ".\n")
	return b.String()
}

// cell formats one row's median with one server, with its ratio to
// nats-server and, on the smallest fan-out, its p99.
func (t *table) cell(r *row, col string) string {
	v, ok := r.value[col].median()
	if !ok {
		return "–"
	}
	switch r.scenario {
	case "fanout":
		s := rate(v)
		if col != nats {
			if rs := r.value[col].ratios(r.value[nats]); len(rs) > 0 {
				s += " (" + ratioRange(rs) + ")"
			}
		}
		if r.n == t.smallN && t.smallN != t.largeN {
			p, _ := r.p99[col].median()
			s += ", p99 " + millis(p)
		}
		return s
	case "chatter":
		return millis(v)
	default:
		return thousands(v)
	}
}

// goals checks the project's performance goals against the table.
func (t *table) goals() []string {
	var out []string
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	large := t.find(key{scenario: "fanout", n: t.largeN, window: 8})
	small := t.find(key{scenario: "fanout", n: t.smallN, window: 8})
	chat := t.chatter()

	// compare describes a's median over b's with the per-round range, and
	// whether ok(ratio of the medians) holds.
	compare := func(r *row, a, b string, ok func(float64) bool) (string, bool, bool) {
		if r == nil {
			return "", false, false
		}
		x, okA := r.value[a].median()
		y, okB := r.value[b].median()
		if !okA || !okB || y == 0 {
			return "", false, false
		}
		ratio := x / y
		s := fmt.Sprintf("×%.2f", ratio)
		if rs := r.value[a].ratios(r.value[b]); len(rs) > 1 {
			s += fmt.Sprintf(" (rounds %s)", strings.TrimPrefix(ratioRange(rs), "×"))
		}
		return s, ok(ratio), true
	}

	// Goal 1: history on within 10 % of -memory.
	var parts []string
	met, checked := true, false
	within := func(x float64) bool { return x >= 0.9 }
	for _, r := range uniq(small, large) {
		if s, ok, have := compare(r, on, off, within); have {
			parts = append(parts, fmt.Sprintf("%s: %s, %s", r.title(), s, verdict(ok)))
			met, checked = met && ok, true
		}
	}
	if s, ok, have := compare(chat, on, off, func(x float64) bool { return x <= 1.1 }); have {
		parts = append(parts, fmt.Sprintf("%s: %s, %s", chat.title(), s, verdict(ok)))
		met, checked = met && ok, true
	}
	if checked {
		out = append(out, fmt.Sprintf("goal 1, history on within 10 %% of -memory (on / -memory: throughput ≥ ×0.90, p99 ≤ ×1.10): %s", verdict(met)))
		for _, p := range parts {
			out = append(out, "  "+p)
		}
	} else {
		out = append(out, "goal 1: no figures to check")
	}

	// Goal 2: the large fan-out at window 8, history on, ≥ 1.3× nats-server.
	if s, ok, have := compare(large, on, nats, func(x float64) bool { return x >= 1.3 }); have {
		out = append(out, fmt.Sprintf("goal 2, %s history on ≥ ×1.30 nats-server: %s: %s", large.title(), verdict(ok), s))
	} else {
		out = append(out, "goal 2: no figures to check (no nats-server runs?)")
	}

	// Goal 4: chatter p99, history on, no worse than nats-server's.
	if s, ok, have := compare(chat, on, nats, func(x float64) bool { return x <= 1 }); have {
		x, _ := chat.value[on].median()
		y, _ := chat.value[nats].median()
		out = append(out, fmt.Sprintf("goal 4, %s history on ≤ nats-server: %s: %s vs %s, %s", chat.title(), verdict(ok), millis(x), millis(y), s))
	} else {
		out = append(out, "goal 4: no figures to check (no chatter runs against nats-server?)")
	}
	for l := range t.unknownLbls {
		out = append(out, fmt.Sprintf("(runs labelled %q are not in the table)", l))
	}
	return out
}

func uniq(rs ...*row) []*row {
	var out []*row
	for _, r := range rs {
		if r != nil && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// rate formats deliveries a second in thousands: 1024k/s.
func rate(v float64) string { return fmt.Sprintf("%.0fk/s", v/1000) }

func millis(ns float64) string {
	ms := ns / 1e6
	if ms < 1 {
		return fmt.Sprintf("%.2f ms", ms)
	}
	return fmt.Sprintf("%.1f ms", ms)
}

func ratioRange(rs []float64) string {
	lo, hi := fmt.Sprintf("%.2f", rs[0]), fmt.Sprintf("%.2f", rs[len(rs)-1])
	if lo == hi {
		return "×" + lo
	}
	return "×" + lo + "–" + hi
}

// thousands formats a whole number with commas: 49,246.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// spliceFile replaces what lies between the bench-table markers in the
// README at path with the table file's contents.
func spliceFile(path, tablePath string) error {
	readme, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tbl, err := os.ReadFile(tablePath)
	if err != nil {
		return err
	}
	out, err := splice(string(readme), string(tbl))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bench-readme-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func splice(readme, tbl string) (string, error) {
	if strings.Count(readme, startMarker) != 1 || strings.Count(readme, endMarker) != 1 {
		return "", fmt.Errorf("want %s and %s once each, on lines of their own", startMarker, endMarker)
	}
	i := strings.Index(readme, startMarker) + len(startMarker)
	j := strings.Index(readme, endMarker)
	if j < i {
		return "", errors.New("the end marker comes before the start marker")
	}
	if !strings.HasPrefix(readme[i:], "\n") || (j > 0 && readme[j-1] != '\n') {
		return "", fmt.Errorf("want %s and %s on lines of their own", startMarker, endMarker)
	}
	tbl = strings.TrimSpace(tbl)
	if tbl == "" {
		return "", errors.New("the table is empty")
	}
	return readme[:i] + "\n\n" + tbl + "\n\n" + readme[j:], nil
}
