package chat_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/files"
	"github.com/natter-chat/natter/chat/history"
)

// fileBytes is the size of the file BenchmarkFileTransfer moves.
const fileBytes = 1 << 30

// BenchmarkFileTransfer moves a 1 GiB file through the file service on
// loopback TCP: uploaded (PUT, hashed, written to disk and synced) and
// downloaded (GET), each against a plain TCP copy of the same bytes in the
// same run (MB/s, and the ratio). Meanwhile a chat client's echo is
// measured, against its quiet baseline (p99), and the process's RSS is
// sampled (peak growth over the transfer, in MiB: it must not grow with
// the file). Run it with -benchtime 1x: one iteration is one of each.
func BenchmarkFileTransfer(b *testing.B) {
	for range b.N {
		fileTransfer(b)
	}
}

func fileTransfer(b *testing.B) {
	b.StopTimer()
	fl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var srv *chat.Server
	svc, err := files.New(files.Config{Dir: b.TempDir(), BaseURL: "http://" + fl.Addr().String(),
		MaxFileBytes: 2 * fileBytes, QuotaBytes: 4 * fileBytes, MaxBytes: 4 * fileBytes,
		Check: func(o files.Offer) error { return srv.CheckPost(o) }},
		func(u files.Upload) error { return srv.PostFile(u) })
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv = chat.NewServer(ln, chat.Options{History: history.NewMemory(history.Retention{}), MessageRate: rate.Inf,
		Files: svc, FilesListener: fl})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() { cancel(); <-served }()

	chatConn := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReader(conn)
		if _, err := r.ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		return conn, r
	}
	sender, sr := chatConn()
	defer sender.Close()
	probe, pr := chatConn()
	defer probe.Close()
	fmt.Fprintf(probe, "/join probe\n")
	readUntil(b, pr, "you are now talking in #probe")

	// The probe echoes a line every 10ms until stopped.
	echoes := func(stop <-chan struct{}) []time.Duration {
		var lat []time.Duration
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				slices.Sort(lat)
				return lat
			case <-tick.C:
			}
			start := time.Now()
			fmt.Fprintf(probe, "probe %d\n", i)
			readUntil(b, pr, ": probe "+strconv.Itoa(i))
			lat = append(lat, time.Since(start))
		}
	}
	quietStop := make(chan struct{})
	time.AfterFunc(time.Second, func() { close(quietStop) })
	quiet := echoes(quietStop)

	// Plain TCP copies of the same bytes, both ways.
	tcpUp, tcpDown := tcpCopy(b, fileBytes)

	// The upload, with the probe and the RSS sampler running.
	fmt.Fprintf(sender, "/upload big.bin %d\n", fileBytes)
	line := readUntil(b, sr, "curl -g -T")
	url := regexp.MustCompile(`(http://\S+/u/\S+)$`).FindString(strings.TrimSpace(line))
	stop := make(chan struct{})
	var during []time.Duration
	var peak int64
	var wg sync.WaitGroup
	wg.Go(func() { during = echoes(stop) })
	base := rss(b)
	wg.Go(func() { peak = sampleRSS(b, stop) })
	b.StartTimer()
	start := time.Now()
	req, err := http.NewRequest(http.MethodPut, url, io.LimitReader(newBytes(), fileBytes))
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = fileBytes
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	link, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	up := time.Since(start)
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("upload: %d %s", resp.StatusCode, link)
	}
	start = time.Now()
	resp, err = http.Get(strings.TrimSpace(string(link)))
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	down := time.Since(start)
	b.StopTimer()
	close(stop)
	wg.Wait()
	if err != nil || n != fileBytes {
		b.Fatalf("download: %d bytes, %v", n, err)
	}
	mbps := func(d time.Duration) float64 { return fileBytes / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(up), "upload-MB/s")
	b.ReportMetric(mbps(tcpUp), "tcp-up-MB/s")
	b.ReportMetric(tcpUp.Seconds()/up.Seconds(), "upload/tcp")
	b.ReportMetric(mbps(down), "download-MB/s")
	b.ReportMetric(mbps(tcpDown), "tcp-down-MB/s")
	b.ReportMetric(tcpDown.Seconds()/down.Seconds(), "download/tcp")
	b.ReportMetric(float64(quiet[len(quiet)*99/100].Microseconds()), "quiet-p99-µs")
	b.ReportMetric(float64(during[len(during)*99/100].Microseconds()), "transfer-p99-µs")
	b.ReportMetric(float64(peak-base)/(1<<20), "rss-growth-MiB")
}

// readUntil reads r's lines until one that contains want, and returns it.
func readUntil(b *testing.B, r *bufio.Reader, want string) string {
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(l, want) {
			return l
		}
	}
}

// newBytes is an endless stream of pseudo-random bytes, the same each
// time, made 1 MiB at a time.
func newBytes() io.Reader {
	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	return &repeat{block: block}
}

type repeat struct {
	block []byte
	off   int
}

func (r *repeat) Read(p []byte) (int, error) {
	n := copy(p, r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	return n, nil
}

// tcpCopy times n bytes sent over a loopback TCP connection, to a reader
// that discards them, each way.
func tcpCopy(b *testing.B, n int64) (up, down time.Duration) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	for _, upward := range []bool{true, false} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			if upward {
				io.Copy(io.Discard, conn)
			} else {
				io.Copy(conn, io.LimitReader(newBytes(), n))
			}
		}()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if upward {
			io.Copy(conn, io.LimitReader(newBytes(), n))
			conn.(*net.TCPConn).CloseWrite()
		} else {
			io.Copy(io.Discard, conn)
		}
		<-done
		conn.Close()
		if upward {
			up = time.Since(start)
		} else {
			down = time.Since(start)
		}
	}
	return up, down
}

// rss returns the process's resident set, in bytes.
func rss(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status: ", err)
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// sampleRSS returns the largest rss seen every 50ms until stop.
func sampleRSS(b *testing.B, stop <-chan struct{}) int64 {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	peak := rss(b)
	for {
		select {
		case <-stop:
			return peak
		case <-tick.C:
			peak = max(peak, rss(b))
		}
	}
}
