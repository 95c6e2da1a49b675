package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/natter-chat/natter/chat/line"
	"github.com/natter-chat/natter/chat/protocol"
)

// drainTimeout bounds how long Run waits, after its input ends, for the
// server to send what is still on its way and close.
const drainTimeout = 2 * time.Second

// Reconnection backoff: the n-th wait is drawn at random between half and
// all of min(reconnectBase << n, reconnectMax), so that clients cut off
// together don't all come back at once.
const (
	reconnectBase = 250 * time.Millisecond
	reconnectMax  = 8 * time.Second
)

// Run chats interactively: it sends each line read from in and writes each
// event received to out, rendered for people, until one of these happens:
//
//   - in ends: Run stops sending, waits briefly for the server's last events
//     and closes the connection, then returns nil;
//   - the connection is lost and c.Reconnect attempts to reconnect fail:
//     Run returns an error wrapping ErrServerClosed;
//   - ctx is done: Run closes the connection and returns ctx.Err().
//
// After reconnecting, Run takes its nickname back, rejoins its rooms, and
// has the server replay what it missed in each; a message seen before is
// not shown twice. If the server's welcome names another history than
// before (protocol.Event.HistoryID: a server that kept its history in
// memory restarted, say), the message numbers seen before mean nothing
// there: Run says so, forgets them, and asks for no replay from them,
// only for the latest messages of each room, as joining one gives. When the server reports messages dropped because this
// client read too slowly, Run fetches them from history. Status lines of
// Run's own start with "*** ".
//
// Run does not trust the server with the terminal: events are rendered by
// [protocol.Event.AppendText], which writes control characters, line
// breaks and bidirectional overrides in any field as escapes ("\x1b",
// "\n", "\u202e"), so whatever the server sends, each event prints as its
// own lines and none can move the cursor, retitle the terminal or pass for
// a line the event does not make.
//
// Empty input lines are not sent, nor are lines the server would refuse:
// lines that are not UTF-8, hold a control character, or are longer than
// the limit announced in the welcome of the server Run started on
// (protocol.DefaultMaxLineBytes if it announced none). Run reports those
// on out instead.
//
// If Run returns while a Read of in is still blocked, as a terminal's
// stdin may be, that read is left behind: the goroutine doing it ends at
// in's next line or EOF, without sending.
func (c *Client) Run(ctx context.Context, in io.Reader, out io.Writer) error {
	out = &syncWriter{w: out}
	c.xfer = newTransfers(c)
	defer c.xfer.close() // before out is left: transfers write to it
	input := make(chan string)
	stop := make(chan struct{})
	defer close(stop)
	go readInput(in, out, c.maxLineBytes(), input, stop)

	for {
		err := c.serve(ctx, input, out)
		if err == nil || ctx.Err() != nil || !errors.Is(err, ErrServerClosed) || c.Reconnect <= 0 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if err := c.reconnect(ctx, input, out); err != nil {
			return err
		}
	}
}

