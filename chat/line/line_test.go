package line

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type result struct {
	line string
	err  error
}

func readAll(r io.Reader, max int) []result {
	lr := NewReader(r, max)
	var out []result
	for {
		b, err := lr.Next()
		if err == io.EOF {
			return out
		}
		out = append(out, result{string(b), err})
		if err != nil && !IsRejected(err) {
			return out
		}
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name  string
		input string
		max   int
		want  []result
	}{
		{"lf and crlf", "a\nb\r\nc\n", 16, []result{{"a", nil}, {"b", nil}, {"c", nil}}},
		{"empty lines are lines", "\n\r\n", 16, []result{{"", nil}, {"", nil}}},
		{"unterminated last line", "a\nlast", 16, []result{{"a", nil}, {"last", nil}}},
		{"exactly max", "12345678\n", 8, []result{{"12345678", nil}}},
		{"exactly max with crlf", "12345678\r\n", 8, []result{{"12345678", nil}}},
		{"one over max", "123456789\nok\n", 8, []result{{"", ErrTooLong}, {"ok", nil}}},
		{"far over max is discarded whole", strings.Repeat("x", 100) + "\nok\n", 8,
			[]result{{"", ErrTooLong}, {"ok", nil}}},
		{"too long at EOF", strings.Repeat("x", 100), 8, []result{{"", ErrTooLong}}},
		{"invalid utf-8", "bad\xff\nok\n", 16, []result{{"", ErrInvalidUTF8}, {"ok", nil}}},
		{"nul byte", "a\x00b\nok\n", 16, []result{{"", ErrNUL}, {"ok", nil}}},
		{"multibyte utf-8", "héllo wörld ✓\n", 32, []result{{"héllo wörld ✓", nil}}},
		{"tab is fine", "a\tb\n", 16, []result{{"a\tb", nil}}},
		{"terminal escape", "\x1b[2Jgotcha\nok\n", 16, []result{{"", ErrControl}, {"ok", nil}}},
		{"bell", "ding\a\n", 16, []result{{"", ErrControl}}},
		{"carriage return inside", "a\rb\n", 16, []result{{"", ErrControl}}},
		{"DEL", "a\x7f\n", 16, []result{{"", ErrControl}}},
		{"C1 CSI", "a\u009b2J\n", 16, []result{{"", ErrControl}}},
		{"U+00A0 is not a control", "a\u00a0b\n", 16, []result{{"a\u00a0b", nil}}},
	}
	for _, tt := range tests {
		for _, split := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{
			{"whole", func(r io.Reader) io.Reader { return r }},
			{"byte by byte", iotest.OneByteReader},
		} {
			t.Run(tt.name+"/"+split.name, func(t *testing.T) {
				got := readAll(split.wrap(strings.NewReader(tt.input)), tt.max)
				if len(got) != len(tt.want) {
					t.Fatalf("lines = %v; want %v", got, tt.want)
				}
				for i := range got {
					if got[i].line != tt.want[i].line || !errors.Is(got[i].err, tt.want[i].err) {
						t.Errorf("line %d = %q, %v; want %q, %v", i, got[i].line, got[i].err, tt.want[i].line, tt.want[i].err)
					}
				}
			})
		}
	}
}

func TestTooLongIsReportedBeforeTheLineEnds(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	go pw.Write([]byte(strings.Repeat("x", 64))) // no newline yet
	lr := NewReader(pr, 16)
	if _, err := lr.Next(); !errors.Is(err, ErrTooLong) {
		t.Fatalf("Next = %v; want ErrTooLong before the newline arrives", err)
	}
}

func TestReadErrorsPassThrough(t *testing.T) {
	boom := errors.New("boom")
	lr := NewReader(iotest.ErrReader(boom), 16)
	if _, err := lr.Next(); err != boom {
		t.Fatalf("Next = %v; want %v", err, boom)
	}
}

// An idle connection's reader waits with its own small buffer only,
// however long the lines it may take or has taken, so that thousands of
// idle clients cost little memory.
func TestBufferGrowsForALongLineAndShrinksOnceItIsRead(t *testing.T) {
	long := strings.Repeat("x", 3000)
	lr := NewReader(strings.NewReader("hi\n"+long+"\nbye\n"), 4096)
	wantCap := func(when string, want int) {
		t.Helper()
		if got := cap(lr.buf); got > want {
			t.Fatalf("%s: buffer of %d bytes; want at most %d", when, got, want)
		}
		if want <= smallBuffer && cap(lr.buf) > 0 && &lr.buf[:1][0] != &lr.small[0] {
			t.Fatalf("%s: a buffer of its own; want the Reader's small one", when)
		}
	}
	wantCap("before reading", 0)
	for _, want := range []string{"hi", long, "bye"} {
		b, err := lr.Next()
		if err != nil || string(b) != want {
			t.Fatalf("Next = %.20q, %v; want %.20q", b, err, want)
		}
		switch want {
		case "hi":
			wantCap("after a short line", smallBuffer)
		case long:
			wantCap("holding the long line", 4098)
		}
	}
	if _, err := lr.Next(); err != io.EOF {
		t.Fatalf("Next = %v; want EOF", err)
	}
	wantCap("at EOF", smallBuffer)
}

// Only the end of the input makes an unfinished line a line: after any
// other error (a read deadline, say) the part read is not a line.
func TestAnUnfinishedLineIsDroppedOnAReadError(t *testing.T) {
	boom := errors.New("boom")
	lr := NewReader(io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(boom)), 16)
	if b, err := lr.Next(); err != boom {
		t.Fatalf("Next = %q, %v; want nothing and %v", b, err, boom)
	}
}
