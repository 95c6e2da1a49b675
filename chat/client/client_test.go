package client_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/chat/client"
	"github.com/natter-chat/natter/chat/protocol"
	"github.com/natter-chat/natter/netfake"
)

const timeout = 5 * time.Second

// pipes is a Dialer whose every connection is a netfake.Pipe: the test
// plays the server on the other end, which it takes from accepted.
type pipes struct{ accepted chan net.Conn }

func newPipes() *pipes { return &pipes{accepted: make(chan net.Conn, 4)} }

func (p *pipes) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, s := netfake.Pipe(0)
	p.accepted <- s
	return c, nil
}

// server is the test's end of one connection.
type server struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (p *pipes) accept(t *testing.T) *server {
	t.Helper()
	select {
	case conn := <-p.accepted:
		t.Cleanup(func() { conn.Close() })
		return &server{t: t, conn: conn, r: bufio.NewReader(conn)}
	case <-time.After(timeout):
		t.Fatal("the client did not connect")
		return nil
	}
}

// expect reads the next line from the client and checks that it is want.
func (s *server) expect(want string) {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(timeout))
	got, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("waiting for %s: %v", want, err)
	}
	if got != want+"\n" {
		s.t.Fatalf("client sent %q; want %q", got, want+"\n")
	}
}

// expectEOF checks that the client sends nothing more.
func (s *server) expectEOF() {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(timeout))
	if got, err := s.r.ReadString('\n'); err != io.EOF {
		s.t.Fatalf("client sent %q, %v; want EOF", got, err)
	}
}

func (s *server) send(ev protocol.Event) {
	s.t.Helper()
	if _, err := s.conn.Write(ev.AppendJSON(nil)); err != nil {
		s.t.Fatal(err)
	}
}

// greet answers the client's switch to JSON with a welcome, after the
// text-format lines a server sends first.
func (s *server) greet(nick string, limits *protocol.Limits) {
	s.t.Helper()
	s.expect("/format json")
	if _, err := io.WriteString(s.conn, "*** welcome, "+nick+"\n*** switched to the JSON format\n"); err != nil {
		s.t.Fatal(err)
	}
	s.send(protocol.Event{Type: protocol.TypeWelcome, Nick: nick, Room: protocol.DefaultRoom, Limits: limits})
}

// dial runs client.Dial while the test plays the server with greet.
func dial(t *testing.T, p *pipes, nick string, greet func(*server)) (*client.Client, *server) {
	t.Helper()
	type result struct {
		c   *client.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := client.Dial(ctx, p, "server:1", nick)
		done <- result{c, err}
	}()
	s := p.accept(t)
	greet(s)
	r := <-done
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	return r.c, s
}

// output is what Run writes, safe to read while Run runs.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // signalled on every write (or many)
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.written == nil {
		o.written = make(chan struct{}, 1)
	}
	select {
	case o.written <- struct{}{}:
	default:
	}
	return o.buf.Write(p)
}

// changed returns the channel signalled on writes.
func (o *output) changed() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.written == nil {
		o.written = make(chan struct{}, 1)
	}
	return o.written
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits for Run to have written want.
func (o *output) waitFor(t *testing.T, want string) {
	t.Helper()
	o.waitForWithin(t, want, timeout)
}

// waitForWithin is waitFor, waiting up to d.
func (o *output) waitForWithin(t *testing.T, want string, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		got := o.String()
		if strings.Contains(got, want) {
			return
		}
		select {
		case <-o.changed():
		case <-deadline.C:
			t.Fatalf("output %q lacks %q", o.String(), want)
		}
	}
}

// run starts c.Run with input from the returned writer; closing it ends
// the input. The returned channel gives Run's result.
func run(c *client.Client, out io.Writer) (*io.PipeWriter, <-chan error) {
	in, input := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background(), in, out) }()
	return input, done
}

