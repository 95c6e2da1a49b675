package line_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/natter-chat/natter/chat/line"
)

// fuzzResult is one outcome of Reader.Next: a line, or the error that
// rejected one.
type fuzzResult struct {
	line string
	err  error // nil, or one of the line.Err* values
}

func (r fuzzResult) String() string {
	if r.err != nil {
		return "<" + r.err.Error() + ">"
	}
	return fmt.Sprintf("%q", r.line)
}

// modelLines is the reference model of Reader: it splits data at every
// "\n", drops one "\r" at the end of each line, keeps a final line that has
// no "\n" (unless it is empty: "a\n" is one line, not two), and classifies
// each line. It also returns the offset at which each line starts.
func modelLines(data []byte, limit int) (out []fuzzResult, starts []int) {
	for off := 0; off < len(data); {
		starts = append(starts, off)
		l := data[off:]
		if i := bytes.IndexByte(l, '\n'); i >= 0 {
			l = l[:i]
			off += i + 1
		} else {
			off = len(data)
		}
		l = bytes.TrimSuffix(l, []byte("\r"))
		out = append(out, modelClassify(l, limit))
	}
	return out, starts
}

// modelClassify applies the rules in the order Reader checks them: length,
// then NUL, then UTF-8, then other control characters. (The package doc
// lists the errors without saying which wins when a line breaks several
// rules; this is the order line.go uses.)
func modelClassify(l []byte, limit int) fuzzResult {
	switch {
	case len(l) > limit:
		return fuzzResult{err: line.ErrTooLong}
	case bytes.IndexByte(l, 0) >= 0:
		return fuzzResult{err: line.ErrNUL}
	case !utf8.Valid(l):
		return fuzzResult{err: line.ErrInvalidUTF8}
	case modelHasControl(l):
		return fuzzResult{err: line.ErrControl}
	}
	return fuzzResult{line: string(l)}
}

// modelHasControl decodes runes rather than matching bytes: C0 but tab,
// DEL, C1.
func modelHasControl(b []byte) bool {
	for _, r := range string(b) {
		if r < 0x20 && r != '\t' || r == 0x7f || 0x80 <= r && r <= 0x9f {
			return true
		}
	}
	return false
}

