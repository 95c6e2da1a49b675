package logline_test

import (
	"log/slog"
	"os"
	"time"

	"github.com/natter-chat/natter/chat/logline"
)

func ExampleNewHandler() {
	// Fix the time so that the output is the same on every run.
	at := time.Date(2026, 11, 26, 7, 43, 0, 123_000_000, time.UTC)
	fixTime := func(groups []string, a slog.Attr) slog.Attr {
		if groups == nil && a.Key == slog.TimeKey {
			a.Value = slog.TimeValue(at)
		}
		return a
	}
	log := slog.New(logline.NewHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: fixTime}))
	log.Info("Server running on 127.0.0.1:8080")
	log.With("room", "lobby").WithGroup("peer").Warn("slow client", "addr", "10.0.0.7:51234", "lag", 1500*time.Millisecond, "note", "send queue full")
	// Output:
	// 2026-11-26T07:43:00.123Z INFO Server running on 127.0.0.1:8080
	// 2026-11-26T07:43:00.123Z WARN slow client room=lobby peer.addr=10.0.0.7:51234 peer.lag=1.5s peer.note="send queue full"
}

func ExampleParseLevel() {
	level, err := logline.ParseLevel("WARN")
	if err != nil {
		panic(err)
	}
	log, err := logline.New(os.Stdout, "text", level)
	if err != nil {
		panic(err)
	}
	log.Info("not shown")
	_, err = logline.ParseLevel("verbose")
	os.Stdout.WriteString(err.Error() + "\n")
	// Output:
	// logline: invalid log level "verbose" (want debug, info, warn or error): slog: level string "verbose": unknown name
}
