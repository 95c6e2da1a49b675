package cli_test

import (
	"bytes"
	"errors"
	"flag"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/natter-chat/natter/chat/cli"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args   []string
		want   int
		stderr string // a part of what it prints
	}{
		{nil, -1, ""},
		{[]string{"-n", "3"}, -1, ""},
		{[]string{"-h"}, cli.ExitOK, "Usage of cmd"},
		{[]string{"-n", "x"}, cli.ExitUsage, `invalid value "x" for flag -n`},
		{[]string{"-nope"}, cli.ExitUsage, "flag provided but not defined: -nope"},
		{[]string{"extra"}, cli.ExitUsage, `cmd: unexpected argument "extra"`},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
		fs.Int("n", 0, "a number")
		var stderr bytes.Buffer
		if got := cli.ParseFlags(fs, tt.args, &stderr); got != tt.want {
			t.Errorf("ParseFlags(%q) = %d; want %d", tt.args, got, tt.want)
		}
		if !strings.Contains(stderr.String(), tt.stderr) || tt.stderr == "" && stderr.Len() > 0 {
			t.Errorf("ParseFlags(%q) printed %q; want %q in it", tt.args, stderr.String(), tt.stderr)
		}
	}
}

func TestReason(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		err  error
		want string
	}{
		{refused, "connection refused"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "missing port in address", Addr: "x"}}, "missing port in address"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("i/o timeout")}, "i/o timeout"},
		{errors.New("something else"), "something else"},
	}
	for _, tt := range tests {
		if got := cli.Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}
