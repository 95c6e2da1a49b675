// Package logline sets up logging for natter's server and client binaries
// on top of [log/slog].
//
// Two output formats are offered, chosen by name with [New]:
//
//   - "text": the [Handler] of this package, which prints one line per
//     record for people to read;
//   - "json": [slog.JSONHandler], one JSON object per line for machines,
//     with every time value converted to UTC.
//
// # Text line shape
//
// Each record is written as exactly one line:
//
//	2026-11-26T07:43:00.123Z INFO Server running on 127.0.0.1:8080 peer=10.0.0.7:51234 took=1.5ms
//
// The fields, separated by single spaces, are:
//
//  1. the record time in UTC with millisecond precision, in the layout
//     "2006-01-02T15:04:05.000Z" ([TimeLayout]); the field is left out,
//     together with its separating space, when the record's time is zero;
//  2. the level as [slog.Level.String] prints it: DEBUG, INFO, WARN, ERROR,
//     or an offset form such as INFO+2 or DEBUG-1;
//  3. the message, written as it is; only when it holds a character that is
//     not printable (a newline, a tab, a control character, invalid UTF-8)
//     is it written quoted with [strconv.Quote] instead, so that a record can
//     never span more than one line;
//  4. zero or more attributes, each written as " key=value" by a
//     [slog.TextHandler].
//
// The attributes therefore follow the rules of [slog.TextHandler], except
// that every time value is converted to UTC, and so written in the layout
// above. In short: a key or a string value is quoted with [strconv.Quote]
// when it is empty or contains a space, '=', '"', an ASCII control character
// other than DEL, a Unicode space or other non-printing character, or
// invalid UTF-8; a number or a boolean is written as [strconv] formats it
// (a float in the shortest 'g' form); a duration by its String method; an
// [encoding.TextMarshaler] by its MarshalText result; a []byte always
// quoted; anything else, errors included, as fmt's %+v prints it.
// Attributes inside groups, whether opened with [slog.Handler.WithGroup] or
// given as [slog.Group] values, have keys made of the group names and the
// key joined with dots, for example "req.user.id". An empty [slog.Attr] is
// ignored, as is a group with no attributes, and the attributes of a group
// with an empty key are inlined.
//
// The line ends with '\n' and reaches the writer in a single Write call,
// made under a mutex that a [Handler] shares with the handlers derived from
// it, so that concurrent lines never interleave. Handler meets the
// [slog.Handler] contract, as checked with [testing/slogtest].
package logline

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// New returns a logger that writes to w in the named format at the given
// minimum level; a nil level means [slog.LevelInfo].
//
// The format "text" selects [Handler], the line format described in the
// package documentation. The format "json" selects [slog.JSONHandler], with
// the record time and every other time value converted to UTC. Format names
// are matched exactly; any other name is an error.
func New(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	var h slog.Handler
	switch format {
	case "text":
		h = NewHandler(w, &slog.HandlerOptions{Level: level})
	case "json":
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: utcTimes})
	default:
		return nil, fmt.Errorf("logline: unknown log format %q (want text or json)", format)
	}
	if w == nil {
		return nil, errors.New("logline: nil writer")
	}
	return slog.New(h), nil
}

// utcTimes is the ReplaceAttr function of the JSON format: it converts every
// time value, the record's own time included, to UTC.
func utcTimes(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}

// ParseLevel parses a level name as given on a command line or in a
// configuration file: "debug", "info", "warn" or "error", in any mix of upper
// and lower case. Because it uses [slog.Level.UnmarshalText], an offset form
// such as "info+2" or "error-1" is accepted as well. The string is not
// trimmed; surrounding spaces are an error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("logline: invalid log level %q (want debug, info, warn or error): %w", s, err)
	}
	return l, nil
}
