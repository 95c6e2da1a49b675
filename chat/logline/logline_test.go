package logline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/natter-chat/natter/chat/logline"
)

// fixedTime is the time of most test records. Its nanoseconds check that the
// time is truncated, not rounded, to milliseconds.
var fixedTime = time.Date(2026, 11, 26, 7, 43, 0, 123_999_999, time.UTC)

// fixedStamp is fixedTime as the handler writes it.
const fixedStamp = "2026-11-26T07:43:00.123Z"

func newRecord(t time.Time, level slog.Level, msg string, attrs ...slog.Attr) slog.Record {
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(attrs...)
	return r
}

// handle passes r to h and returns what h wrote to its buffer.
func handle(t *testing.T, build func(slog.Handler) slog.Handler, opts *slog.HandlerOptions, r slog.Record) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = logline.NewHandler(&buf, opts)
	if build != nil {
		h = build(h)
	}
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	return buf.String()
}

func TestHandleLine(t *testing.T) {
	cet := time.FixedZone("CET", 60*60)
	tests := []struct {
		name string
		r    slog.Record
		want string
	}{
		{"info", newRecord(fixedTime, slog.LevelInfo, "Server running on 127.0.0.1:8080"),
			fixedStamp + " INFO Server running on 127.0.0.1:8080\n"},
		{"debug", newRecord(fixedTime, slog.LevelDebug, "m"), fixedStamp + " DEBUG m\n"},
		{"warn", newRecord(fixedTime, slog.LevelWarn, "m"), fixedStamp + " WARN m\n"},
		{"error", newRecord(fixedTime, slog.LevelError, "m"), fixedStamp + " ERROR m\n"},
		{"level offset up", newRecord(fixedTime, slog.LevelInfo+2, "m"), fixedStamp + " INFO+2 m\n"},
		{"level offset down", newRecord(fixedTime, slog.LevelDebug-1, "m"), fixedStamp + " DEBUG-1 m\n"},
		{"time in other zone", newRecord(fixedTime.In(cet), slog.LevelInfo, "m"), fixedStamp + " INFO m\n"},
		{"zero time", newRecord(time.Time{}, slog.LevelInfo, "m"), "INFO m\n"},
		{"zero time with attrs", newRecord(time.Time{}, slog.LevelWarn, "m", slog.Int("k", 1)), "WARN m k=1\n"},
		{"message with equals and quotes", newRecord(fixedTime, slog.LevelInfo, `user said "hi" a=b`),
			fixedStamp + ` INFO user said "hi" a=b` + "\n"},
		{"message with unicode", newRecord(fixedTime, slog.LevelInfo, "héllo wörld ✓"), fixedStamp + " INFO héllo wörld ✓\n"},
		{"message with newline", newRecord(fixedTime, slog.LevelInfo, "two\nlines"), fixedStamp + ` INFO "two\nlines"` + "\n"},
		{"message with tab", newRecord(fixedTime, slog.LevelInfo, "a\tb"), fixedStamp + ` INFO "a\tb"` + "\n"},
		{"message with invalid UTF-8", newRecord(fixedTime, slog.LevelInfo, "a\xffb"), fixedStamp + ` INFO "a\xffb"` + "\n"},
		{"empty message", newRecord(fixedTime, slog.LevelInfo, ""), fixedStamp + " INFO \n"},
		{"empty message with attrs", newRecord(fixedTime, slog.LevelInfo, "", slog.String("k", "v")),
			fixedStamp + " INFO  k=v\n"},
		{"attrs", newRecord(fixedTime, slog.LevelInfo, "Server running", slog.String("addr", "127.0.0.1:8080"), slog.Int("conns", 3)),
			fixedStamp + " INFO Server running addr=127.0.0.1:8080 conns=3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := handle(t, nil, nil, tt.r); got != tt.want {
				t.Errorf("Handle wrote\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// nilErr has an Error method that panics on a nil receiver.
type nilErr struct{ msg string }

func (e *nilErr) Error() string { return e.msg }

// verboseErr is an error that prints more with %+v than its Error text.
type verboseErr struct{}

func (verboseErr) Error() string { return "short" }

func (e verboseErr) Format(s fmt.State, verb rune) {
	io.WriteString(s, e.Error())
	if s.Flag('+') {
		io.WriteString(s, " (with details)")
	}
}

// badText is a TextMarshaler that fails.
type badText struct{}

func (badText) MarshalText() ([]byte, error) { return nil, errors.New("nope") }

// valuer is a LogValuer.
type valuer struct{ v slog.Value }

func (v valuer) LogValue() slog.Value { return v.v }

// myBytes is a named byte slice type.
type myBytes []byte

func TestAttrValues(t *testing.T) {
	tests := []struct {
		name string
		attr slog.Attr
		want string // what follows the message
	}{
		{"plain string", slog.String("k", "v"), " k=v"},
		{"string with space", slog.String("k", "two words"), ` k="two words"`},
		{"empty string", slog.String("k", ""), ` k=""`},
		{"string with equals", slog.String("k", "a=b"), ` k="a=b"`},
		{"string with quotes", slog.String("k", `say "hi"`), ` k="say \"hi\""`},
		{"string with tab", slog.String("k", "a\tb"), ` k="a\tb"`},
		{"string with newline", slog.String("k", "a\nb"), ` k="a\nb"`},
		{"string with NUL", slog.String("k", "a\x00"), ` k="a\x00"`},
		{"string with DEL not quoted", slog.String("k", "a\x7f"), " k=a\x7f"}, // as by slog.TextHandler
		{"string with no-break space", slog.String("k", "a\u00a0b"), ` k="a\u00a0b"`},
		{"string with invalid UTF-8", slog.String("k", "a\xff"), ` k="a\xff"`},
		{"unicode string", slog.String("k", "héllo✓"), " k=héllo✓"},
		{"backslash not quoted", slog.String("k", `C:\dir`), ` k=C:\dir`},
		{"key with space", slog.String("two words", "v"), ` "two words"=v`},
		{"key with equals", slog.String("a=b", "v"), ` "a=b"=v`},
		{"empty key with value", slog.Int("", 1), ` ""=1`},
		{"int", slog.Int("n", -42), " n=-42"},
		{"uint64", slog.Uint64("n", 42), " n=42"},
		{"float", slog.Float64("f", 1.5), " f=1.5"},
		{"big float", slog.Float64("f", 1e21), " f=1e+21"},
		{"bool", slog.Bool("ok", true), " ok=true"},
		{"duration", slog.Duration("d", 1500*time.Millisecond), " d=1.5s"},
		{"time", slog.Time("t", time.Date(2026, 1, 2, 4, 4, 5, 6_000_000, time.FixedZone("X", 60*60))),
			" t=2026-01-02T03:04:05.006Z"},
		{"error", slog.Any("err", errors.New("eof")), " err=eof"},
		{"error with space", slog.Any("err", fmt.Errorf("read: %w", errors.New("disk full"))), ` err="read: disk full"`},
		{"nil pointer error", slog.Any("err", error((*nilErr)(nil))), " err=<nil>"},
		{"error formatted with %+v", slog.Any("err", verboseErr{}), ` err="short (with details)"`},
		{"TextMarshaler", slog.Any("addr", netip.MustParseAddr("127.0.0.1")), " addr=127.0.0.1"},
		{"failing TextMarshaler", slog.Any("m", badText{}), ` m=!ERROR:nope`},
		{"bytes", slog.Any("b", []byte("x")), ` b="x"`},
		{"named bytes", slog.Any("b", myBytes("hi there")), ` b="hi there"`},
		{"struct", slog.Any("s", struct {
			A int
			B string
		}{1, "x"}), ` s="{A:1 B:x}"`},
		{"nil", slog.Any("v", nil), " v=<nil>"},
		{"LogValuer", slog.Any("v", valuer{slog.StringValue("resolved value")}), ` v="resolved value"`},
		{"LogValuer to group", slog.Any("v", valuer{slog.GroupValue(slog.Int("a", 1))}), " v.a=1"},
		{"group", slog.Group("g", slog.Int("a", 1), slog.String("b", "x y")), ` g.a=1 g.b="x y"`},
		{"nested group", slog.Group("a", slog.Group("b", slog.Int("c", 1)), slog.Int("d", 2)), " a.b.c=1 a.d=2"},
		{"group key needing quotes", slog.Group("a b", slog.Int("c", 1)), ` "a b.c"=1`},
		{"empty group", slog.Group("g"), ""},
		{"group of empty group", slog.Group("g", slog.Group("h")), ""},
		{"group of empty attr", slog.Group("g", slog.Attr{}), ""},
		{"inline group", slog.Group("", slog.Int("a", 1), slog.Int("b", 2)), " a=1 b=2"},
		{"empty attr", slog.Attr{}, ""},
		{"empty key nil value", slog.Any("", nil), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := handle(t, nil, nil, newRecord(fixedTime, slog.LevelInfo, "m", tt.attr))
			want := fixedStamp + " INFO m" + tt.want + "\n"
			if got != want {
				t.Errorf("Handle(%v) wrote\n%q\nwant\n%q", tt.attr, got, want)
			}
		})
	}
}

func TestWithAttrsWithGroup(t *testing.T) {
	tests := []struct {
		name  string
		build func(slog.Handler) slog.Handler
		attrs []slog.Attr
		want  string // what follows the message
	}{
		{
			"WithAttrs",
			func(h slog.Handler) slog.Handler { return h.WithAttrs([]slog.Attr{slog.String("a", "b")}) },
			[]slog.Attr{slog.String("k", "v")},
			" a=b k=v",
		},
		{
			"WithAttrs twice",
			func(h slog.Handler) slog.Handler {
				return h.WithAttrs([]slog.Attr{slog.Int("a", 1)}).WithAttrs([]slog.Attr{slog.Int("b", 2)})
			},
			nil,
			" a=1 b=2",
		},
		{
			"WithAttrs empty",
			func(h slog.Handler) slog.Handler { return h.WithAttrs(nil) },
			[]slog.Attr{slog.Int("k", 1)},
			" k=1",
		},
		{
			"WithAttrs group and inline group",
			func(h slog.Handler) slog.Handler {
				return h.WithAttrs([]slog.Attr{slog.Group("g", slog.Int("a", 1)), slog.Group("", slog.Int("b", 2)), slog.Group("e")})
			},
			nil,
			" g.a=1 b=2",
		},
		{
			"WithGroup",
			func(h slog.Handler) slog.Handler { return h.WithGroup("G") },
			[]slog.Attr{slog.String("a", "b")},
			" G.a=b",
		},
		{
			"WithGroup and group attr",
			func(h slog.Handler) slog.Handler { return h.WithGroup("G") },
			[]slog.Attr{slog.Group("g", slog.Int("x", 1))},
			" G.g.x=1",
		},
		{
			"WithGroup empty name",
			func(h slog.Handler) slog.Handler { return h.WithGroup("").WithAttrs([]slog.Attr{slog.Int("a", 1)}) },
			[]slog.Attr{slog.Int("b", 2)},
			" a=1 b=2",
		},
		{
			"multi-With",
			func(h slog.Handler) slog.Handler {
				return h.WithAttrs([]slog.Attr{slog.String("a", "b")}).WithGroup("G").
					WithAttrs([]slog.Attr{slog.String("c", "d")}).WithGroup("H")
			},
			[]slog.Attr{slog.String("e", "f")},
			" a=b G.c=d G.H.e=f",
		},
		{
			"empty group record",
			func(h slog.Handler) slog.Handler {
				return h.WithAttrs([]slog.Attr{slog.String("a", "b")}).WithGroup("G").
					WithAttrs([]slog.Attr{slog.String("c", "d")}).WithGroup("H").WithGroup("I")
			},
			nil,
			" a=b G.c=d",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := handle(t, tt.build, nil, newRecord(fixedTime, slog.LevelInfo, "m", tt.attrs...))
			want := fixedStamp + " INFO m" + tt.want + "\n"
			if got != want {
				t.Errorf("got\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestDerivedIndependent checks that handlers derived from one parent do not
// see each other's attributes or groups, whatever spare capacity the
// parent's internal slices happen to have.
func TestDerivedIndependent(t *testing.T) {
	var groups [][]string
	opts := &slog.HandlerOptions{ReplaceAttr: func(gs []string, a slog.Attr) slog.Attr {
		if a.Key == "x" {
			groups = append(groups, slices.Clone(gs))
		}
		return a
	}}
	var buf bytes.Buffer
	ctx := context.Background()
	parent := logline.NewHandler(&buf, opts).WithGroup("A")
	for i := range 40 {
		key := "p" + strconv.Itoa(i)
		parent = parent.WithAttrs([]slog.Attr{slog.Int(key, i)}).WithGroup("G" + strconv.Itoa(i))
		left := parent.WithAttrs([]slog.Attr{slog.String("side", "left")}).WithGroup("L")
		right := parent.WithAttrs([]slog.Attr{slog.String("side", "right")}).WithGroup("R")
		groups = nil
		buf.Reset()
		for _, h := range []slog.Handler{left, right, parent} {
			if err := h.Handle(ctx, newRecord(time.Time{}, slog.LevelInfo, "m", slog.Int("x", 1))); err != nil {
				t.Fatal(err)
			}
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("step %d: got %d lines, want 3:\n%s", i, len(lines), buf.String())
		}
		prefix := "A."
		wantCommon := "INFO m"
		for j := 0; j <= i; j++ {
			wantCommon += " " + prefix + "p" + strconv.Itoa(j) + "=" + strconv.Itoa(j)
			prefix += "G" + strconv.Itoa(j) + "."
		}
		want := []string{
			wantCommon + " " + prefix + "side=left " + prefix + "L.x=1",
			wantCommon + " " + prefix + "side=right " + prefix + "R.x=1",
			wantCommon + " " + prefix + "x=1",
		}
		if !slices.Equal(lines, want) {
			t.Fatalf("step %d: got\n%s\nwant\n%s", i, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		base := strings.Split(strings.TrimSuffix(prefix, "."), ".")
		wantGroups := [][]string{append(slices.Clone(base), "L"), append(slices.Clone(base), "R"), base}
		if !slices.EqualFunc(groups, wantGroups, slices.Equal) {
			t.Fatalf("step %d: ReplaceAttr groups = %q, want %q", i, groups, wantGroups)
		}
	}
}

// countingValuer counts the calls of its LogValue method.
type countingValuer struct{ n atomic.Int32 }

func (c *countingValuer) LogValue() slog.Value {
	c.n.Add(1)
	return slog.StringValue("counted")
}

func TestWithAttrsFormattedOnce(t *testing.T) {
	var buf bytes.Buffer
	var replaced atomic.Int32
	opts := &slog.HandlerOptions{ReplaceAttr: func(gs []string, a slog.Attr) slog.Attr {
		if a.Key == "k" {
			replaced.Add(1)
		}
		return a
	}}
	cv := new(countingValuer)
	h := logline.NewHandler(&buf, opts).WithAttrs([]slog.Attr{slog.Any("k", cv)})
	for range 3 {
		if err := h.Handle(context.Background(), newRecord(fixedTime, slog.LevelInfo, "m")); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := strings.Count(buf.String(), " k=counted\n"), 3; got != want {
		t.Errorf("%d lines end in k=counted, want %d; output:\n%s", got, want, buf.String())
	}
	if got := cv.n.Load(); got != 1 {
		t.Errorf("LogValue called %d times, want 1", got)
	}
	if got := replaced.Load(); got != 1 {
		t.Errorf("ReplaceAttr called %d times for k, want 1", got)
	}
}

func TestLevelFiltering(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Leveler
		want  []string // levels written, in order
	}{
		{"nil means info", nil, []string{"INFO", "WARN", "ERROR"}},
		{"debug", slog.LevelDebug, []string{"DEBUG", "INFO", "WARN", "ERROR"}},
		{"warn", slog.LevelWarn, []string{"WARN", "ERROR"}},
		{"error+1", slog.LevelError + 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(logline.NewHandler(&buf, &slog.HandlerOptions{Level: tt.level}))
			for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
				l.Log(context.Background(), lv, "m")
			}
			if got := levelsOf(t, buf.String()); !slices.Equal(got, tt.want) {
				t.Errorf("levels written = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("nil options", func(t *testing.T) {
		h := logline.NewHandler(new(bytes.Buffer), nil)
		ctx := context.Background()
		if h.Enabled(ctx, slog.LevelDebug) {
			t.Errorf("Enabled(DEBUG) = true, want false")
		}
		if !h.Enabled(ctx, slog.LevelInfo) {
			t.Errorf("Enabled(INFO) = false, want true")
		}
	})

	t.Run("LevelVar", func(t *testing.T) {
		var buf bytes.Buffer
		var lv slog.LevelVar // INFO
		l := slog.New(logline.NewHandler(&buf, &slog.HandlerOptions{Level: &lv})).WithGroup("g")
		l.Debug("m")
		lv.Set(slog.LevelDebug)
		l.Debug("m") // a derived logger sees the change too
		if got, want := levelsOf(t, buf.String()), []string{"DEBUG"}; !slices.Equal(got, want) {
			t.Errorf("levels written = %q, want %q", got, want)
		}
	})
}

// levelsOf returns the level field of each line of out.
func levelsOf(t *testing.T, out string) []string {
	t.Helper()
	var levels []string
	for line := range strings.Lines(out) {
		m, err := parseLine(line)
		if err != nil {
			t.Fatalf("parsing %q: %v", line, err)
		}
		levels = append(levels, m[slog.LevelKey].(string))
	}
	return levels
}

func TestReplaceAttr(t *testing.T) {
	dropTime := func(gs []string, a slog.Attr) slog.Attr {
		if gs == nil && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	tests := []struct {
		name  string
		rep   func([]string, slog.Attr) slog.Attr
		build func(slog.Handler) slog.Handler
		attrs []slog.Attr
		want  string
	}{
		{"identity", func(_ []string, a slog.Attr) slog.Attr { return a }, nil,
			[]slog.Attr{slog.Int("k", 1), slog.Group("g", slog.Int("a", 2))},
			fixedStamp + " INFO m k=1 g.a=2\n"},
		{"drop time", dropTime, nil, []slog.Attr{slog.String("k", "v")}, "INFO m k=v\n"},
		{"lower-case level", func(gs []string, a slog.Attr) slog.Attr {
			if gs == nil && a.Key == slog.LevelKey {
				a.Value = slog.StringValue(strings.ToLower(a.Value.Any().(slog.Level).String()))
			}
			return a
		}, nil, nil, fixedStamp + " info m\n"},
		{"change message and time", func(gs []string, a slog.Attr) slog.Attr {
			switch {
			case gs != nil:
			case a.Key == slog.MessageKey:
				a.Value = slog.StringValue("[" + a.Value.String() + "]")
			case a.Key == slog.TimeKey:
				a.Value = slog.TimeValue(a.Value.Time().Add(time.Hour))
			}
			return a
		}, nil, nil, "2026-11-26T08:43:00.123Z INFO [m]\n"},
		{"built-ins to other kinds", func(gs []string, a slog.Attr) slog.Attr {
			switch {
			case gs != nil:
			case a.Key == slog.TimeKey:
				a.Value = slog.StringValue("some time")
			case a.Key == slog.LevelKey:
				a.Value = slog.IntValue(3)
			case a.Key == slog.MessageKey:
				a.Value = slog.GroupValue(slog.Int("a", 1))
			}
			return a
		}, nil, []slog.Attr{slog.Int("k", 1)}, `"some time" 3 "[a=1]" k=1` + "\n"},
		{"drop all built-ins", func(gs []string, a slog.Attr) slog.Attr {
			if gs == nil && a.Key != "k" {
				return slog.Attr{}
			}
			return a
		}, nil, []slog.Attr{slog.String("k", "v")}, "k=v\n"},
		{"redact in groups", func(gs []string, a slog.Attr) slog.Attr {
			if slices.Equal(gs, []string{"req", "user"}) && a.Key == "password" {
				a.Value = slog.StringValue("REDACTED")
			}
			return a
		}, func(h slog.Handler) slog.Handler { return h.WithGroup("req") },
			[]slog.Attr{slog.Group("user", slog.String("name", "bob"), slog.String("password", "hunter2")),
				slog.String("password", "top level is kept")},
			fixedStamp + ` INFO m req.user.name=bob req.user.password=REDACTED req.password="top level is kept"` + "\n"},
		{"drop attr", func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "secret" {
				return slog.Attr{}
			}
			return a
		}, nil, []slog.Attr{slog.Int("a", 1), slog.String("secret", "x"), slog.Group("g", slog.String("secret", "y"))},
			fixedStamp + " INFO m a=1\n"},
		{"value to group", func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "pt" {
				return slog.Group("pt", slog.Int("x", 1), slog.Int("y", 2))
			}
			return a
		}, nil, []slog.Attr{slog.Int("pt", 0)}, fixedStamp + " INFO m pt.x=1 pt.y=2\n"},
		{"value to LogValuer", func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "k" {
				a.Value = slog.AnyValue(valuer{slog.StringValue("late")})
			}
			return a
		}, nil, []slog.Attr{slog.Int("k", 0)}, fixedStamp + " INFO m k=late\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := handle(t, tt.build, &slog.HandlerOptions{ReplaceAttr: tt.rep}, newRecord(fixedTime, slog.LevelInfo, "m", tt.attrs...))
			if got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestAddSource(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(logline.NewHandler(&buf, &slog.HandlerOptions{AddSource: true})).With("k", "v")
	l.Info("m")
	got := buf.String()
	re := regexp.MustCompile(`^\S+ INFO m source=\S*/logline_test\.go:\d+ k=v\n$`)
	if !re.MatchString(got) {
		t.Errorf("got %q, want a match for %s", got, re)
	}

	// A record without a PC has no source.
	buf.Reset()
	h := logline.NewHandler(&buf, &slog.HandlerOptions{AddSource: true})
	if err := h.Handle(context.Background(), newRecord(fixedTime, slog.LevelInfo, "m")); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), fixedStamp+" INFO m\n"; got != want {
		t.Errorf("record with zero PC: got %q, want %q", got, want)
	}
}

// TestBuiltinKeysAsAttrs checks that attributes that happen to have the
// keys of the built-ins are written, and passed to ReplaceAttr once, like
// any other: the handler tells them apart from the built-ins it removes
// from what its TextHandler writes.
func TestBuiltinKeysAsAttrs(t *testing.T) {
	keys := []string{slog.TimeKey, slog.LevelKey, slog.MessageKey, slog.SourceKey}
	var seen []string
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindString && a.Value.String() == "x" {
			seen = append(seen, a.Key)
		}
		return a
	}}
	var attrs []slog.Attr
	for _, k := range keys {
		attrs = append(attrs, slog.String(k, "x"))
	}
	want := fixedStamp + " INFO m time=x level=x msg=x source=x time=x level=x msg=x source=x\n"
	got := handle(t, func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) }, opts,
		newRecord(fixedTime, slog.LevelInfo, "m", attrs...))
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if want := append(slices.Clone(keys), keys...); !slices.Equal(seen, want) {
		t.Errorf("ReplaceAttr saw the keys %q, want %q", seen, want)
	}
	// The same without ReplaceAttr.
	if got := handle(t, func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) }, nil,
		newRecord(fixedTime, slog.LevelInfo, "m", attrs...)); got != want {
		t.Errorf("without ReplaceAttr: got\n%q\nwant\n%q", got, want)
	}
}

// selfLogger is a LogValuer that logs through a logger when resolved.
type selfLogger struct{ l *slog.Logger }

func (s selfLogger) LogValue() slog.Value {
	s.l.Info("resolving")
	return slog.StringValue("resolved")
}

// TestLogValuerMayLog checks that a LogValuer can log through the handler
// that resolves it: values are resolved before the handler's mutex is
// taken.
func TestLogValuerMayLog(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(logline.NewHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Info("m", "v", selfLogger{l})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Info did not return: deadlock?")
	}
	if got, want := buf.String(), "INFO resolving\nINFO m v=resolved\n"; got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

// TestLongLine checks that a line far longer than the buffers the handler
// keeps for reuse is written whole, and so are the lines after it.
func TestLongLine(t *testing.T) {
	var buf bytes.Buffer
	h := logline.NewHandler(&buf, nil)
	long := strings.Repeat("x", 100<<10)
	for _, v := range []string{long, "short", long, "short"} {
		buf.Reset()
		if err := h.Handle(context.Background(), newRecord(fixedTime, slog.LevelInfo, "m", slog.String("v", v))); err != nil {
			t.Fatal(err)
		}
		if got, want := buf.String(), fixedStamp+" INFO m v="+v+"\n"; got != want {
			t.Fatalf("wrote %d bytes, want the %d of %.40q...", len(got), len(want), want)
		}
	}
}

// errWriter fails every Write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestHandleWriteError(t *testing.T) {
	h := logline.NewHandler(errWriter{}, nil)
	err := h.Handle(context.Background(), newRecord(fixedTime, slog.LevelInfo, "m"))
	if err == nil || err.Error() != "disk on fire" {
		t.Errorf("Handle error = %v, want disk on fire", err)
	}
}

// writeRecorder records each Write call. It has no lock of its own on
// purpose: the race detector reports concurrent writes unless the handler
// serialises them.
type writeRecorder struct{ writes []string }

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestConcurrentLines(t *testing.T) {
	const (
		workers = 8
		perG    = 200
	)
	w := new(writeRecorder)
	root := slog.New(logline.NewHandler(w, nil))
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			// Each goroutine logs through its own derived handler, so the
			// lock must be shared between derived handlers.
			l := root.With("worker", g).WithGroup("w")
			pad := strings.Repeat("x", 50*g)
			for i := range perG {
				l.Info("tick tock", "seq", i, "pad", pad)
			}
		})
	}
	wg.Wait()

	if got, want := len(w.writes), workers*perG; got != want {
		t.Fatalf("got %d Write calls, want %d", got, want)
	}
	next := make([]int, workers) // next seq expected from each worker
	for _, line := range w.writes {
		if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
			t.Fatalf("Write(%q) is not exactly one line", line)
		}
		m, err := parseLine(line)
		if err != nil {
			t.Fatalf("parsing %q: %v", line, err)
		}
		if m[slog.MessageKey] != "tick tock" {
			t.Fatalf("line %q: msg = %q, want %q", line, m[slog.MessageKey], "tick tock")
		}
		g, err := strconv.Atoi(fmt.Sprint(m["worker"]))
		if err != nil || g < 0 || g >= workers {
			t.Fatalf("line %q: bad worker %v", line, m["worker"])
		}
		grp, _ := m["w"].(map[string]any)
		if want := strconv.Itoa(next[g]); grp["seq"] != want {
			t.Fatalf("line %q: w.seq = %v, want %s", line, grp["seq"], want)
		}
		if want := strings.Repeat("x", 50*g); grp["pad"] != want {
			t.Fatalf("line %q: w.pad has the wrong length", line)
		}
		next[g]++
	}
}

// TestSlogtest runs the standard handler conformance tests. Every one of
// them can be met by this line format: groups are written as dotted keys,
// which parseLine turns back into nested maps. The one thing the format
// cannot express, a dot inside a key or group name (indistinguishable from
// nesting, as with slog.TextHandler), does not occur in slogtest.
func TestSlogtest(t *testing.T) {
	tests := []struct {
		name string
		opts *slog.HandlerOptions
	}{
		{"nil options", nil},
		{"identity ReplaceAttr", &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return a }}},
		{"AddSource", &slog.HandlerOptions{AddSource: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			newHandler := func(*testing.T) slog.Handler {
				buf.Reset()
				return logline.NewHandler(&buf, tt.opts)
			}
			result := func(t *testing.T) map[string]any {
				out := buf.String()
				if strings.Count(out, "\n") != 1 {
					t.Fatalf("output %q is not exactly one line", out)
				}
				m, err := parseLine(out)
				if err != nil {
					t.Fatalf("parsing %q: %v", out, err)
				}
				return m
			}
			slogtest.Run(t, newHandler, result)
		})
	}
}

