package logline_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/natter-chat/natter/chat/logline"
)

// BenchmarkHandler measures Handle for a record with no attributes, as most
// of the server's are, and for one with a few attributes of the usual
// kinds, written to io.Discard, through handlers with and without WithAttrs
// and WithGroup, then to /dev/null, then from parallel goroutines.
func BenchmarkHandler(b *testing.B) {
	r := slog.NewRecord(fixedTime, slog.LevelInfo, "Client disconnected: 127.0.0.1:37492", 0)
	r.AddAttrs(
		slog.String("reason", "closed"),
		slog.Int("sent", 42),
		slog.Duration("took", 1500*time.Microsecond),
		slog.String("note", "send queue full"),
		slog.Any("err", errors.New("read: connection reset by peer")),
	)
	msgOnly := slog.NewRecord(fixedTime, slog.LevelInfo, "Received from client: hello, world", 0)
	root := logline.NewHandler(io.Discard, nil)
	withAttrs := root.WithAttrs([]slog.Attr{slog.String("room", "lobby"), slog.Int("node", 2)})
	handlers := []struct {
		name string
		h    slog.Handler
	}{
		{"attrs", root},
		{"WithAttrs", withAttrs},
		{"WithAttrs+WithGroup", withAttrs.WithGroup("peer")},
	}
	ctx := context.Background()
	b.Run("no attrs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := root.Handle(ctx, msgOnly); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tt := range handlers {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := tt.h.Handle(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("file", func(b *testing.B) {
		// What a line costs with its write(2), as on a server's stderr.
		devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer devNull.Close()
		h := logline.NewHandler(devNull, nil)
		b.ReportAllocs()
		for b.Loop() {
			if err := h.Handle(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		h := withAttrs.WithGroup("peer")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := h.Handle(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
