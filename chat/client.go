package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/natter-chat/natter/chat/line"
)

// Dialer opens connections. Both *net.Dialer and *netfake.Network satisfy
// it, so a [Client] runs over real TCP and over the in-memory network alike.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// ErrServerClosed is returned by [Client.Receive] and [Client.Run] when the
// server ends the connection.
var ErrServerClosed = errors.New("connection closed by server")

// DefaultClientMaxLineBytes bounds a line the client accepts from the server.
const DefaultClientMaxLineBytes = 64 << 10

// drainTimeout bounds how long Run waits, after its input ends, for the
// server to send what is still on its way and close.
const drainTimeout = 2 * time.Second

// Client is a connection to a chat server. Send may be called concurrently
// with Receive; neither may be called concurrently with itself.
type Client struct {
	conn      net.Conn
	lines     *line.Reader
	closeOnce sync.Once
	closeErr  error
}

// Dial connects to the chat server at addr over TCP through d.
func Dial(ctx context.Context, d Dialer, addr string) (*Client, error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, lines: line.NewReader(conn, DefaultClientMaxLineBytes)}, nil
}

// LocalAddr returns the client's end of the connection.
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Send sends one line of text. The text must not contain a newline.
func (c *Client) Send(text string) error {
	if strings.ContainsAny(text, "\r\n") {
		return fmt.Errorf("send: text contains a line break")
	}
	buf := make([]byte, 0, len(text)+1)
	buf = append(append(buf, text...), '\n')
	if _, err := c.conn.Write(buf); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Receive returns the next line from the server, without its line ending.
// It returns ErrServerClosed when the server has closed the connection.
func (c *Client) Receive() (string, error) {
	for {
		b, err := c.lines.Next()
		switch {
		case err == nil:
			return string(b), nil
		case line.IsRejected(err):
			// A line this client can't show; skip it rather than hang up.
			continue
		case err == io.EOF:
			return "", ErrServerClosed
		default:
			return "", fmt.Errorf("receive: %w", err)
		}
	}
}

// Close closes the connection. It is safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.conn.Close() })
	return c.closeErr
}

// closeWrite tells the server this client will send nothing more, while
// still reading what the server sends.
func (c *Client) closeWrite() {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// Run chats interactively: it sends each line read from in and writes each
// line received to out, concurrently, until one of these happens:
//
//   - in ends: Run stops sending, waits briefly for the server's last lines
//     and closes the connection, then returns nil;
//   - the server closes the connection: Run returns ErrServerClosed;
//   - ctx is done: Run closes the connection and returns ctx.Err().
//
// Run closes the connection before it returns. Empty input lines are not
// sent. If Run returns while a Read of in is still blocked, as a terminal's
// stdin may be, that read is left behind: the goroutine doing it ends at
// in's next line or EOF, without sending anything.
func (c *Client) Run(ctx context.Context, in io.Reader, out io.Writer) error {
	defer c.Close()

	// Both goroutines print: received lines, and local errors about input.
	out = &syncWriter{w: out}
	received := make(chan error, 1)
	go func() { received <- c.printAll(out) }()

	sent := make(chan error, 1)
	go func() { sent <- c.sendAll(in, out) }()

	select {
	case err := <-received:
		return err
	case <-ctx.Done():
		c.Close()
		<-received
		return ctx.Err()
	case err := <-sent:
		if err != nil {
			c.Close()
			<-received
			return err
		}
		c.closeWrite()
		t := time.NewTimer(drainTimeout)
		defer t.Stop()
		select {
		case <-received:
		case <-t.C:
			c.Close()
			<-received
		case <-ctx.Done():
			c.Close()
			<-received
		}
		return nil
	}
}

func (c *Client) printAll(out io.Writer) error {
	for {
		text, err := c.Receive()
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(out, text); err != nil {
			return fmt.Errorf("print: %w", err)
		}
	}
}

func (c *Client) sendAll(in io.Reader, out io.Writer) error {
	lr := line.NewReader(in, DefaultMaxLineBytes)
	for {
		text, err := lr.Next()
		switch {
		case err == io.EOF:
			return nil
		case line.IsRejected(err):
			// The server would refuse it too; say so here, and go on.
			fmt.Fprintf(out, "%slocal error: %v; not sent\n", NoticePrefix, err)
			continue
		case err != nil:
			return fmt.Errorf("read input: %w", err)
		case len(text) == 0:
			continue
		}
		if err := c.Send(string(text)); err != nil {
			return err
		}
	}
}

// syncWriter serialises writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
