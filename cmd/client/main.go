// Command client connects to a natter chat server: it sends each line typed
// (or piped) on stdin and prints each line the server sends.
//
//	go run ./cmd/client [-addr 127.0.0.1:8080]
//
// Ctrl-D (end of input) leaves the chat; Ctrl-C interrupts it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/natter-chat/natter/chat/cli"
	"github.com/natter-chat/natter/chat/cli/clientcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := clientcmd.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