// parseLine parses one line written by Handler into a map in the form
// slogtest wants: the time (as a time.Time) under slog.TimeKey, the level
// under slog.LevelKey, the message under slog.MessageKey and each attribute
// under its key, with dotted keys turned into nested maps. Attribute values
// are unquoted strings.
//
// The message is free text, so where it ends is a guess: it ends at the
// first space after which the rest of the line parses entirely as
// " key=value" attributes. A message that itself ends in something like
// " a=b" is therefore misread; that is a limit of this parser, which
// only serves the tests, not of the handler.
func parseLine(line string) (map[string]any, error) {
	line = strings.TrimSuffix(line, "\n")
	m := make(map[string]any)
	if tok, rest, ok := strings.Cut(line, " "); ok {
		if ts, err := time.Parse(logline.TimeLayout, tok); err == nil {
			m[slog.TimeKey] = ts
			line = rest
		}
	}
	level, rest, ok := strings.Cut(line, " ")
	if !ok {
		return nil, fmt.Errorf("no space after level %q", level)
	}
	m[slog.LevelKey] = level

	msg, attrs, err := splitMessage(rest)
	if err != nil {
		return nil, err
	}
	m[slog.MessageKey] = msg
	for _, kv := range attrs {
		if err := insert(m, strings.Split(kv[0], "."), kv[1]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// splitMessage splits s into the message and the attributes that follow it.
func splitMessage(s string) (string, [][2]string, error) {
	if strings.HasPrefix(s, `"`) { // a quoted message
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", nil, fmt.Errorf("bad quoted message: %v", err)
		}
		msg, _ := strconv.Unquote(q)
		attrs, err := parseAttrs(s[len(q):])
		return msg, attrs, err
	}
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			continue
		}
		if attrs, err := parseAttrs(s[i:]); err == nil {
			return s[:i], attrs, nil
		}
	}
	return s, nil, nil
}

