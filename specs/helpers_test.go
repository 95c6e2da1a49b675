package specs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/line"
	"github.com/natter-chat/natter/chat/logline"
	"github.com/natter-chat/natter/chat/protocol"
)

// readTimeout bounds every blocking read a spec makes.
const readTimeout = 10 * time.Second

// runningServer is a chat.Server serving in the background for one spec.
type runningServer struct {
	*chat.Server
	Addr string
	Log  *gbytes.Buffer // what the server logged, in its text format

	cancel context.CancelFunc
	done   chan error
}

// startServer starts a server on nw and registers its shutdown as a cleanup.
func startServer(nw Network, opts chat.Options) *runningServer {
	GinkgoHelper()
	return startServerOn(nw, "127.0.0.1:0", opts)
}

// startServerOn is startServer on a given address.
func startServerOn(nw Network, addr string, opts chat.Options) *runningServer {
	GinkgoHelper()
	ln, err := nw.Listen("tcp", addr)
	Expect(err).NotTo(HaveOccurred())
	if opts.MessageRate == 0 {
		// Specs that are not about flood control send as fast as they can.
		opts.MessageRate = rate.Inf
	}
	log := gbytes.NewBuffer()
	opts.Logger = slog.New(logline.NewHandler(io.MultiWriter(log, GinkgoWriter), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	s := &runningServer{
		Server: chat.NewServer(ln, opts),
		Addr:   ln.Addr().String(),
		Log:    log,
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { s.done <- s.Serve(ctx) }()
	DeferCleanup(s.Stop)
	return s
}

// Stop shuts the server down and waits for Serve to return, returning its
// result. It may be called more than once.
func (s *runningServer) Stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // keep it for the next call
		return err
	case <-time.After(readTimeout):
		// Where it is stuck is what the reader of the failure needs.
		_ = pprof.Lookup("goroutine").WriteTo(GinkgoWriter, 1)
		return errors.New("server did not stop in time")
	}
}

// testClient is a raw connection used the way nc would use it: lines written
// as bytes, lines read synchronously. It starts no goroutine.
type testClient struct {
	conn  net.Conn
	lines *line.Reader
	Nick  string // as the welcome line said
}

// welcomeLine is the first line of every text-format connection.
var welcomeLine = regexp.MustCompile(`^\*\*\* Welcome, ([A-Za-z][\w-]*)! You are in #lobby\. `)

// presenceLine matches the announcements of people arriving, leaving and
// renaming themselves, which most specs are not about.
var presenceLine = regexp.MustCompile(`^\*\*\* \S+ (joined #|left #|quit|is now )`)

// newTestClient takes over a connection to the server and reads its
// welcome line.
func newTestClient(conn net.Conn) *testClient {
	GinkgoHelper()
	c := &testClient{conn: conn, lines: newLineReader(conn)}
	l, err := c.ReadLine()
	Expect(err).NotTo(HaveOccurred())
	m := welcomeLine.FindStringSubmatch(l)
	Expect(m).NotTo(BeNil(), "the first line %q is not a welcome", l)
	c.Nick = m[1]
	return c
}

// Says returns text as the others see it when c says it in their current
// room.
func (c *testClient) Says(text string) string { return c.Nick + ": " + text }

// connect dials the server and registers closing the connection as a
// cleanup.
func connect(nw Network, addr string) *testClient {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	conn, err := nw.DialContext(ctx, "tcp", addr)
	Expect(err).NotTo(HaveOccurred())
	// The spec may have closed it already; a second Close just fails.
	DeferCleanup(func() { _ = conn.Close() })
	return newTestClient(conn)
}

// newLineReader reads lines from the server with a bound far above any
// line it sends.
func newLineReader(r io.Reader) *line.Reader { return line.NewReader(r, 1<<20) }

// connectAll connects n clients and waits until the server has registered
// them all, so each of them receives everything broadcast from then on.
func connectAll(srv *runningServer, nw Network, n int) []*testClient {
	GinkgoHelper()
	before := srv.Clients()
	clients := make([]*testClient, n)
	for i := range clients {
		clients[i] = connect(nw, srv.Addr)
	}
	Eventually(srv.Clients).Should(Equal(before + n))
	return clients
}

// Name is the client's address as the server sees and logs it.
func (c *testClient) Name() string { return c.conn.LocalAddr().String() }

// Send writes raw bytes, which should include their line endings.
func (c *testClient) Send(raw string) {
	GinkgoHelper()
	Expect(c.conn.SetWriteDeadline(time.Now().Add(readTimeout))).To(Succeed())
	_, err := io.WriteString(c.conn, raw)
	Expect(err).NotTo(HaveOccurred())
}

// ReadLine returns the next line from the server, waiting at most
// readTimeout.
func (c *testClient) ReadLine() (string, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(readTimeout)); err != nil {
		return "", err
	}
	b, err := c.lines.Next()
	return string(b), err
}

// NextLine returns the next line from the server that is not a presence
// announcement (see presenceLine), waiting at most readTimeout.
func (c *testClient) NextLine() (string, error) {
	for {
		l, err := c.ReadLine()
		if err != nil || !presenceLine.MatchString(l) {
			return l, err
		}
	}
}

