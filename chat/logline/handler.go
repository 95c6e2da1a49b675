package logline

import (
	"context"
	"encoding"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf8"
)

// TimeLayout is the layout, for [time.Time.Format], of the time field and of
// time-valued attributes in the lines written by [Handler]. Times are
// converted to UTC before formatting, so the trailing Z is always true.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Handler is a [slog.Handler] that writes each record as one line in the
// shape described in the package documentation.
//
// Of the [slog.HandlerOptions]:
//
//   - Level is honoured as by the standard handlers; nil means
//     [slog.LevelInfo]. It is consulted on every call, so a [slog.LevelVar]
//     may change it at run time.
//   - AddSource adds a "source" attribute, FILE:LINE, as the first attribute
//     after the message, when the record's PC is not zero.
//   - ReplaceAttr is called as by the standard handlers: once for each
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
type Handler struct {
	w    io.Writer
	opts slog.HandlerOptions
	mu   *sync.Mutex // shared with every derived handler

	// attrs holds the WithAttrs attributes, already formatted, each as
	// " key=value". It is never appended to in place: derived handlers get
	// a fresh copy, so handlers sharing a prefix of it do not interfere.
	attrs []byte
	// prefix is the WithGroup group names, each followed by a dot.
	prefix string
	// groups is the WithGroup group names, for ReplaceAttr.
	groups []string
}

var _ slog.Handler = (*Handler)(nil)

// NewHandler returns a [Handler] that writes to w with the given options.
// A nil opts means the zero [slog.HandlerOptions]: level Info, no source,
// no ReplaceAttr.
func NewHandler(w io.Writer, opts *slog.HandlerOptions) *Handler {
	h := &Handler{w: w, mu: new(sync.Mutex)}
	if opts != nil {
		h.opts = *opts
	}
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
	h2 := *h
	// Clip so that appending copies instead of writing into an array
	// that h, or another handler derived from it, still uses.
	buf := slices.Clip(h.attrs)
	for _, a := range attrs {
		buf = h.appendAttr(buf, h.prefix, h.groups, a)
	}
	h2.attrs = buf
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
	h2.prefix = h.prefix + name + "."
	h2.groups = append(slices.Clip(h.groups), name)
	return &h2
}

// bufPool holds line buffers between calls to Handle.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooled is the capacity above which a line buffer is not kept for reuse,
// so that one huge record does not pin a huge buffer.
const maxPooled = 16 << 10

// Handle writes r as one line, in one Write call, and returns the error of
// that call.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= maxPooled {
			*bp = buf[:0]
			bufPool.Put(bp)
		}
	}()

	if h.opts.ReplaceAttr == nil {
		if !r.Time.IsZero() {
			buf = r.Time.UTC().AppendFormat(buf, TimeLayout)
			buf = append(buf, ' ')
		}
		buf = append(buf, r.Level.String()...)
		buf = append(buf, ' ')
		buf = appendMessage(buf, r.Message)
	} else {
		buf = h.appendBuiltins(buf, r)
	}
	start := len(buf)
	if h.opts.AddSource {
		if src := r.Source(); src != nil {
			// Like slog's handlers, source belongs to no group.
			buf = h.appendAttr(buf, "", nil, slog.Any(slog.SourceKey, src))
		}
	}
	buf = append(buf, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		buf = h.appendAttr(buf, h.prefix, h.groups, a)
		return true
	})
	if start == 0 && len(buf) > 0 {
		// ReplaceAttr removed every built-in: drop the space
		// that introduces the first attribute.
		buf = append(buf[:0], buf[1:]...)
	}
	buf = append(buf, '\n')

	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(buf)
	return err
}

// appendBuiltins appends the time, level and message fields of r after
// passing each through ReplaceAttr, leaving out those it removes.
func (h *Handler) appendBuiltins(buf []byte, r slog.Record) []byte {
	if !r.Time.IsZero() {
		if v, ok := h.builtin(slog.Time(slog.TimeKey, r.Time)); ok {
			buf = appendValue(buf, v)
		}
	}
	if v, ok := h.builtin(slog.Any(slog.LevelKey, r.Level)); ok {
		buf = appendSep(buf)
		if l, isLevel := v.Any().(slog.Level); isLevel && v.Kind() == slog.KindAny {
			buf = append(buf, l.String()...)
		} else {
			buf = appendValue(buf, v)
		}
	}
	if v, ok := h.builtin(slog.String(slog.MessageKey, r.Message)); ok {
		buf = appendSep(buf)
		if v.Kind() == slog.KindString {
			buf = appendMessage(buf, v.String())
		} else {
			buf = appendValue(buf, v)
		}
	}
	return buf
}