// parseAttrs parses s as a sequence of " key=value" attributes.
func parseAttrs(s string) ([][2]string, error) {
	var attrs [][2]string
	for s != "" {
		if s[0] != ' ' {
			return nil, fmt.Errorf("want space before attribute at %q", s)
		}
		key, rest, err := parseToken(s[1:], '=')
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(rest, "=") {
			return nil, fmt.Errorf("want = after key %q", key)
		}
		val, rest, err := parseToken(rest[1:], ' ')
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, [2]string{key, val})
		s = rest
	}
	return attrs, nil
}

// parseToken parses a quoted string, or an unquoted one ending before end
// or at the end of s, and returns it and the rest of s.
func parseToken(s string, end byte) (tok, rest string, err error) {
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", "", err
		}
		tok, _ = strconv.Unquote(q)
		return tok, s[len(q):], nil
	}
	i := strings.IndexByte(s, end)
	if i < 0 {
		i = len(s)
	}
	tok = s[:i]
	if tok == "" || strings.ContainsAny(tok, ` ="`) {
		return "", "", fmt.Errorf("bad unquoted token %q", tok)
	}
	return tok, s[i:], nil
}

// insert stores val in m under the path of keys, creating nested maps.
func insert(m map[string]any, path []string, val string) error {
	for _, k := range path[:len(path)-1] {
		sub, ok := m[k].(map[string]any)
		if !ok {
			if _, exists := m[k]; exists {
				return fmt.Errorf("key %q is both a value and a group", k)
			}
			sub = make(map[string]any)
			m[k] = sub
		}
		m = sub
	}
	m[path[len(path)-1]] = val
	return nil
}

