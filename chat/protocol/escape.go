package protocol

import (
	"fmt"
	"unicode/utf8"
)

// unsafeIndex returns the index in b of the first character that must not
// reach a terminal as it is (see unsafe), or -1 if there is none.
func unsafeIndex(b []byte) int {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if unsafe(r, n) {
			return i
		}
		i += n
	}
	return -1
}

// unsafe reports whether the rune r, decoded from n bytes, must not reach a
// terminal as it is: a control character but tab, a line or paragraph
// separator, a bidirectional embedding, override or isolate, or a byte that
// is not UTF-8 (r is utf8.RuneError and n is 1).
func unsafe(r rune, n int) bool {
	switch {
	case r < 0x20:
		return r != '\t'
	case r >= 0x7f && r <= 0x9f:
		return true
	case r == utf8.RuneError:
		return n == 1
	}
	return r == 0x2028 || r == 0x2029 || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// appendEscaped appends s with each character unsafe to print written as in
// a Go string literal: "\a", "\b", "\f", "\n", "\r" and "\v" for those,
// "\x1b" for other ASCII controls and for bytes that are not UTF-8, and
// "\u202e" for the rest.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case !unsafe(r, n):
			b = append(b, s[i:i+n]...)
		case n == 1 && r == utf8.RuneError:
			b = fmt.Appendf(b, `\x%02x`, s[i])
		case r == '\a':
			b = append(b, `\a`...)
		case r == '\b':
			b = append(b, `\b`...)
		case r == '\f':
			b = append(b, `\f`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\v':
			b = append(b, `\v`...)
		case r < utf8.RuneSelf:
			b = fmt.Appendf(b, `\x%02x`, r)
		default:
			b = fmt.Appendf(b, `\u%04x`, r)
		}
		i += n
	}
	return b
}
