// Package client is natter's own chat client. It connects to a natter
// server through any [Dialer] (TCP, [TLSDialer], or the in-memory netfake
// network), switches the connection to the JSON format of chat/protocol,
// and renders the events it receives for people.
//
// A [Client] keeps track of its nickname, its rooms and the last message it
// has seen in each, so that [Client.Run] can reconnect after losing the
// connection, to the next server of a cluster's list, and resume: each
// message is shown once, none lost while the server keeps it. Run also
// answers the server's pings and fetches from history the messages the
// server dropped because the client read too slowly.
//
// The package depends on chat/protocol and chat/line, not on the server
// (package chat), so a program that is only a client does not link the
// server's dependencies.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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

// MaxServerLineBytes bounds a line the client accepts from the server,
// not counting its line ending. A longer line is skipped, and reported
// (see [Client.Receive]).
//
// It is 16 MiB: eight times the largest event a server with the default
// limits sends, a /rooms reply listing 1000 rooms with topics of 300
// bytes, which is under 2 MB even if every byte of every topic takes
// JSON's longest escape (6 bytes); a /who of the lobby with its 10000
// clients takes 270 KB. The rest is room for servers with larger limits,
// and for clusters, whose /rooms and /who span every node. The client
// holds that much only while such a line arrives.
const MaxServerLineBytes = 16 << 20

// Client is natter's own client. It speaks the JSON format, renders events
// for people, and keeps track of who it is, which rooms it is in and the
// last message it has seen in each, so that it can reconnect and resume
// without losing or repeating anything. A Client is used by one goroutine at
// a time, apart from Close.
type Client struct {
	dialer Dialer
	addrs  []string // the servers to try, in turn
	addr   string   // the one connected to

	conn    net.Conn
	lines   *line.Reader
	view    protocol.View   // who we are and where we talk
	welcome *protocol.Event // read while negotiating, printed first by Run
	maxLine int             // the longest line the server takes, from its welcome
	history string          // the id of the history the server numbers messages in, from its welcome
	rooms   map[string]string
	seen    map[string]*seenSeqs // by protocol.Fold(room)
	// files are the files shared in each room (by protocol.Fold(room)),
	// by message number, for /get: the latest filesPerRoom of each.
	files map[string]map[uint64]*protocol.FileInfo
	xfer  *transfers // Run's file transfers

	// Color, if set before Run, makes Run colour its output with ANSI
	// escapes: for a terminal, not for a pipe.
	Color bool
	// Reconnect is how many times Run tries to reconnect, with backoff,
	// after losing the connection; zero means it gives up at once.
	Reconnect int
	// Terminal, if set before Run, makes the progress of /send and /get a
	// bar redrawn in place, for a terminal, rather than a line at each
	// quarter.
	Terminal bool
	// HTTP, if set before Run, is the client /send and /get use; nil
	// means one that dials through the Client's Dialer.
	HTTP *http.Client
}

// Dial connects to the chat server at addr through d and switches the
// connection to the JSON format. If nick is not empty it then asks for that
// nickname; the server's answer arrives as an event.
//
// addr may list several servers, separated by commas: the nodes of a
// cluster. Dial connects to the first that answers, and reconnecting
// tries the next one first, so a client of a node that died resumes on
// another.
func Dial(ctx context.Context, d Dialer, addr, nick string) (*Client, error) {
	c := &Client{dialer: d, rooms: make(map[string]string), seen: make(map[string]*seenSeqs),
		files: make(map[string]map[uint64]*protocol.FileInfo)}
	for a := range strings.SplitSeq(addr, ",") {
		c.addrs = append(c.addrs, strings.TrimSpace(a))
	}
	if err := c.connect(ctx, nick); err != nil {
		return nil, err
	}
	return c, nil
}

// connect dials, switches to JSON and waits for the welcome that follows,
// which says who and where we are. Text lines before it (the text-format
// welcome and history) are skipped.
func (c *Client) connect(ctx context.Context, nick string) error {
	var err error
	for i := range c.addrs {
		c.addrs = append(c.addrs[1:], c.addrs[0]) // whichever answers, the next try starts after it
		addr := c.addrs[len(c.addrs)-1]
		// Leave time for the addresses after this one.
		actx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && i < len(c.addrs)-1 {
			actx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(len(c.addrs)-i))
		}
		err = c.connectTo(actx, addr, nick)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// connectTo connects to addr: see connect.
func (c *Client) connectTo(ctx context.Context, addr, nick string) error {
	conn, err := c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	c.addr = addr
	c.conn, c.lines = conn, line.NewReader(conn, MaxServerLineBytes)
	if err := c.negotiate(ctx, nick); err != nil {
		conn.Close()
		return err
	}
	return nil
}

func (c *Client) negotiate(ctx context.Context, nick string) error {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
		defer c.conn.SetDeadline(time.Time{})
	}
	// Still in the text format: the one line that can't be JSON.
	if err := c.Send("/" + protocol.CmdFormat + " " + protocol.JSON.String()); err != nil {
		return err
	}
	for {
		ev, err := c.receiveLine()
		if err != nil {
			return fmt.Errorf("negotiate: %w", err)
		}
		if ev.Type == protocol.TypeWelcome {
			c.track(&ev)
			c.welcome = &ev
			break
		}
	}
	if nick != "" && nick != c.view.Me {
		return c.command(protocol.Command{Name: protocol.CmdNick, Nick: nick})
	}
	return nil
}