func TestParseLine(t *testing.T) {
	line := fixedStamp + ` INFO+2 a message with spaces a=b "c d"=1 g.h.i="x y" g.j=""` + "\n"
	got, err := parseLine(line)
	if err != nil {
		t.Fatalf("parseLine: %v", err)
	}
	want := map[string]any{
		slog.TimeKey:    time.Date(2026, 11, 26, 7, 43, 0, 123_000_000, time.UTC),
		slog.LevelKey:   "INFO+2",
		slog.MessageKey: "a message with spaces",
		"a":             "b",
		"c d":           "1",
		"g":             map[string]any{"h": map[string]any{"i": "x y"}, "j": ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLine(%q) =\n%v\nwant\n%v", line, got, want)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		format  string
		wantErr string // empty for success
	}{
		{"text", ""},
		{"json", ""},
		{"", `logline: unknown log format "" (want text or json)`},
		{"TEXT", `logline: unknown log format "TEXT" (want text or json)`},
		{"xml", `logline: unknown log format "xml" (want text or json)`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			l, err := logline.New(new(bytes.Buffer), tt.format, nil)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("New(%q) error = %v, want %s", tt.format, err, tt.wantErr)
				}
				if l != nil {
					t.Errorf("New(%q) logger = %v, want nil", tt.format, l)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.format, err)
			}
			switch h := l.Handler().(type) {
			case *logline.Handler:
				if tt.format != "text" {
					t.Errorf("New(%q) handler is %T", tt.format, h)
				}
			case *slog.JSONHandler:
				if tt.format != "json" {
					t.Errorf("New(%q) handler is %T", tt.format, h)
				}
			default:
				t.Errorf("New(%q) handler is %T", tt.format, h)
			}
		})
	}

	t.Run("nil writer", func(t *testing.T) {
		if _, err := logline.New(nil, "text", nil); err == nil {
			t.Errorf("New(nil, ...) error = nil, want an error")
		}
	})
}