func write(t *testing.T, w io.Writer, line string) {
	t.Helper()
	if _, err := io.WriteString(w, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// endInput ends Run's input and checks that Run, having sent nothing more,
// returns nil once the server closes.
func endInput(t *testing.T, input io.Closer, s *server, done <-chan error) {
	t.Helper()
	input.Close()
	s.expectEOF()
	s.conn.Close()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run = %v after its input ended; want nil", err)
	}
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestDialAsksForTheNicknameInJSON(t *testing.T) {
	c, s := dial(t, newPipes(), "alice", func(s *server) {
		s.greet("guest-1", nil)
		s.expect(`{"type":"nick","nick":"alice"}`)
	})
	if got := c.Nick(); got != "guest-1" {
		t.Errorf("Nick() = %q before the server renamed the client; want guest-1", got)
	}
	c.Close()
	s.expectEOF()
}

func TestRunAnswersInJSON(t *testing.T) {
	c, s := dial(t, newPipes(), "", func(s *server) {
		s.greet("guest-1", &protocol.Limits{LineBytes: 16})
	})
	out := &output{}
	input, done := run(c, out)

	s.send(protocol.Event{Type: protocol.TypePing})
	s.expect(`{"type":"pong"}`)

	// Lines typed go as they are, up to the limit the welcome announced.
	write(t, input, "hello")
	s.expect("hello")
	write(t, input, strings.Repeat("x", 17))
	write(t, input, strings.Repeat("y", 16))
	s.expect(strings.Repeat("y", 16))
	out.waitFor(t, protocol.SystemPrefix+"local error: line too long; not sent\n")

	// Messages dropped for reading too slowly are fetched, a page at a time.
	s.send(protocol.Event{Type: protocol.TypeMissed, Room: "lobby", After: 5, Seq: 9, Count: 4})
	s.expect(`{"type":"resume","room":"lobby","after":5}`)
	s.send(protocol.Event{Type: protocol.TypeResumed, Room: "lobby", After: 5, Seq: 7, Count: 2, More: true})
	s.expect(`{"type":"resume","room":"lobby","after":7}`)

	// In no room, a message of the lobby is shown as from another room.
	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", From: "bob", Text: "in the lobby"})
	out.waitFor(t, "\nbob: in the lobby\n")
	s.send(protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeNoRoom, Text: "you are in no room now"})
	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", From: "bob", Text: "still there"})
	out.waitFor(t, "\n[#lobby] bob: still there\n")

	endInput(t, input, s, done)
}

func TestRunRestoresItselfAfterReconnecting(t *testing.T) {
	p := newPipes()
	c, s := dial(t, p, "alice", func(s *server) {
		s.greet("guest-1", nil)
		s.expect(`{"type":"nick","nick":"alice"}`)
	})
	c.Reconnect = 1
	out := &output{}
	input, done := run(c, out)

	// With no limit announced, the default applies.
	write(t, input, strings.Repeat("x", protocol.DefaultMaxLineBytes+1))
	write(t, input, strings.Repeat("y", protocol.DefaultMaxLineBytes))
	s.expect(strings.Repeat("y", protocol.DefaultMaxLineBytes))
	out.waitFor(t, "local error: line too long; not sent\n")

	s.send(protocol.Event{Type: protocol.TypeNick, Old: "guest-1", Nick: "alice"})
	s.send(protocol.Event{Type: protocol.TypeJoin, Room: "games", Nick: "alice"})
	s.send(protocol.Event{Type: protocol.TypeJoin, Room: "#odd", Nick: "alice"})
	s.send(protocol.Event{Type: protocol.TypeCurrent, Room: "games"})
	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "games", Seq: 12, From: "bob", Text: "gg"})
	out.waitFor(t, "bob: gg\n")
	s.conn.Close()

	s = p.accept(t)
	s.greet("guest-2", nil)
	s.expect(`{"type":"nick","nick":"alice"}`)
	// The rooms in order, the lobby left out, as the client is in it.
	s.expect(`{"type":"join","room":"##odd"}`)
	s.expect(`{"type":"join","room":"games"}`)
	s.expect(`{"type":"resume","room":"games","after":12}`)
	s.expect(`{"type":"join","room":"games"}`)
	out.waitFor(t, protocol.SystemPrefix+"reconnected to server:1\n")

	// The message seen before is not shown again.
	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "games", Seq: 12, From: "bob", Text: "gg", History: true})
	s.send(protocol.Event{Type: protocol.TypeMessage, Room: "games", Seq: 13, From: "bob", Text: "again?"})
	out.waitFor(t, "bob: again?\n")
	if n := strings.Count(out.String(), "gg"); n != 1 {
		t.Errorf("message 12 shown %d times; want once", n)
	}

	endInput(t, input, s, done)
}

func TestRunGivesUpWithErrServerClosed(t *testing.T) {
	c, s := dial(t, newPipes(), "", func(s *server) { s.greet("guest-1", nil) })
	input, done := run(c, &output{})
	defer input.Close()
	s.conn.Close()
	if err := wait(t, done); !errors.Is(err, client.ErrServerClosed) {
		t.Fatalf("Run = %v after the server closed, with Reconnect 0; want ErrServerClosed", err)
	}
}

// greetWith is greet with the welcome ev.
func (s *server) greetWith(ev protocol.Event) {
	s.t.Helper()
	s.expect("/format json")
	s.send(ev)
}