// Nick returns the client's current nickname.
func (c *Client) Nick() string { return c.view.Me }

// Send sends one line: chat text or a /command. It must not contain a line
// break.
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

// command sends cmd in the JSON format.
func (c *Client) command(cmd protocol.Command) error {
	if _, err := c.conn.Write(cmd.AppendJSON(nil)); err != nil {
		return fmt.Errorf("send %s: %w", cmd.Name, err)
	}
	return nil
}

// maxLineBytes returns the longest line the server takes: the limit its
// welcome announced, or protocol.DefaultMaxLineBytes if it announced none.
func (c *Client) maxLineBytes() int {
	if c.maxLine > 0 {
		return c.maxLine
	}
	return protocol.DefaultMaxLineBytes
}

// Receive returns the next event from the server, and keeps track of the
// client's nickname, rooms and current room from the events it sees (Run,
// not Receive, also tracks the last message seen in each room). A
// line that is not a JSON event comes back as a notice carrying the line.
// A line the client can't take (longer than MaxServerLineBytes, not UTF-8,
// or holding a control character as it is, which no natter server sends)
// comes back as a notice saying it was skipped, and why; the next call
// reads on after it.
// It returns ErrServerClosed when the server has closed the connection.
func (c *Client) Receive() (protocol.Event, error) {
	ev, err := c.receiveLine()
	if err == nil {
		c.track(&ev)
	}
	return ev, err
}

func (c *Client) receiveLine() (protocol.Event, error) {
	b, err := c.lines.Next()
	switch {
	case err == nil:
	case line.IsRejected(err):
		// Skip it rather than hang up, and say so.
		why := err.Error()
		if errors.Is(err, line.ErrTooLong) {
			why += fmt.Sprintf(" (the limit is %d bytes)", MaxServerLineBytes)
		}
		return protocol.Event{Type: protocol.TypeNotice, Text: "skipped a line from the server: " + why}, nil
	case err == io.EOF:
		return protocol.Event{}, ErrServerClosed
	default:
		return protocol.Event{}, fmt.Errorf("receive: %w", err)
	}
	var ev protocol.Event
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &ev) != nil || ev.Type == "" {
		ev = protocol.Event{Type: protocol.TypeNotice, Text: string(b)}
	}
	return ev, nil
}

// track updates the client's view of itself from ev.
func (c *Client) track(ev *protocol.Event) {
	me := strings.EqualFold(ev.Nick, c.view.Me)
	switch ev.Type {
	case protocol.TypeWelcome:
		c.view = protocol.View{Me: ev.Nick, Current: ev.Room}
		c.history = ev.HistoryID
		c.maxLine = 0
		if ev.Limits != nil {
			c.maxLine = ev.Limits.LineBytes
		}
		clear(c.rooms)
		if ev.Room != "" {
			c.rooms[protocol.Fold(ev.Room)] = ev.Room
		}
	case protocol.TypeNick:
		if strings.EqualFold(ev.Old, c.view.Me) {
			c.view.Me = ev.Nick
		}
	case protocol.TypeJoin:
		if me {
			c.rooms[protocol.Fold(ev.Room)] = ev.Room
		}
	case protocol.TypePart:
		if me {
			delete(c.rooms, protocol.Fold(ev.Room))
		}
	case protocol.TypeCurrent:
		c.view.Current = ev.Room
	case protocol.TypeNotice:
		if ev.Code == protocol.CodeNoRoom {
			c.view.Current = ""
		}
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// closeWrite tells the server this client will send nothing more, while
// still reading what the server sends.
func (c *Client) closeWrite() {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// seenSeqs remembers which numbered messages of a room were shown, so that
// a message replayed from history (after a reconnect, or to fill a gap) is
// shown once. It keeps the newest number and the numbers of a window below
// it. The numbers are those of one history: Run forgets them all when the
// server's welcome names another (see Client.reconnect).
type seenSeqs struct {
	newest uint64
	recent map[uint64]bool
}

const seenWindow = 4096

// first records seq and reports whether it was not seen before.
func (s *seenSeqs) first(seq uint64) bool {
	if s.recent[seq] || seq+seenWindow <= s.newest {
		return false
	}
	if s.recent == nil {
		s.recent = make(map[uint64]bool)
	}
	s.recent[seq] = true
	s.newest = max(s.newest, seq)
	if len(s.recent) > 2*seenWindow {
		for k := range s.recent {
			if k+seenWindow <= s.newest {
				delete(s.recent, k)
			}
		}
	}
	return true
}

func (c *Client) seenIn(room string) *seenSeqs {
	s := c.seen[protocol.Fold(room)]
	if s == nil {
		s = &seenSeqs{}
		c.seen[protocol.Fold(room)] = s
	}
	return s
}
