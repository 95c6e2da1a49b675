package chat

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/chat/history"
)

// The history a server makes for itself (Options.History nil) holds at
// most DefaultMemoryBytes, however much is said, in however many rooms.
func TestDefaultHistoryIsBoundedInBytes(t *testing.T) {
	store, ok := Options{}.withDefaults().History.(*history.MemoryStore)
	if !ok {
		t.Fatal("the default history is not a MemoryStore")
	}
	text := strings.Repeat("x", DefaultMaxLineBytes)
	msgs := make([]history.Message, 100)
	for n := range 2 * DefaultMemoryBytes / DefaultMaxLineBytes / len(msgs) {
		for i := range msgs {
			msgs[i] = history.Message{Room: fmt.Sprint("room-", n%10), Time: time.Now(), Kind: "message", From: "alice", Text: text}
		}
		if err := store.Append(msgs); err != nil {
			t.Fatal(err)
		}
		if b := store.Bytes(); b > DefaultMemoryBytes {
			t.Fatalf("the default history holds %d bytes; want at most %d", b, DefaultMemoryBytes)
		}
	}
}
