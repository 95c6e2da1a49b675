package logline

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// TimeLayout is the layout, for [time.Time.Format], of the time field and of
// time-valued attributes in the lines written by [Handler]. Times are
// converted to UTC before formatting, so the trailing Z is always true.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Handler is a [slog.Handler] that writes each record as one line in the
// shape described in the package documentation. It writes the time, level
// and message itself and has a [slog.TextHandler] format the attributes.
//
// Of the [slog.HandlerOptions]:
//
//   - Level is honoured as by the standard handlers; nil means
//     [slog.LevelInfo]. It is consulted on every call, so a [slog.LevelVar]
//     may change it at run time.
//   - AddSource adds a "source" attribute, FILE:LINE, as the first attribute
//     after the message, when the record's PC is not zero.
//   - ReplaceAttr is called as by [slog.TextHandler]: once for each
//     non-group attribute, with the names of the enclosing groups, and once
//     for each built-in (time, level, msg, source) with nil groups; a zero
//     [slog.Attr] returned removes the attribute. Because time, level and
//     message are identified by their position in the line and not by a key,
//     ReplaceAttr may change or remove their values, but a key it gives them
//     is not printed.
//
// Handler ignores the context passed to Handle. Attributes given to
// WithAttrs are resolved, passed through ReplaceAttr and formatted once,
// when WithAttrs is called, not again for every record.
//
// A Handler and all the handlers derived from it with WithAttrs and
// WithGroup share one mutex, and each record is written with one Write call
// made while holding it, so lines from concurrent goroutines never
// interleave even when the writer itself is not safe for concurrent use.
// Records are formatted before the mutex is taken, so ReplaceAttr and
// [slog.LogValuer] methods never run while it is held.
type Handler struct {
	opts slog.HandlerOptions
	out  *output // shared with every derived handler

	// attrs holds the WithAttrs attributes, already formatted, each as
	// " key=value". It is never appended to in place: derived handlers get
	// a fresh copy, so handlers sharing a prefix of it do not interfere.
	attrs []byte
	// groups is the WithGroup group names.
	groups []string
}

var _ slog.Handler = (*Handler)(nil)

// output is the part of a Handler shared with the handlers derived from it.
type output struct {
	mu         sync.Mutex // held for each Write to w
	w          io.Writer
	formatters sync.Pool // of *formatter, calling the handlers' ReplaceAttr
}

// NewHandler returns a [Handler] that writes to w with the given options.
// A nil opts means the zero [slog.HandlerOptions]: level Info, no source,
// no ReplaceAttr.
func NewHandler(w io.Writer, opts *slog.HandlerOptions) *Handler {
	h := &Handler{out: &output{w: w}}
	if opts != nil {
		h.opts = *opts
	}
	rep := h.opts.ReplaceAttr
	h.out.formatters.New = func() any { return newFormatter(rep) }
	return h
}

// Enabled reports whether h writes records at the given level, that is,
// whether level is at least the minimum level of h's options.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	minLevel := slog.LevelInfo
	if h.opts.Level != nil {
		minLevel = h.opts.Level.Level()
	}
	return level >= minLevel
}

// WithAttrs returns a [Handler] that writes h's attributes followed by
// attrs on every line. The attributes are formatted now, once.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	r := slog.NewRecord(time.Time{}, 0, "", 0)
	r.AddAttrs(attrs...)
	f := h.out.get()
	defer h.out.put(f)
	f.appendAttrs(h.groups, r, false)
	h2 := *h
	// Clip so that appending copies instead of writing into an array
	// that h, or another handler derived from it, still uses.
	h2.attrs = append(slices.Clip(h.attrs), f.buf...)
	return &h2
}

// WithGroup returns a [Handler] that writes the keys of all attributes
// added later, by WithAttrs or in a record, prefixed with name and a dot.
// If name is empty, WithGroup returns h.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(slices.Clip(h.groups), name)
	return &h2
}

