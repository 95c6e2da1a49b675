package line

import (
	"bytes"
	"strings"
	"testing"
)

// BenchmarkReader reads chat-sized lines; it should allocate nothing per
// line.
func BenchmarkReader(b *testing.B) {
	text := []byte(strings.Repeat("a chat line of a typical length, say sixty bytes or so\n", 1000))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		lr := NewReader(bytes.NewReader(text), 4096)
		for {
			if _, err := lr.Next(); err != nil {
				break
			}
		}
	}
}
