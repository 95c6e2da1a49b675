package client

// This file is file transfers: /send uploads a file to the link the
// server gives for it, /get downloads the file of a message, each in a
// goroutine of its own that Run owns, with progress shown and the SHA-256
// checked, resuming after a dropped connection. Transfers go over HTTP,
// never through the chat connection.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/natter-chat/natter/chat/protocol"
)

// Transfer limits: how many times a transfer goes on after its connection
// drops, how long /send waits for the server's upload link, and how many
// files of each room the client remembers for /get.
const (
	transferRetries = 5
	offerWait       = 30 * time.Second
	filesPerRoom    = 100
)

// transfers is what Run knows of file transfers: the goroutines it owns,
// the offers ready to be sent (hashed) and those awaiting their link.
type transfers struct {
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ready   chan *offer // hashed files, for serve to send /upload
	pending []*offer    // sent, awaiting an upload event (serve's goroutine only)
	http    *http.Client
}

// offer is a file /send is uploading.
type offer struct {
	path, name, to string
	size           int64
	sha            string
	url            chan string // the upload link, once the server gives it
}

func newTransfers(c *Client) *transfers {
	ctx, cancel := context.WithCancel(context.Background())
	hc := c.HTTP
	if hc == nil {
		tr := &http.Transport{DialContext: c.dialer.DialContext}
		if td, ok := c.dialer.(*tlsDialer); ok {
			// The dialer speaks TLS itself: HTTP gets the plain one, and
			// the same trust for https links.
			tr.DialContext, tr.TLSClientConfig = td.d.DialContext, td.cfg.Clone()
		}
		hc = &http.Client{Transport: tr}
	}
	return &transfers{ctx: ctx, cancel: cancel, ready: make(chan *offer), http: hc}
}

