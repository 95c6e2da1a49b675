// Package line reads newline-terminated text lines with a bound on their
// length, so a peer can never make the reader allocate without limit.
//
// A line ends at "\n"; a "\r" before it is dropped too, so "\r\n" and "\n"
// both end a line. A line that breaks a rule (too long, not UTF-8, holding a
// NUL byte, or holding another control character) is reported as an error
// matching [ErrTooLong], [ErrInvalidUTF8], [ErrNUL] or [ErrControl], is
// consumed whole, and reading can go on with the next line. It depends only
// on the standard library, so fuzzing it is cheap.
//
// Control characters are refused, not cleaned up, so that what a sender
// sees of their own line is exactly what everyone else sees: the C0 range
// (U+0000 to U+001F) except tab, DEL (U+007F), and the C1 range (U+0080 to
// U+009F). That keeps terminal escape sequences (which start with ESC, or
// with the C1 CSI) off other people's screens.
package line

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

// Errors reported for a rejected line. Reading may continue after them.
var (
	ErrTooLong     = errors.New("line too long")
	ErrInvalidUTF8 = errors.New("line is not valid UTF-8")
	ErrNUL         = errors.New("line contains a NUL byte")
	ErrControl     = errors.New("line contains a control character")
)

// IsRejected reports whether err is one of the errors for a rejected line,
// after which reading may continue.
func IsRejected(err error) bool {
	return errors.Is(err, ErrTooLong) || errors.Is(err, ErrInvalidUTF8) ||
		errors.Is(err, ErrNUL) || errors.Is(err, ErrControl)
}

// smallBuffer is the size of the buffer a Reader holds in itself and reads
// into while no line is pending: a reader waiting on an idle connection
// holds no other memory, however long the lines it has read, and a line
// this short (most chat lines) is read without any other buffer.
const smallBuffer = 64

// minBuffer is the buffer a Reader takes once a pending line outgrows its
// own small one. Buffers of this size are shared by all Readers through
// buffers, and given back as soon as no line is pending.
const minBuffer = 512

// buffers holds the minBuffer-sized buffers of Readers with no line
// pending, so that a connection that sends now and then borrows one for a
// moment instead of allocating it.
var buffers = sync.Pool{New: func() any { return new([minBuffer]byte) }}

// Reader reads lines of at most a fixed number of bytes. A Reader must not
// be copied: while idle it reads into an array of its own.
type Reader struct {
	rd         io.Reader
	buf        []byte // buf[start:end] has been read but not yet returned
	start, end int
	size       int // the most it buffers: the longest line and its ending
	max        int
	err        error // from rd, reported once what was read before it is
	// skipping is set once a line has been reported too long and the rest
	// of it, up to its newline, has not yet been read and thrown away.
	skipping bool
	small    [smallBuffer]byte // buf while no line is pending
}

// NewReader returns a Reader of lines of at most max bytes, not counting the
// line ending. It buffers at most max+2 bytes, and holds no buffer but its
// own small one while no line is pending.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{rd: r, size: max + 2, max: max}
}

// Pending reports whether part of a line has been read: bytes of the next
// line are buffered, or the rest of a too-long line is still to be skipped.
// A caller can use it to bound how long a line may take to arrive.
func (r *Reader) Pending() bool { return r.skipping || r.end > r.start }

// Next returns the next line without its ending. The slice is valid only until
// the next call. A last line that ends at EOF without a newline is returned as
// a line; EOF is reported by the call after it.
//
// A line longer than the limit is reported with ErrTooLong as soon as the
// limit is passed, without waiting for its end; the next call first discards
// the rest of it.
func (r *Reader) Next() ([]byte, error) {
	for r.skipping {
		_, err := r.readSlice()
		switch err {
		case nil:
			r.skipping = false
		case errBufferFull:
		default:
			return nil, err
		}
	}
	b, err := r.readSlice()
	switch {
	case err == errBufferFull:
		r.skipping = true
		return nil, ErrTooLong
	case err == io.EOF && len(b) > 0:
		// A final unterminated line; the next call reports io.EOF.
	case err != nil:
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte{'\n'})
	b = bytes.TrimSuffix(b, []byte{'\r'})
	switch {
	case len(b) > r.max:
		return nil, ErrTooLong
	case bytes.IndexByte(b, 0) >= 0:
		return nil, ErrNUL
	case !utf8.Valid(b):
		return nil, ErrInvalidUTF8
	case HasControl(b):
		return nil, ErrControl
	}
	return b, nil
}

var errBufferFull = errors.New("line: buffer full")

// readSlice returns the bytes up to and including the next newline; or,
// with errBufferFull, size bytes holding none; or, with the read error,
// whatever came before it. The bytes are valid until the next call.
func (r *Reader) readSlice() ([]byte, error) {
	scanned := 0 // bytes at buf[start:] known to hold no newline
	for {
		if i := bytes.IndexByte(r.buf[r.start+scanned:r.end], '\n'); i >= 0 {
			b := r.buf[r.start : r.start+scanned+i+1]
			r.start += scanned + i + 1
			return b, nil
		}
		scanned = r.end - r.start
		var err error
		switch {
		case r.err != nil:
			err, r.err = r.err, nil
		case scanned >= r.size:
			err = errBufferFull
		}
		if err != nil {
			b := r.buf[r.start:r.end]
			r.start = r.end
			return b, err
		}
		r.fill()
	}
}

// fill reads once more into the buffer, making room first: it moves the
// unread bytes to the front, grows the buffer (up to size) if they fill
// it, and goes back to its own small buffer if there are none.
func (r *Reader) fill() {
	n := r.end - r.start
	switch {
	case n == 0:
		r.shrink()
	case n == len(r.buf):
		r.grow()
	default:
		copy(r.buf, r.buf[r.start:r.end])
	}
	r.start, r.end = 0, n
	for range 100 {
		m, err := r.rd.Read(r.buf[r.end:])
		r.end += m
		if err != nil {
			r.err = err
			return
		}
		if m > 0 {
			return
		}
	}
	r.err = io.ErrNoProgress
}

// shrink makes the Reader's own small buffer its buffer again, giving a
// shared one back. Nothing may be buffered.
func (r *Reader) shrink() {
	r.putBuffer()
	r.buf = r.small[:min(smallBuffer, r.size)]
}

// grow moves the buffered bytes, which fill the buffer, to one twice as
// large (at least minBuffer, at most size), shared if it is minBuffer.
func (r *Reader) grow() {
	var buf []byte
	switch size := min(max(2*len(r.buf), minBuffer), r.size); size {
	case minBuffer:
		buf = buffers.Get().(*[minBuffer]byte)[:]
	default:
		buf = make([]byte, size)
	}
	copy(buf, r.buf[r.start:r.end])
	r.putBuffer()
	r.buf = buf
}

// putBuffer gives the buffer back to buffers if it came from there: every
// buffer of minBuffer bytes does, since the small one is shorter and grow
// makes no other of that size.
func (r *Reader) putBuffer() {
	if len(r.buf) == minBuffer {
		buffers.Put((*[minBuffer]byte)(r.buf))
	}
	r.buf = nil
}

// HasControl reports whether b, valid UTF-8, holds a control character
// other than tab: C0, DEL or C1.
func HasControl(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c < 0x20 && c != '\t', c == 0x7f:
			return true
		case c == 0xc2 && i+1 < len(b) && b[i+1] >= 0x80 && b[i+1] <= 0x9f:
			// U+0080 to U+009F, the C1 controls, encoded as C2 80..C2 9F.
			return true
		}
	}
	return false
}