// Handle writes r as one line, in one Write call, and returns the error of
// that call.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	f := h.out.get()
	defer h.out.put(f)
	if h.opts.ReplaceAttr == nil { // the same as below, only faster
		if !r.Time.IsZero() {
			f.buf = r.Time.UTC().AppendFormat(f.buf, TimeLayout)
			f.buf = append(f.buf, ' ')
		}
		f.buf = append(f.buf, r.Level.String()...)
		f.buf = append(f.buf, ' ')
		f.buf = appendMessage(f.buf, r.Message)
	} else {
		if !r.Time.IsZero() {
			f.appendBuiltin(slog.Time(slog.TimeKey, r.Time))
		}
		f.appendBuiltin(slog.Any(slog.LevelKey, r.Level))
		f.appendBuiltin(slog.String(slog.MessageKey, r.Message))
	}
	start := len(f.buf)
	if h.opts.AddSource {
		if src := r.Source(); src != nil {
			// Like slog's handlers, source belongs to no group.
			if a, ok := f.builtin(slog.Any(slog.SourceKey, src)); ok {
				f.appendRaw(a)
			}
		}
	}
	f.buf = append(f.buf, h.attrs...)
	f.appendAttrs(h.groups, r, false)
	if start == 0 && len(f.buf) > 0 {
		// ReplaceAttr removed every built-in: drop the space
		// that introduces the first attribute.
		f.buf = append(f.buf[:0], f.buf[1:]...)
	}
	f.buf = append(f.buf, '\n')

	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := h.out.w.Write(f.buf)
	return err
}

// maxPooled is the capacity above which a line buffer is not kept for reuse,
// so that one huge record does not pin a huge buffer.
const maxPooled = 16 << 10

// get returns a formatter with an empty buffer.
func (o *output) get() *formatter {
	f := o.formatters.Get().(*formatter)
	f.buf = f.buf[:0]
	return f
}

// put returns f to the pool.
func (o *output) put(f *formatter) {
	if cap(f.buf) > maxPooled {
		f.buf = nil
	}
	o.formatters.Put(f)
}

// A formatter builds one line at a time in buf, with the help of a
// [slog.TextHandler] that writes into buf. A formatter is used by one
// goroutine at a time, so its TextHandler's ReplaceAttr, the method replace,
// may use the formatter's fields to know what it is called for.
type formatter struct {
	buf  []byte
	text *slog.TextHandler // writes to the formatter, which appends to buf
	rep  func([]string, slog.Attr) slog.Attr

	raw      bool // replace is not to call rep: the attributes have been through it
	builtins int  // how many more calls of replace are for built-ins

	attrs, nest []slog.Attr // scratch space for appendAttrs
}

// newFormatter returns a formatter that calls rep, if it is not nil, as
// ReplaceAttr.
func newFormatter(rep func([]string, slog.Attr) slog.Attr) *formatter {
	f := &formatter{buf: make([]byte, 0, 1024), rep: rep}
	f.text = slog.NewTextHandler(f, &slog.HandlerOptions{ReplaceAttr: f.replace})
	return f
}

// Write appends p to f.buf. f.text calls it once for each record.
func (f *formatter) Write(p []byte) (int, error) {
	f.buf = append(f.buf, p...)
	return len(p), nil
}

// replace is the ReplaceAttr of f.text. It removes the built-in level and
// message of the records given to f.text, calls rep for every other
// attribute unless f.raw is set, and converts times to UTC.
func (f *formatter) replace(groups []string, a slog.Attr) slog.Attr {
	if f.builtins > 0 {
		f.builtins--
		return slog.Attr{}
	}
	if f.rep != nil && !f.raw {
		a = f.rep(groups, a)
		a.Value = a.Value.Resolve()
	}
	if a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}

