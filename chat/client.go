package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/natter-chat/natter/chat/line"
	"github.com/natter-chat/natter/chat/protocol"
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

// Client is natter's own client. It speaks the JSON format and renders
// events for people. Send may be called concurrently with Receive; neither
// may be called concurrently with itself.
type Client struct {
	conn      net.Conn
	lines     *line.Reader
	view      protocol.View   // who we are and where we talk; updated by Receive
	welcome   *protocol.Event // read while negotiating, printed first by Run
	closeOnce sync.Once
	closeErr  error

	// Color, if set before Run, makes Run colour its output with ANSI
	// escapes: for a terminal, not for a pipe.
	Color bool
}

// Dial connects to the chat server at addr through d and switches the
// connection to the JSON format. If nick is not empty it then asks for that
// nickname; the server's answer arrives as an event.
func Dial(ctx context.Context, d Dialer, addr, nick string) (*Client, error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, lines: line.NewReader(conn, DefaultClientMaxLineBytes)}
	if err := c.negotiate(ctx, nick); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// negotiate switches to JSON and waits for the welcome that follows, which
// says who and where we are. Text lines before it (the text-format welcome)
// are skipped.
func (c *Client) negotiate(ctx context.Context, nick string) error {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
		defer c.conn.SetDeadline(time.Time{})
	}
	if err := c.Send("/format json"); err != nil {
		return err
	}
	for {
		ev, err := c.Receive()
		if err != nil {
			return fmt.Errorf("negotiate: %w", err)
		}
		if ev.Type == protocol.TypeWelcome {
			c.welcome = &ev
			break
		}
	}
	if nick != "" {
		return c.Send("/nick " + nick)
	}
	return nil
}

// Nick returns the client's current nickname.
func (c *Client) Nick() string { return c.view.Me }

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

// Receive returns the next event from the server, and keeps track of the
// client's nickname and current room from the events it sees. A line that is
// not a JSON event comes back as a notice carrying the line. It returns
// ErrServerClosed when the server has closed the connection.
func (c *Client) Receive() (protocol.Event, error) {
	for {
		b, err := c.lines.Next()
		switch {
		case err == nil:
		case line.IsRejected(err):
			// A line this client can't show; skip it rather than hang up.
			continue
		case err == io.EOF:
			return protocol.Event{}, ErrServerClosed
		default:
			return protocol.Event{}, fmt.Errorf("receive: %w", err)
		}
		var ev protocol.Event
		if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &ev) != nil || ev.Type == "" {
			ev = protocol.Event{Type: protocol.TypeNotice, Text: string(b)}
		}
		c.track(&ev)
		return ev, nil
	}
}

// track updates the client's view of itself from ev.
func (c *Client) track(ev *protocol.Event) {
	switch ev.Type {
	case protocol.TypeWelcome:
		c.view = protocol.View{Me: ev.Nick, Current: ev.Room}
	case protocol.TypeNick:
		if strings.EqualFold(ev.Old, c.view.Me) {
			c.view.Me = ev.Nick
		}
	case protocol.TypeCurrent:
		c.view.Current = ev.Room
	case protocol.TypeNotice:
		if ev.Code == "no_current_room" {
			c.view.Current = ""
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
	var buf []byte
	if c.welcome != nil {
		if _, err := out.Write(c.render(buf, c.welcome)); err != nil {
			return fmt.Errorf("print: %w", err)
		}
	}
	for {
		ev, err := c.Receive()
		if err != nil {
			return err
		}
		buf = c.render(buf[:0], &ev)
		if _, err := out.Write(buf); err != nil {
			return fmt.Errorf("print: %w", err)
		}
	}
}

// ANSI colours for the kinds of line the client prints.
const (
	colorSystem  = "\x1b[36m" // cyan: news from the server
	colorError   = "\x1b[31m" // red
	colorPrivate = "\x1b[35m" // magenta
	colorReset   = "\x1b[0m"
)

// render appends ev as text for people, coloured if c.Color.
func (c *Client) render(b []byte, ev *protocol.Event) []byte {
	if !c.Color {
		return ev.AppendText(b, c.view)
	}
	color := colorSystem
	switch ev.Type {
	case protocol.TypeMessage, protocol.TypeAction:
		return ev.AppendText(b, c.view)
	case protocol.TypeError:
		color = colorError
	case protocol.TypePrivate:
		color = colorPrivate
	}
	start := len(b)
	b = ev.AppendText(b, c.view)
	// Colour each line on its own, so a terminal never carries a colour
	// past a line end.
	lines := strings.SplitAfter(string(b[start:]), "\n")
	b = b[:start]
	for _, l := range lines {
		if l == "" {
			continue
		}
		b = append(b, color...)
		b = append(b, strings.TrimSuffix(l, "\n")...)
		b = append(b, colorReset+"\n"...)
	}
	return b
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
			fmt.Fprintf(out, "%slocal error: %v; not sent\n", protocol.SystemPrefix, err)
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
