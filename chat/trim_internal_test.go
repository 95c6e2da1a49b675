package chat

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/netfake"
)

// trimStore is a history store whose Trim answers as it is told.
type trimStore struct {
	history.Store
	n   int
	err error
}

func (t *trimStore) Trim(time.Time, int) (int, error) { return t.n, t.err }

// A trim that skipped records it could not read is a warning, not the end
// of the round: it carries on while there may be more to remove.
func TestTrimStepCarriesOnPastUnreadableRecords(t *testing.T) {
	var nw netfake.Network
	ln, err := nw.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	store := &trimStore{Store: history.NewMemory(history.Retention{})}
	var log bytes.Buffer
	s := NewServer(ln, Options{History: store, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	corrupt := fmt.Errorf("history: trim: skipped 1 records: %w", history.ErrCorrupt)
	tests := []struct {
		n    int
		err  error
		more bool
		log  string
	}{
		{trimBatch, corrupt, true, "level=WARN msg=\"Trimming history skipped records it can't read\""},
		{3, corrupt, false, "level=WARN"},
		{0, errors.New("disk on fire"), false, "level=ERROR msg=\"Trimming history failed\""},
	}
	for _, tt := range tests {
		log.Reset()
		store.n, store.err = tt.n, tt.err
		warned := false
		if more := s.trimStep(&warned); more != tt.more || !strings.Contains(log.String(), tt.log) {
			t.Errorf("trimStep after Trim = %d, %v: %v, logged %q; want %v and %s", tt.n, tt.err, more, log.String(), tt.more, tt.log)
		}
	}
	// Once a round.
	warned := true
	log.Reset()
	store.n, store.err = trimBatch, corrupt
	if more := s.trimStep(&warned); !more || log.Len() != 0 {
		t.Errorf("trimStep warned again: %v, logged %q; want true and nothing", more, log.String())
	}
}