func TestNewLevel(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := logline.New(&buf, format, slog.LevelWarn)
			if err != nil {
				t.Fatal(err)
			}
			l.Info("dropped")
			l.Warn("kept")
			out := buf.String()
			if strings.Contains(out, "dropped") || !strings.Contains(out, "kept") || strings.Count(out, "\n") != 1 {
				t.Errorf("with level WARN, got output %q, want only the WARN line", out)
			}
		})
	}
}

func TestNewJSONUTC(t *testing.T) {
	var buf bytes.Buffer
	l, err := logline.New(&buf, "json", nil)
	if err != nil {
		t.Fatal(err)
	}
	cet := time.FixedZone("CET", 60*60)
	r := newRecord(fixedTime.In(cet), slog.LevelInfo, "m", slog.Time("at", fixedTime.In(cet)))
	if err := l.Handler().Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("output %q is not JSON: %v", buf.String(), err)
	}
	const want = "2026-11-26T07:43:00.123999999Z"
	for _, key := range []string{slog.TimeKey, "at"} {
		if got[key] != want {
			t.Errorf("%s = %v, want %s", key, got[key], want)
		}
	}
	if got[slog.MessageKey] != "m" || got[slog.LevelKey] != "INFO" {
		t.Errorf("got %v, want msg m and level INFO", got)
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"debug", slog.LevelDebug, false},
		{"DEBUG", slog.LevelDebug, false},
		{"info", slog.LevelInfo, false},
		{"Info", slog.LevelInfo, false},
		{"warn", slog.LevelWarn, false},
		{"WARN", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{"eRRoR", slog.LevelError, false},
		{"info+2", slog.LevelInfo + 2, false},
		{"", 0, true},
		{"verbose", 0, true},
		{"warning", 0, true},
		{" info", 0, true},
		{"3", 0, true},
	}
	for _, tt := range tests {
		got, err := logline.ParseLevel(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseLevel(%q) = %v, nil; want an error", tt.in, got)
				continue
			}
			if !strings.HasPrefix(err.Error(), "logline: invalid log level "+strconv.Quote(tt.in)) {
				t.Errorf("ParseLevel(%q) error = %q, want it to name the input", tt.in, err)
			}
			if errors.Unwrap(err) == nil {
				t.Errorf("ParseLevel(%q) error %q wraps nothing", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
	}
}