// close stops every transfer and waits for them.
func (t *transfers) close() {
	t.cancel()
	t.wg.Wait()
	if tr, ok := t.http.Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// local carries out /send and /get, and reports whether text was one of
// them (else it goes to the server).
func (c *Client) local(out io.Writer, text string) bool {
	name, rest, _ := strings.Cut(text, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(name) {
	case "/send":
		to := ""
		if strings.HasPrefix(rest, "@") {
			to, rest, _ = strings.Cut(rest[1:], " ")
			rest = strings.TrimSpace(rest)
		}
		if rest == "" {
			fmt.Fprintf(out, "%susage: /send [@NICK] PATH\n", protocol.SystemPrefix)
			return true
		}
		o := &offer{path: rest, name: filepath.Base(rest), to: to, url: make(chan string, 1)}
		c.xfer.wg.Go(func() { c.send(out, o) })
	case "/get":
		f := strings.Fields(rest)
		room := c.view.Current
		if len(f) > 0 && strings.HasPrefix(f[0], "#") {
			room, f = f[0][1:], f[1:]
		}
		seq, err := strconv.ParseUint(firstOf(f), 10, 64)
		if err != nil || len(f) > 2 {
			fmt.Fprintf(out, "%susage: /get [#ROOM] N [DIR] (N: the number of a message sharing a file, in the current room or ROOM)\n", protocol.SystemPrefix)
			return true
		}
		dir := "."
		if len(f) == 2 {
			dir = f[1]
		}
		file := c.files[protocol.Fold(room)][seq]
		if file == nil {
			fmt.Fprintf(out, "%sno file shared in message %d of #%s that this client has seen\n", protocol.SystemPrefix, seq, room)
			return true
		}
		c.xfer.wg.Go(func() { c.get(out, *file, dir) })
	default:
		return false
	}
	return true
}

func firstOf(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// getHint tells how to download the file of ev, a file event in a room.
func (c *Client) getHint(out io.Writer, ev *protocol.Event) {
	if ev.Room == "" || ev.Seq == 0 || ev.File == nil || ev.File.Expired {
		return
	}
	where := ""
	if !strings.EqualFold(ev.Room, c.view.Current) {
		where = "#" + ev.Room + " "
	}
	fmt.Fprintf(out, "%sto download it: /get %s%d [DIR]\n", protocol.SystemPrefix, where, ev.Seq)
}

// sawFile remembers a file shared in a room, for /get, and hands an
// upload link to the /send waiting for it. It runs in serve's goroutine.
func (c *Client) sawFile(ev *protocol.Event) {
	switch {
	case ev.Type == protocol.TypeFile && ev.Room != "" && ev.Seq > 0 && ev.File != nil:
		room := protocol.Fold(ev.Room)
		if c.files[room] == nil {
			c.files[room] = make(map[uint64]*protocol.FileInfo)
		}
		files := c.files[room]
		files[ev.Seq] = ev.File
		if len(files) > filesPerRoom {
			oldest := ev.Seq
			for seq := range files {
				oldest = min(oldest, seq)
			}
			delete(files, oldest)
		}
	case ev.Type == protocol.TypeUpload && ev.File != nil:
		for i, o := range c.xfer.pending {
			if o.name == ev.File.Name && o.size == ev.File.Size {
				o.url <- ev.URL
				c.xfer.pending = append(c.xfer.pending[:i], c.xfer.pending[i+1:]...)
				return
			}
		}
	}
}

// send hashes o's file, has serve offer it, and uploads it to the link
// the server gives.
func (c *Client) send(out io.Writer, o *offer) {
	say := func(format string, args ...any) { fmt.Fprintf(out, protocol.SystemPrefix+format+"\n", args...) }
	f, err := os.Open(o.path)
	if err != nil {
		say("can't send %s: %v", o.path, err)
		return
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		say("can't read %s: %v", o.path, err)
		return
	}
	o.size, o.sha = n, hex.EncodeToString(h.Sum(nil))
	select {
	case c.xfer.ready <- o:
	case <-c.xfer.ctx.Done():
		return
	}
	var url string
	select {
	case url = <-o.url:
	case <-time.After(offerWait):
		say("no upload link came for %s; not sent", o.name)
		return
	case <-c.xfer.ctx.Done():
		return
	}
	p := newProgress(out, c.Terminal, "sending "+o.name, o.size)
	var offset int64
	for attempt := 0; ; attempt++ {
		done, err := c.put(f, url, offset, o.size, p)
		if done || err == nil {
			p.finish()
			say("sent %s (%s)", o.name, protocol.FormatBytes(o.size))
			return
		}
		var refused *refusedError
		if errors.As(err, &refused) || attempt == transferRetries || c.xfer.ctx.Err() != nil {
			p.finish()
			say("sending %s failed: %v", o.name, err)
			return
		}
		if offset, err = c.uploaded(url); err != nil {
			p.finish()
			say("sending %s failed: %v", o.name, err)
			return
		}
	}
}

// refusedError is a transfer the server refused: trying again won't help.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

// put uploads f from offset to url, and reports whether the upload is
// complete.
func (c *Client) put(f *os.File, url string, offset, size int64, p *progress) (bool, error) {
	body := io.NewSectionReader(f, offset, size-offset)
	req, err := http.NewRequestWithContext(c.xfer.ctx, http.MethodPut, url, p.reader(body, offset))
	if err != nil {
		return false, &refusedError{err.Error()}
	}
	req.ContentLength = size - offset
	if offset > 0 {
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", offset, size-1, size))
	}
	resp, err := c.xfer.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	switch {
	case resp.StatusCode == http.StatusCreated:
		return true, nil
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestTimeout:
		return false, errors.New(strings.TrimSpace(string(msg))) // cut short: resume
	default:
		return false, &refusedError{fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))}
	}
}

// uploaded asks the server how much of the upload at url it has.
func (c *Client) uploaded(url string) (int64, error) {
	req, err := http.NewRequestWithContext(c.xfer.ctx, http.MethodHead, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.xfer.http.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("the upload can't be resumed: %s", resp.Status)
	}
	return strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
}

// get downloads file into dir, under its name made safe, resuming after a
// dropped connection, and checks its hash.
func (c *Client) get(out io.Writer, file protocol.FileInfo, dir string) {
	say := func(format string, args ...any) { fmt.Fprintf(out, protocol.SystemPrefix+format+"\n", args...) }
	if file.Expired || file.URL == "" {
		say("%s has expired: the server no longer has it", file.Name)
		return
	}
	name := SafeFileName(file.Name)
	part, err := os.CreateTemp(dir, "."+name+".*.part")
	if err != nil {
		say("can't download %s: %v", file.Name, err)
		return
	}
	defer os.Remove(part.Name()) // once renamed, a no-op
	defer part.Close()
	p := newProgress(out, c.Terminal, "getting "+name, file.Size)
	h := sha256.New()
	var got int64
	for attempt := 0; ; attempt++ {
		n, err := c.fetch(file.URL, got, io.MultiWriter(part, h), p)
		got += n
		if err == nil && got == file.Size {
			break
		}
		var refused *refusedError
		if err == nil {
			err = fmt.Errorf("got %d bytes of %d", got, file.Size)
		}
		if errors.As(err, &refused) || attempt == transferRetries || c.xfer.ctx.Err() != nil {
			p.finish()
			say("getting %s failed: %v", file.Name, err)
			return
		}
	}
	p.finish()
	if sum := hex.EncodeToString(h.Sum(nil)); file.SHA256 != "" && sum != file.SHA256 {
		say("%s is not what was shared (sha256 %s, not %s); not kept", file.Name, sum, file.SHA256)
		return
	}
	if err := part.Sync(); err != nil {
		say("can't write %s: %v", file.Name, err)
		return
	}
	final, err := freePath(dir, name)
	if err == nil {
		err = os.Rename(part.Name(), final)
	}
	if err != nil {
		say("can't keep %s: %v", file.Name, err)
		return
	}
	say("got %s (%s, sha256 checked): %s", file.Name, protocol.FormatBytes(file.Size), final)
}

// fetch downloads url from offset into w, and returns the bytes written.
func (c *Client) fetch(url string, offset int64, w io.Writer, p *progress) (int64, error) {
	req, err := http.NewRequestWithContext(c.xfer.ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, &refusedError{err.Error()}
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.xfer.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent ||
		offset > 0 && resp.StatusCode != http.StatusPartialContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return 0, &refusedError{fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))}
	}
	return io.Copy(w, p.reader(resp.Body, offset))
}