// appendAttrs appends to f.buf the attributes of r, inside the given groups,
// as f.text writes them, each preceded by a space. The time, level and
// message of r are ignored. If raw is set, ReplaceAttr is not called.
func (f *formatter) appendAttrs(groups []string, r slog.Record, raw bool) {
	if r.NumAttrs() == 0 {
		return
	}
	if len(groups) > 0 {
		// Nest the attributes in one group attribute for each group name,
		// built from the inside out.
		f.attrs = f.attrs[:0]
		r.Attrs(func(a slog.Attr) bool {
			f.attrs = append(f.attrs, a)
			return true
		})
		n := len(groups) - 1
		f.nest = slices.Grow(f.nest[:0], n)[:n]
		a := slog.Attr{Key: groups[n], Value: slog.GroupValue(f.attrs...)}
		for i := n - 1; i >= 0; i-- {
			f.nest[i] = a
			a = slog.Attr{Key: groups[i], Value: slog.GroupValue(f.nest[i : i+1]...)}
		}
		r = slog.NewRecord(time.Time{}, 0, "", 0)
		r.AddAttrs(a)
	}
	// A zero time and no AddSource leave, of the built-ins, level and msg,
	// which f.text passes to replace before the attributes.
	r.Time = time.Time{}
	f.builtins = 2
	f.raw = raw
	mark := len(f.buf)
	f.buf = append(f.buf, ' ')
	_ = f.text.Handle(context.Background(), r) // never fails: Write does not
	// Let the pooled formatter hold no attribute values.
	clear(f.attrs)
	clear(f.nest)
	f.buf = bytes.TrimSuffix(f.buf, []byte("\n"))
	if len(f.buf) == mark+1 { // f.text wrote no attribute
		f.buf = f.buf[:mark]
	}
}

// appendBuiltin appends the field of the built-in attribute a, time,
// level or message, after passing a through ReplaceAttr, unless that removes
// it. Values of other kinds than those of the built-ins are written as
// attribute values.
func (f *formatter) appendBuiltin(a slog.Attr) {
	key := a.Key
	a, ok := f.builtin(a)
	if !ok {
		return
	}
	f.appendSep()
	v := a.Value
	switch {
	case key == slog.TimeKey && v.Kind() == slog.KindTime:
		f.buf = v.Time().UTC().AppendFormat(f.buf, TimeLayout)
	case key == slog.LevelKey && isLevel(v):
		f.buf = append(f.buf, v.Any().(slog.Level).String()...)
	case key == slog.MessageKey && v.Kind() == slog.KindString:
		f.buf = appendMessage(f.buf, v.String())
	default:
		if v.Kind() == slog.KindGroup {
			// f.text would spread a group over several attributes.
			v = slog.StringValue(v.String())
		}
		mark := len(f.buf)
		f.appendRaw(slog.Attr{Key: "v", Value: v})
		if rest, ok := bytes.CutPrefix(f.buf[mark:], []byte(" v=")); ok {
			f.buf = append(f.buf[:mark], rest...)
		}
	}
}

// isLevel reports whether v holds a [slog.Level].
func isLevel(v slog.Value) bool {
	if v.Kind() != slog.KindAny {
		return false
	}
	_, ok := v.Any().(slog.Level)
	return ok
}

// builtin passes the built-in attribute a through ReplaceAttr, if there is
// one, and returns the result, or false if ReplaceAttr removed it.
func (f *formatter) builtin(a slog.Attr) (slog.Attr, bool) {
	if f.rep != nil {
		a = f.rep(nil, a)
		a.Value = a.Value.Resolve()
	}
	// An empty attribute, the zero Attr, is ignored as by slog's handlers.
	return a, a.Key != "" || a.Value.Kind() != slog.KindAny || a.Value.Any() != nil
}

// appendRaw appends a, which has been through ReplaceAttr, as " key=value".
func (f *formatter) appendRaw(a slog.Attr) {
	r := slog.NewRecord(time.Time{}, 0, "", 0)
	r.AddAttrs(a)
	f.appendAttrs(nil, r, true)
}

// appendSep appends the space separating a field from the one before it,
// if there is one.
func (f *formatter) appendSep() {
	if len(f.buf) > 0 {
		f.buf = append(f.buf, ' ')
	}
}

// appendMessage appends the message s as it is, unless it holds a character
// that is not printable, in which case it appends it quoted so that the
// record stays on one line.
func appendMessage(buf []byte, s string) []byte {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.AppendQuote(buf, s)
		}
		i += size
	}
	return append(buf, s...)
}