// chunkReader hands out data the way a TCP connection might: in chunks of
// random size (often a single byte), now and then an empty read, and
// sometimes the last bytes together with io.EOF. It counts the bytes it has
// delivered so far.
type chunkReader struct {
	data      []byte
	rng       *rand.Rand
	delivered int
	lastEmpty bool
	max       int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	rest := len(c.data) - c.delivered
	if rest == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	switch c.rng.IntN(8) {
	case 0:
		if !c.lastEmpty { // bufio gives up after 100 empty reads in a row
			c.lastEmpty = true
			return 0, nil
		}
		n = 1
	case 1, 2:
		n = 1
	case 3, 4:
		n = 1 + c.rng.IntN(8)
	case 5:
		// Around the limit, where the off-by-ones are.
		n = c.max - 2 + c.rng.IntN(6)
	default:
		n = 1 + c.rng.IntN(2*c.max+64)
	}
	c.lastEmpty = false
	n = min(max(n, 1), len(p), rest)
	copy(p, c.data[c.delivered:c.delivered+n])
	c.delivered += n
	if c.delivered == len(c.data) && c.rng.IntN(2) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// FuzzReader checks Reader against modelLines, for the input delivered in
// one piece, a byte at a time and in random chunks drawn from seed.
func FuzzReader(f *testing.F) {
	long := strings.Repeat("x", 600)
	seeds := []struct {
		data string
		max  uint16
	}{
		{"", 16},
		{"\n", 16},
		{"\r\n", 16},
		{"\r", 16},
		{"\n\n\r\n\n", 4},
		{"a\nb\r\nc\n", 16},
		{"a\nlast", 16},
		{"last\r", 16},
		{"a\r\r\n", 16},
		{"a\rb\n", 16},
		{"12345678\n", 8},
		{"12345678\r\n", 8},
		{"123456789\nok\n", 8},
		{"12345678\r\r\nok\n", 8},
		{"1234567\r\r\nok\n", 8},
		{"1234567890\r\nok", 8},
		{"x", 1},
		{"xy\nz\n", 1},
		{strings.Repeat("x", 15) + "\n" + strings.Repeat("y", 16) + "\nok\n", 13},
		{strings.Repeat("x", 100) + "\nok\n", 8},
		{strings.Repeat("x", 100), 8},
		{strings.Repeat("x", 66), 64},
		{strings.Repeat("x", 64) + "\r", 64},
		{strings.Repeat("x", 65) + "\r\n" + strings.Repeat("y", 64) + "\r\n", 64},
		{long + "\n" + long + "\r\nok\r\n", 512},
		{strings.Repeat("x", 512) + "\r\n" + strings.Repeat("x", 513) + "\n", 512},
		{"bad\xff\nok\n", 16},
		{"\xc3\n\xc3\xa9\n\xe2\x82\n\xed\xa0\x80\n\xf4\x90\x80\x80\n\xc0\xaf\n", 16}, // truncated, surrogate, > U+10FFFF, overlong
		{"a\x00b\nok\n", 16},
		{"\x00\xff\n", 16},
		{"\x00" + strings.Repeat("x", 20) + "\n", 8},
		{"héllo wörld ✓ 😀\n", 32},
		{"a\tb\n\t\n", 16},
		{"\x1b[2Jgotcha\nok\n", 16},
		{"\x1b]0;title\x07\n", 32},
		{"ding\a\n", 16},
		{"\x01\n\x1f\n~\n \n", 16},
		{"a\x7f\n", 16},
		{"a\u0080\n\u009b2J\n\u009f\n", 16},
		{"a\u00a0b\n\u00a0\n\u2028\n\ufeff\n", 16},
		{"\xc2\x9b\n\xc2\x7f\n\xc2\xa0\n", 16},
		{"\xc2\r\n", 16},
		{"one\ntwo\r\nthree\rfour\nfive", 5},
	}
	for i, s := range seeds {
		f.Add([]byte(s.data), int64(i), s.max)
	}
	f.Fuzz(func(t *testing.T, data []byte, seed int64, max16 uint16) {
		limit := 1 + int(max16)%512
		want, starts := modelLines(data, limit)

		if utf8.Valid(data) {
			if got, want := line.HasControl(data), modelHasControl(data); got != want {
				t.Fatalf("HasControl(%q) = %v; want %v", data, got, want)
			}
		}

		// The reader's buffer: max+2 bytes as documented, but bufio never
		// makes one smaller than 16 bytes.
		buf := max(limit+2, 16)

		for _, split := range []string{"whole", "bytes", "chunks"} {
			var cr *chunkReader
			var src io.Reader
			switch split {
			case "whole":
				src = bytes.NewReader(data)
			case "bytes":
				cr = &chunkReader{data: data}
				src = oneByteReader{cr}
			case "chunks":
				cr = &chunkReader{data: data, rng: rand.New(rand.NewPCG(uint64(seed), 0x6e617474)), max: limit}
				src = cr
			}
			r := line.NewReader(src, limit)
			var got []fuzzResult
			for {
				b, err := r.Next()
				if err == io.EOF {
					if b != nil {
						t.Fatalf("%s: Next returned %q with io.EOF", split, b)
					}
					break
				}
				if len(got) >= len(want) {
					t.Fatalf("%s, max %d: Next returned %q, %v after the %d lines of %q: %v",
						split, limit, b, err, len(want), data, got)
				}
				if cr != nil && cr.delivered > starts[len(got)]+buf {
					t.Fatalf("%s, max %d: the result for line %d (at offset %d) took %d bytes of input; it should need at most %d",
						split, limit, len(got), starts[len(got)], cr.delivered, starts[len(got)]+buf)
				}
				switch {
				case err == nil:
					checkLine(t, b, limit)
				case line.IsRejected(err):
					if b != nil {
						t.Fatalf("%s: Next returned %q with %v", split, b, err)
					}
					err = kind(err)
				default:
					t.Fatalf("%s: Next returned unexpected error %v", split, err)
				}
				got = append(got, fuzzResult{string(b), err})
			}
			if len(got) != len(want) {
				t.Fatalf("%s, max %d: Next on %q = %v; model %v", split, limit, data, got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s, max %d: line %d of %q = %v; model %v\nall: %v\nmodel: %v",
						split, limit, i, data, got[i], want[i], got, want)
				}
			}
			if cr != nil && cr.delivered != len(data) {
				t.Fatalf("%s: io.EOF after reading %d of %d bytes", split, cr.delivered, len(data))
			}
			if b, err := r.Next(); b != nil || err != io.EOF {
				t.Fatalf("%s: Next after io.EOF = %q, %v; want io.EOF again", split, b, err)
			}
		}
	})
}

// oneByteReader delivers one byte per Read, keeping the count in its
// chunkReader.
type oneByteReader struct{ c *chunkReader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if o.c.delivered == len(o.c.data) {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.c.data[o.c.delivered]
	o.c.delivered++
	return 1, nil
}

// kind maps a rejection to the exported error it matches.
func kind(err error) error {
	var k error
	n := 0
	for _, e := range []error{line.ErrTooLong, line.ErrInvalidUTF8, line.ErrNUL, line.ErrControl} {
		if errors.Is(err, e) {
			k, n = e, n+1
		}
	}
	if n != 1 {
		panic(fmt.Sprintf("%v matches %d of the rejection errors", err, n))
	}
	return k
}

// checkLine checks what every returned line must be, whatever the input.
func checkLine(t *testing.T, b []byte, limit int) {
	t.Helper()
	switch {
	case len(b) > limit:
		t.Fatalf("line %q is %d bytes, over the limit of %d", b, len(b), limit)
	case !utf8.Valid(b):
		t.Fatalf("line %q is not valid UTF-8", b)
	case bytes.IndexByte(b, 0) >= 0:
		t.Fatalf("line %q holds a NUL", b)
	case bytes.ContainsAny(b, "\r\n"):
		t.Fatalf("line %q holds a line ending", b)
	case modelHasControl(b) || line.HasControl(b):
		t.Fatalf("line %q holds a control character", b)
	}
}
