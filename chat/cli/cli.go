// Package cli is what the command lines of natter's server and client
// share: the environment a command runs in, its exit codes, and the
// parsing of its flags. The commands themselves are chat/cli/servercmd and
// chat/cli/clientcmd, apart so that the client links none of the server's
// code. The binaries in cmd/ only call their Run functions with the
// process's environment, so specs can run the very same code in-process,
// over any network, and check what a user would see.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
)

// DefaultAddr is where the server listens and the client connects unless
// told otherwise.
const DefaultAddr = "127.0.0.1:8080"

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

// Env is the outside world as a command sees it.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// Listen opens the server's listener; nil means net.Listen.
	Listen func(network, address string) (net.Listener, error)
	// Dialer opens the client's connection; nil means a *net.Dialer.
	Dialer interface {
		DialContext(ctx context.Context, network, address string) (net.Conn, error)
	}
}

// ParseFlags parses args into fs, printing usage errors to stderr. It
// returns the exit code to use, or -1 to go on.
func ParseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	fs.SetOutput(stderr)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case err != nil:
		return ExitUsage
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return ExitUsage
	}
	return -1
}

// Reason returns the part of a network error a person needs, such as
// "connection refused" rather than "dial tcp 127.0.0.1:9: connect:
// connection refused".
func Reason(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