// ExpectLines asserts the next lines from the server, presence
// announcements aside, are exactly want.
func (c *testClient) ExpectLines(want ...string) {
	GinkgoHelper()
	for _, w := range want {
		got, err := c.NextLine()
		Expect(err).NotTo(HaveOccurred(), "waiting for %q", w)
		Expect(got).To(Equal(w))
	}
}

// ExpectExactly asserts the next lines from the server are exactly want,
// presence announcements included.
func (c *testClient) ExpectExactly(want ...string) {
	GinkgoHelper()
	for _, w := range want {
		got, err := c.ReadLine()
		Expect(err).NotTo(HaveOccurred(), "waiting for %q", w)
		Expect(got).To(Equal(w))
	}
}

// ExpectDisconnected reads until the connection ends and asserts that it
// ended because the other side closed it, not because of a timeout. It
// returns the lines read on the way, presence announcements aside.
func (c *testClient) ExpectDisconnected() []string {
	GinkgoHelper()
	var lines []string
	for {
		l, err := c.NextLine()
		if err == nil || line.IsRejected(err) {
			lines = append(lines, l)
			continue
		}
		Expect(err).To(BeADisconnection())
		return lines
	}
}

// BeADisconnection matches the errors a reader sees when its peer closes:
// io.EOF, a reset, a broken pipe, or use of a connection already closed.
// Which one appears depends on timing and on the transport, so specs accept
// any of them.
func BeADisconnection() OmegaMatcher {
	return Satisfy(func(err error) bool {
		return err == io.EOF || errors.Is(err, syscall.ECONNRESET) ||
			errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
	})
}

// Event reads the next line and decodes it as a JSON event, skipping
// events whose type is in skip.
func (c *testClient) Event(skip ...string) protocol.Event {
	GinkgoHelper()
	for {
		l, err := c.ReadLine()
		Expect(err).NotTo(HaveOccurred())
		var ev protocol.Event
		Expect(json.Unmarshal([]byte(l), &ev)).To(Succeed(), "not a JSON event: %q", l)
		Expect(ev.Type).NotTo(BeEmpty(), "event without a type: %q", l)
		if !slices.Contains(skip, ev.Type) {
			return ev
		}
	}
}

// presenceEvents are the JSON counterparts of presenceLine.
var presenceEvents = []string{protocol.TypeJoin, protocol.TypePart, protocol.TypeQuit, protocol.TypeNick}

// ExpectEvent asserts the next event other than a presence event equals
// want, apart from its time and its number, which the spec may check on the
// event returned.
func (c *testClient) ExpectEvent(want protocol.Event) protocol.Event {
	GinkgoHelper()
	got := c.Event(presenceEvents...)
	stamped := got
	stamped.Time, stamped.Seq = "", 0
	Expect(stamped).To(Equal(want))
	return got
}

// Command sends one JSON command object.
func (c *testClient) Command(fields map[string]any) {
	GinkgoHelper()
	b, err := json.Marshal(fields)
	Expect(err).NotTo(HaveOccurred())
	c.Send(string(b) + "\n")
}

// SwitchToJSON asks for the JSON format and reads the confirmation and the
// welcome that follow.
// Text lines still on their way before the switch are skipped.
func (c *testClient) SwitchToJSON() {
	GinkgoHelper()
	c.Send("/format json\n")
	for {
		l, err := c.ReadLine()
		Expect(err).NotTo(HaveOccurred())
		if strings.HasPrefix(l, "{") {
			var ev protocol.Event
			Expect(json.Unmarshal([]byte(l), &ev)).To(Succeed())
			Expect(ev.Type).To(Equal(protocol.TypeFormat))
			break
		}
	}
	Expect(c.Event(presenceEvents...).Type).To(Equal(protocol.TypeWelcome))
}

// failingStore is a history store whose appends fail while failing is set,
// as on a full disk.
type failingStore struct {
	history.Store
	failing atomic.Bool
}

func (f *failingStore) Append(msgs []history.Message) error {
	if f.failing.Load() {
		return errors.New("no space left on device")
	}
	return f.Store.Append(msgs)
}

// openStore opens the server's history store (the log) in dir and
// registers closing it.
func openStore(dir string, r history.Retention) *history.LogStore {
	GinkgoHelper()
	s, err := history.OpenLog(dir, r)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(s.Close)
	return s
}

// gbytesSay is gbytes.Say, for files that need only it.
func gbytesSay(re string) OmegaMatcher { return gbytes.Say(re) }

// pacedReader reads at most n bytes at each tick: a client that reads a
// little at a time.
type pacedReader struct {
	r    io.Reader
	n    int
	tick <-chan time.Time
}

func (p *pacedReader) Read(b []byte) (int, error) {
	<-p.tick
	return p.r.Read(b[:min(len(b), p.n)])
}

// scrape returns the server's metrics in the Prometheus text format.
func scrape(srv *runningServer) string {
	GinkgoHelper()
	rec := httptest.NewRecorder()
	srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	Expect(rec.Code).To(Equal(200))
	return rec.Body.String()
}