// builtin passes the built-in attribute a through ReplaceAttr and returns
// its value, or false if ReplaceAttr removed it.
func (h *Handler) builtin(a slog.Attr) (slog.Value, bool) {
	a = h.opts.ReplaceAttr(nil, a)
	a.Value = a.Value.Resolve()
	if isEmpty(a) {
		return slog.Value{}, false
	}
	return a.Value, true
}

// appendAttr appends a to buf as " key=value", or, if a is a group, appends
// its attributes; prefix and groups describe the enclosing groups. It
// follows the rules of slog's own handlers: values are resolved, and
// ReplaceAttr is called for non-group attributes, before empty attributes
// and empty groups are dropped.
func (h *Handler) appendAttr(buf []byte, prefix string, groups []string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if rep := h.opts.ReplaceAttr; rep != nil && a.Value.Kind() != slog.KindGroup {
		a = rep(groups, a)
		a.Value = a.Value.Resolve()
	}
	if isEmpty(a) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		attrs := a.Value.Group()
		if len(attrs) == 0 {
			return buf
		}
		if a.Key != "" { // a group with an empty key is inlined
			prefix += a.Key + "."
			groups = append(slices.Clip(groups), a.Key)
		}
		for _, ga := range attrs {
			buf = h.appendAttr(buf, prefix, groups, ga)
		}
		return buf
	}
	if a.Value.Kind() == slog.KindAny {
		if src, ok := a.Value.Any().(*slog.Source); ok {
			if src == nil || (src.File == "" && src.Line == 0 && src.Function == "") {
				return buf
			}
			a.Value = slog.StringValue(src.File + ":" + strconv.Itoa(src.Line))
		}
	}
	buf = append(buf, ' ')
	buf = appendString(buf, prefix+a.Key)
	buf = append(buf, '=')
	return appendValue(buf, a.Value)
}

// isEmpty reports whether a is the zero Attr, which handlers ignore.
func isEmpty(a slog.Attr) bool {
	return a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil
}

// appendSep appends the space separating a field from the one before it,
// if there is one.
func appendSep(buf []byte) []byte {
	if len(buf) > 0 {
		buf = append(buf, ' ')
	}
	return buf
}

// appendValue appends v formatted as slog's TextHandler would, except that
// times are written in UTC in [TimeLayout].
func appendValue(buf []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendString(buf, v.String())
	case slog.KindTime:
		return v.Time().UTC().AppendFormat(buf, TimeLayout)
	case slog.KindInt64:
		return strconv.AppendInt(buf, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(buf, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(buf, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(buf, v.Bool())
	case slog.KindDuration:
		return append(buf, v.Duration().String()...)
	case slog.KindAny, slog.KindLogValuer:
		x := v.Any()
		if tm, ok := x.(encoding.TextMarshaler); ok {
			data, err := tm.MarshalText()
			if err != nil {
				return appendString(buf, "!ERROR:"+err.Error())
			}
			return appendString(buf, string(data))
		}
		if err, ok := x.(error); ok {
			return appendString(buf, errorText(err))
		}
		if bs, ok := byteSlice(x); ok {
			return strconv.AppendQuote(buf, string(bs))
		}
		return appendString(buf, fmt.Sprintf("%+v", x))
	default: // slog.KindGroup, reached only for a built-in changed by ReplaceAttr
		return appendString(buf, v.String())
	}
}

// errorText returns err.Error(), or "<nil>" for a nil pointer whose Error
// method panics, as fmt would print it.
func errorText(err error) (s string) {
	defer func() {
		if p := recover(); p != nil {
			if v := reflect.ValueOf(err); v.Kind() == reflect.Pointer && v.IsNil() {
				s = "<nil>"
				return
			}
			s = fmt.Sprintf("!PANIC: %v", p)
		}
	}()
	return err.Error()
}

// byteSlice returns x as a []byte if its underlying type is a byte slice.
func byteSlice(x any) ([]byte, bool) {
	if bs, ok := x.([]byte); ok {
		return bs, true
	}
	t := reflect.TypeOf(x)
	if t != nil && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
		return reflect.ValueOf(x).Bytes(), true
	}
	return nil, false
}

// appendString appends s, quoted with strconv.Quote if needsQuoting says so.
func appendString(buf []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

// needsQuoting reports whether s must be quoted as a key or value: whether
// it is empty or holds a space, '=', '"', a character that is not printable,
// or invalid UTF-8.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b <= ' ' || b == '=' || b == '"' || b == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
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