// SafeFileName is name as a file name that stays in the directory it is
// put in, whatever the sender chose: its last path element, with control
// characters replaced, and "file" for a name that is empty, "." or "..".
func SafeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e || r == 0x202d || (r >= 0x2066 && r <= 0x2069) {
			return '_'
		}
		return r
	}, name)
	if name == "" || name == "." || name == ".." {
		return "file"
	}
	return name
}

// freePath returns dir/name, or dir/name-1, -2... if that is taken.
func freePath(dir, name string) (string, error) {
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 0; i < 1000; i++ {
		n := name
		if i > 0 {
			n = fmt.Sprintf("%s-%d%s", base, i, ext)
		}
		p := filepath.Join(dir, n)
		if filepath.Dir(p) != filepath.Clean(dir) {
			return "", fmt.Errorf("%q would leave %s", name, dir)
		}
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no free name for %s in %s", name, dir)
}

// progress shows how a transfer goes: on a terminal a bar redrawn in
// place at most five times a second (bytes, rate, time left); otherwise a
// line at each quarter.
type progress struct {
	out      io.Writer
	terminal bool
	what     string
	total    int64
	start    time.Time

	mu      sync.Mutex
	done    int64
	last    time.Time
	quarter int64
	drawn   bool
}

func newProgress(out io.Writer, terminal bool, what string, total int64) *progress {
	return &progress{out: out, terminal: terminal, what: what, total: total, start: time.Now()}
}

// reader counts what r reads, from offset on.
func (p *progress) reader(r io.Reader, offset int64) io.Reader {
	p.mu.Lock()
	p.done = offset
	p.mu.Unlock()
	return &counting{r: r, p: p}
}

type counting struct {
	r io.Reader
	p *progress
}

func (c *counting) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.add(int64(n))
	return n, err
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	now := time.Now()
	switch {
	case p.terminal && now.Sub(p.last) >= 200*time.Millisecond:
		p.last, p.drawn = now, true
		fmt.Fprintf(p.out, "\r%s%s", protocol.SystemPrefix, p.line(now))
	case !p.terminal && p.total > 0 && p.done*4/p.total > p.quarter && p.done < p.total:
		p.quarter = p.done * 4 / p.total
		fmt.Fprintf(p.out, "%s%s\n", protocol.SystemPrefix, p.line(now))
	}
}

// line is the progress so far: "sending a.bin [#####.....] 50% 1.0 MB of 2.0 MB, 3.1 MB/s, 1s left".
func (p *progress) line(now time.Time) string {
	pct := int64(100)
	if p.total > 0 {
		pct = p.done * 100 / p.total
	}
	bar := strings.Repeat("#", int(pct/10)) + strings.Repeat(".", 10-int(pct/10))
	rate := float64(p.done) / max(now.Sub(p.start).Seconds(), 1e-3)
	left := "?"
	if rate > 0 {
		left = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%s [%s] %d%% %s of %s, %s/s, %s left", p.what, bar, pct,
		protocol.FormatBytes(p.done), protocol.FormatBytes(p.total), protocol.FormatBytes(int64(rate)), left)
}

// finish ends a bar drawn in place.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.out)
		p.drawn = false
	}
}