// serve runs one connection: it prints events and sends input until the
// input ends (nil), the connection ends, or ctx is done.
func (c *Client) serve(ctx context.Context, input <-chan string, out io.Writer) error {
	events := make(chan protocol.Event)
	lost := make(chan error, 1)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// Only reads: tracking and printing happen in serve's goroutine,
		// which owns the client's state.
		for {
			ev, err := c.receiveLine()
			if err != nil {
				lost <- err
				return
			}
			select {
			case events <- ev:
			case <-quit:
				return
			}
		}
	})
	defer func() {
		close(quit)
		c.conn.Close()
		wg.Wait()
	}()

	if c.welcome != nil {
		c.print(out, c.welcome)
		c.welcome = nil
	}
	var drain <-chan time.Time // set once input has ended
	for {
		select {
		case ev := <-events:
			c.track(&ev)
			c.sawFile(&ev)
			c.handle(out, &ev)
		case o := <-c.xfer.ready:
			c.xfer.pending = append(c.xfer.pending, o)
			c.command(protocol.Command{Name: protocol.CmdUpload, Nick: o.to,
				File: protocol.FileOffer{Name: o.name, Size: o.size, SHA256: o.sha}})
		case text, ok := <-input:
			if !ok {
				input = nil
				c.closeWrite()
				t := time.NewTimer(drainTimeout)
				defer t.Stop()
				drain = t.C
				continue
			}
			if c.local(out, text) {
				continue
			}
			if err := c.Send(text); err != nil {
				fmt.Fprintf(out, "%snot sent (%v): %s\n", protocol.SystemPrefix, err, text)
			}
		case err := <-lost:
			if drain != nil {
				return nil // the server closed after our input ended: done
			}
			return err
		case <-drain:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handle prints ev, unless it is a message already shown, and fetches
// messages the server says this client missed.
func (c *Client) handle(out io.Writer, ev *protocol.Event) {
	switch ev.Type {
	case protocol.TypeMessage, protocol.TypeAction, protocol.TypeFile:
		if ev.Seq > 0 && !c.seenIn(ev.Room).first(ev.Seq) {
			return
		}
	case protocol.TypePing:
		c.command(protocol.Command{Name: protocol.CmdPong})
		return
	case protocol.TypeMissed:
		if ev.Room != "" {
			c.command(protocol.Command{Name: protocol.CmdResume, Room: ev.Room, After: ev.After})
		}
	case protocol.TypeResumed:
		if ev.More {
			// A replay comes a page at a time: ask for the next one, and
			// keep quiet until the last.
			c.command(protocol.Command{Name: protocol.CmdResume, Room: ev.Room, After: ev.Seq})
			return
		}
	}
	c.print(out, ev)
	if ev.Type == protocol.TypeFile {
		c.getHint(out, ev)
	}
}

// reconnect tries c.Reconnect times to connect again, then restores the
// client's nickname, rooms and current room, and asks for what it missed.
func (c *Client) reconnect(ctx context.Context, input <-chan string, out io.Writer) error {
	me, current := c.view.Me, c.view.Current
	rooms := make([]string, 0, len(c.rooms))
	for _, r := range c.rooms {
		rooms = append(rooms, r)
	}
	slices.Sort(rooms)
	for attempt := 1; attempt <= c.Reconnect; attempt++ {
		wait := min(reconnectBase<<(attempt-1), reconnectMax)
		wait = wait/2 + rand.N(wait/2+1)
		fmt.Fprintf(out, "%sconnection lost; reconnecting in %v (attempt %d of %d)\n",
			protocol.SystemPrefix, wait.Round(time.Millisecond), attempt, c.Reconnect)
		t := time.NewTimer(wait)
	waiting:
		for {
			select {
			case <-t.C:
				break waiting
			case text, ok := <-input:
				if !ok {
					t.Stop()
					return nil // nothing more to say: no need to come back
				}
				fmt.Fprintf(out, "%snot sent (reconnecting): %s\n", protocol.SystemPrefix, text)
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		before := c.history
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.connect(dctx, me)
		cancel()
		if err != nil {
			continue
		}
		fmt.Fprintf(out, "%sreconnected to %s\n", protocol.SystemPrefix, c.addr)
		anew := c.history != before
		if anew {
			// Its numbers are not those seen: a message numbered below
			// them may well be new.
			clear(c.seen)
			fmt.Fprintf(out, "%sthe server's history is not the one before: its messages are numbered anew\n", protocol.SystemPrefix)
		}
		c.restore(rooms, current, anew)
		return nil
	}
	return fmt.Errorf("%w; gave up reconnecting after %d attempts", ErrServerClosed, c.Reconnect)
}

// restore rejoins rooms, asks for each room's messages after the last one
// seen, and makes current the current room again. If the history is anew,
// it asks instead for the latest messages of the default room, which it is
// in without rejoining; joining the others replays theirs. The replies
// arrive as events.
func (c *Client) restore(rooms []string, current string, anew bool) {
	for _, r := range rooms {
		if !strings.EqualFold(r, protocol.DefaultRoom) {
			c.command(protocol.Command{Name: protocol.CmdJoin, Room: r})
		}
	}
	for _, r := range rooms {
		switch s := c.seen[protocol.Fold(r)]; {
		case anew && strings.EqualFold(r, protocol.DefaultRoom):
			c.command(protocol.Command{Name: protocol.CmdHistory, Room: r})
		case s != nil && s.newest > 0:
			c.command(protocol.Command{Name: protocol.CmdResume, Room: r, After: s.newest})
		}
	}
	if current != "" {
		c.command(protocol.Command{Name: protocol.CmdJoin, Room: current})
	}
}

// readInput sends the lines of in to input until in ends, then closes
// input. Lines the server would refuse, such as those longer than max
// bytes, are reported on out instead.
func readInput(in io.Reader, out io.Writer, max int, input chan<- string, stop <-chan struct{}) {
	defer close(input)
	lr := line.NewReader(in, max)
	for {
		text, err := lr.Next()
		switch {
		case line.IsRejected(err):
			fmt.Fprintf(out, "%slocal error: %v; not sent\n", protocol.SystemPrefix, err)
			continue
		case err != nil:
			return
		case len(text) == 0:
			continue
		}
		select {
		case input <- string(text):
		case <-stop:
			return
		}
	}
}

func (c *Client) print(out io.Writer, ev *protocol.Event) {
	out.Write(c.render(nil, ev))
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
