// Command server runs the natter chat server.
//
//	go run ./cmd/server [-addr 127.0.0.1:8080] [-log-level info] [-log-format text]
//
// Run it with -h for every option. Ctrl-C or SIGTERM shuts it down
// gracefully.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/natter-chat/natter/chat/cli"
	"github.com/natter-chat/natter/chat/cli/servercmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := servercmd.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
