package specs_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/cli/servercmd"
)

// httpGet fetches url over nw, with no connection left open afterwards.
func httpGet(nw Network, url string) (int, string) {
	GinkgoHelper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nw.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: readTimeout}).Get(url)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(body)
}

// metric returns the value of the sample line starting with name in a
// Prometheus text exposition, or "" if there is none.
func metric(exposition, name string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(exposition)
	if m == nil {
		return ""
	}
	return m[1]
}

var _ = DescribeTableSubtree("Operations", func(tr Transport) {
	var (
		nw        Network
		srv       *runningServer
		adminAddr string
	)

	BeforeEach(func() {
		nw = tr.New(false)
		srv = startServer(nw, chat.Options{MessageRate: 0.1, MessageBurst: 3, FloodDelay: time.Millisecond, FloodRefusals: 2})
		ln, err := nw.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		adminAddr = ln.Addr().String()
		admin := &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: readTimeout}
		done := make(chan struct{})
		go func() {
			defer close(done)
			admin.Serve(ln)
		}()
		DeferCleanup(func() {
			admin.Close()
			<-done
		})
	})

	It("counts clients, messages, deliveries, writes, rejected lines and disconnects by reason, for Prometheus", SpecTimeout(specTimeout), func(ctx SpecContext) {
		cs := connectAll(srv, nw, 3)
		alice, bob, flooder := cs[0], cs[1], cs[2]
		alice.Send("one\ntwo\n")
		bob.ExpectLines(alice.Says("one"), alice.Says("two"))
		flooder.Send(strings.Repeat("spam\n", 10))
		flooder.ExpectDisconnected()
		Eventually(srv.Clients).Should(Equal(2))

		Eventually(func() string { _, body := httpGet(nw, "http://"+adminAddr+"/metrics"); return body }).Should(And(
			ContainSubstring("natter_clients 2\n"),
			ContainSubstring(`natter_disconnects_total{reason="flooding"} 1`+"\n"),
			ContainSubstring(`natter_lines_rejected_total{code="rate_limited"} 2`+"\n"),
		))
		_, body := httpGet(nw, "http://"+adminAddr+"/metrics")
		Expect(metric(body, "natter_messages_received_total")).To(Equal("5"), "alice's 2 and the flooder's 3 within its burst")
		Expect(metric(body, "natter_store_commit_seconds_count")).NotTo(BeElementOf("", "0"))
		Expect(metric(body, "natter_deliveries_total")).NotTo(BeElementOf("", "0"))
		Expect(metric(body, "natter_bytes_written_total")).NotTo(BeElementOf("", "0"))
		Expect(metric(body, "natter_writes_total")).NotTo(BeElementOf("", "0"))
		Expect(metric(body, "go_goroutines")).NotTo(BeEmpty(), "the Go runtime's metrics are there too")
	})

	It("answers /healthz, /readyz and the pprof index", SpecTimeout(specTimeout), func(ctx SpecContext) {
		for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
			code, body := httpGet(nw, "http://"+adminAddr+path)
			Expect(code).To(Equal(http.StatusOK), path)
			Expect(body).To(Equal(want), path)
		}
		code, body := httpGet(nw, "http://"+adminAddr+"/debug/pprof/")
		Expect(code).To(Equal(http.StatusOK))
		Expect(body).To(ContainSubstring("goroutine"))
	})

	It("serves the admin endpoints from the server command when -admin-addr is given", SpecTimeout(specTimeout), func(ctx SpecContext) {
		server := runCommand(servercmd.Run, nw, "-addr", "127.0.0.1:0", "-memory", "-admin-addr", "127.0.0.1:0")
		admin := regexp.MustCompile(`INFO Admin endpoints on http://(127\.0\.0\.1:\d+)/metrics\n`)
		Eventually(server.stderr).Should(gbytes.Say(admin.String()))
		addr := admin.FindStringSubmatch(string(server.stderr.Contents()))[1]
		code, body := httpGet(nw, "http://"+addr+"/metrics")
		Expect(code).To(Equal(http.StatusOK))
		Expect(body).To(ContainSubstring("natter_clients 0\n"))
	})
}, transports)
