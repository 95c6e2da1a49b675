// Package clientcmd is the command line of natter's client, cmd/client:
// [Run] parses its flags, connects with chat/client and chats over the
// streams of a [cli.Env]. It links none of the server's code.
package clientcmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/natter-chat/natter/chat/cli"
	"github.com/natter-chat/natter/chat/client"
)

// DefaultDialTimeout bounds the client's attempt to connect.
const DefaultDialTimeout = 10 * time.Second

// DefaultReconnect is how many times the client tries to reconnect after
// losing its connection: with its backoff, about a minute of trying.
const DefaultReconnect = 10

// Run connects to a chat server and chats: lines from env.Stdin are
// sent, lines from the server are printed to env.Stdout. It returns the
// process exit code: 0 when stdin ends, 1 when the server can't be reached
// or closes the connection, 2 for a usage error, 130 when ctx is done
// while chatting (while connecting, it is 1: the server was not reached).
func Run(ctx context.Context, args []string, env cli.Env) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	addr := fs.String("addr", cli.DefaultAddr, "server `address`; several, comma-separated, for the nodes of a cluster (reconnecting tries the next)")
	timeout := fs.Duration("dial-timeout", DefaultDialTimeout, "give up connecting after this `long`")
	nick := fs.String("nick", "", "`nickname` to take on connecting")
	color := fs.String("color", "auto", "colour the output: auto (if stdout is a terminal), always or never")
	reconnect := fs.Int("reconnect", DefaultReconnect, "reconnect up to this many `times` after losing the connection (0: never)")
	useTLS := fs.Bool("tls", false, "connect with TLS")
	caFile := fs.String("ca", "", "trust the certificate authorities in this PEM `file` (for -tls; default: the system's)")
	if code := cli.ParseFlags(fs, args, env.Stderr); code >= 0 {
		return code
	}
	if *color != "auto" && *color != "always" && *color != "never" {
		fmt.Fprintf(env.Stderr, "client: -color: want auto, always or never, not %q\n", *color)
		return cli.ExitUsage
	}

	var dialer client.Dialer = &net.Dialer{}
	if env.Dialer != nil {
		dialer = env.Dialer
	}
	if *useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				fmt.Fprintf(env.Stderr, "Error: -ca: %v\n", err)
				return cli.ExitUsage
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				fmt.Fprintf(env.Stderr, "Error: -ca: no PEM certificate in %s\n", *caFile)
				return cli.ExitUsage
			}
		}
		dialer = client.TLSDialer(dialer, cfg)
	}
	dialCtx, cancel := context.WithTimeout(ctx, *timeout)
	c, err := client.Dial(dialCtx, dialer, *addr, *nick)
	cancel()
	if err != nil {
		why := cli.Reason(err)
		if errors.Is(err, client.ErrServerClosed) {
			why = "the server hung up before greeting us (is it a TLS port? then use -tls)"
		}
		fmt.Fprintf(env.Stderr, "Error: cannot connect to %s: %s\n", *addr, why)
		return cli.ExitFailure
	}
	fmt.Fprintln(env.Stdout, "Connected to server")
	c.Reconnect = *reconnect
	c.Terminal = isTerminal(env.Stdout)
	switch *color {
	case "always":
		c.Color = true
	case "auto":
		c.Color = isTerminal(env.Stdout)
	}

	err = c.Run(ctx, env.Stdin, env.Stdout)
	switch {
	case err == nil:
		return cli.ExitOK
	case errors.Is(err, client.ErrServerClosed):
		// "Connection closed by server", and why the client gave up.
		msg := err.Error()
		fmt.Fprintln(env.Stderr, strings.ToUpper(msg[:1])+msg[1:])
		return cli.ExitFailure
	case ctx.Err() != nil:
		return cli.ExitInterrupted
	default:
		fmt.Fprintf(env.Stderr, "Error: %s\n", cli.Reason(err))
		return cli.ExitFailure
	}
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
