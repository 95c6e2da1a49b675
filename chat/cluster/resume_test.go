package cluster

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/natter-chat/natter/chat/history"
)

// TestResumeGoesOnAfterTheLastMessageRead checks that after Run fails,
// Resume and Run again deliver what was stored meanwhile, once each, and
// nothing Run had delivered already.
func TestResumeGoesOnAfterTheLastMessageRead(t *testing.T) {
	ns := startNATS(t)
	n := connectNode(t, ns)
	say := func(texts ...string) {
		t.Helper()
		var msgs []history.Message
		for _, text := range texts {
			msgs = append(msgs, history.Message{Room: "lobby", Time: time.Now(), Kind: "message", From: "alice", Text: text})
		}
		if err := n.Append(msgs); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 10)
	run := func() chan error {
		done := make(chan error, 1)
		go func() { done <- n.Run(context.Background(), func(m history.Message) { got <- m.Text }) }()
		return done
	}
	next := func(k int) []string {
		t.Helper()
		var texts []string
		for range k {
			select {
			case text := <-got:
				texts = append(texts, text)
			case <-time.After(5 * time.Second):
				t.Fatalf("got %q, and then nothing", texts)
			}
		}
		return texts
	}

	done := run()
	say("one", "two")
	if texts := next(2); !slices.Equal(texts, []string{"one", "two"}) {
		t.Fatalf("got %q", texts)
	}
	n.mu.Lock()
	n.msgs.Stop() // as if the consumer had failed for good
	n.mu.Unlock()
	if err := <-done; err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("Run = %v after its consumer failed", err)
	}
	if err := <-run(); err == nil {
		t.Fatal("Run went on before Resume")
	}
	say("three", "four")
	if err := n.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	done = run()
	say("five")
	if texts := next(3); !slices.Equal(texts, []string{"three", "four", "five"}) {
		t.Fatalf("got %q after Resume", texts)
	}
	select {
	case text := <-got:
		t.Fatalf("and then %q", text)
	default:
	}
	n.Close()
	if err := <-done; err == nil {
		t.Fatal("Run = nil after Close")
	}
}
