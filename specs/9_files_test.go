package specs_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/cli/clientcmd"
	"github.com/natter-chat/natter/chat/files"
)

// fileServer is a running server that shares files, with an HTTP client
// that reaches its file listener over the spec's network.
type fileServer struct {
	*runningServer
	Files   *files.Service
	Dir     string // the file store's
	BaseURL string // its links'
	HTTP    *http.Client
}

// startFileServer starts a server on nw sharing files with cfg (its Dir
// and BaseURL filled in), and registers their shutdown.
func startFileServer(nw Network, opts chat.Options, cfg files.Config) *fileServer {
	GinkgoHelper()
	fl, err := nw.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	if cfg.Dir == "" {
		cfg.Dir = GinkgoT().TempDir()
	}
	cfg.BaseURL = "http://" + fl.Addr().String()
	var srv atomic.Pointer[runningServer]
	cfg.Check = func(o files.Offer) error { return srv.Load().CheckPost(o) }
	svc, err := files.New(cfg, func(u files.Upload) error { return srv.Load().PostFile(u) })
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(svc.Close) // after the server stops
	opts.Files, opts.FilesListener = svc, fl
	srv.Store(startServer(nw, opts))
	tr := &http.Transport{DialContext: nw.DialContext}
	DeferCleanup(tr.CloseIdleConnections)
	return &fileServer{runningServer: srv.Load(), Files: svc, Dir: cfg.Dir, BaseURL: cfg.BaseURL, HTTP: &http.Client{Transport: tr, Timeout: readTimeout}}
}

// uploadLine is the text answer to /upload.
var uploadLine = regexp.MustCompile(`^\*\*\* upload (.+) \((.+)\) before (\S+): curl -g -T '(.*)' (http://\S+/u/\S+)$`)

// offer sends /upload ARGS as c and returns the upload URL it is given.
func (c *testClient) offer(args string) string {
	GinkgoHelper()
	c.Send("/upload " + args + "\n")
	l, err := c.NextLine()
	Expect(err).NotTo(HaveOccurred())
	m := uploadLine.FindStringSubmatch(l)
	Expect(m).NotTo(BeNil(), "got %q", l)
	return m[5]
}

// put uploads body to url and returns the status and the response's body.
func (fs *fileServer) put(url string, body []byte) (int, string) {
	GinkgoHelper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	return fs.do(req)
}

// do sends req and returns the status and the response's body.
func (fs *fileServer) do(req *http.Request) (int, string) {
	GinkgoHelper()
	resp, err := fs.HTTP.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(b)
}

// get downloads url, with a Range header if rng is not empty.
func (fs *fileServer) get(url, rng string) *http.Response {
	GinkgoHelper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	Expect(err).NotTo(HaveOccurred())
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := fs.HTTP.Do(req)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(resp.Body.Close)
	return resp
}

// body reads what is left of resp's body.
func body(resp *http.Response) string {
	GinkgoHelper()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// sharedLine matches the text of a file event: who, the name, the link.
func sharedLine(prefix, from, name string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + regexp.QuoteMeta(from) + ` shared ` + regexp.QuoteMeta(name) + ` \([^)]+\): (http://\S+/f/\S+)$`)
}

// linkIn reads c's next line, which must match re, and returns its link.
func (c *testClient) linkIn(re *regexp.Regexp) string {
	GinkgoHelper()
	l, err := c.NextLine()
	Expect(err).NotTo(HaveOccurred())
	m := re.FindStringSubmatch(l)
	Expect(m).NotTo(BeNil(), "got %q, want %v", l, re)
	return m[1]
}

// fullDisk is a file on a disk with room for room bytes more.
type fullDisk struct {
	*os.File
	room int
}

func (f *fullDisk) Write(b []byte) (int, error) {
	if len(b) > f.room {
		n, _ := f.File.Write(b[:f.room])
		f.room = 0
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.room -= len(b)
	return f.File.Write(b)
}

// skipToPrefix reads c's lines up to one that starts with prefix.
func (c *testClient) skipToPrefix(prefix string) {
	GinkgoHelper()
	for range 12 {
		l, err := c.ReadLine()
		Expect(err).NotTo(HaveOccurred(), "waiting for %q", prefix)
		if strings.HasPrefix(l, prefix) {
			return
		}
	}
	Fail(fmt.Sprintf("no line starting %q in a dozen", prefix))
}

// tempFiles lists the store's temporary files: uploads not yet complete.
func (fs *fileServer) tempFiles() []string { return fs.filesUnder("tmp") }

// filesUnder lists the files under the store's directory sub.
func (fs *fileServer) filesUnder(sub string) []string {
	var names []string
	filepath.WalkDir(filepath.Join(fs.Dir, sub), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, path)
		}
		return nil
	})
	return names
}

var _ = DescribeTableSubtree("Sharing files", func(tr Transport) {
	var nw Network
	BeforeEach(func() { nw = tr.New(false) })

	Context("when a client shares a file with its room", func() {
		It("answers /upload with a one-time link and a curl line to paste, and once the file is uploaded posts it to the room, numbered and kept in history", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			cs := connectAll(fs.runningServer, nw, 2)
			alice, bob := cs[0], cs[1]
			content := []byte("hello world")
			url := alice.offer(fmt.Sprintf("notes.txt %d %s", len(content), sha(content)))

			status, answer := fs.put(url, content)
			Expect(status).To(Equal(http.StatusCreated))
			shared := sharedLine("", alice.Nick, "notes.txt")
			link := bob.linkIn(shared)
			Expect(strings.TrimSpace(answer)).To(Equal(link), "the upload's answer is the link")
			Expect(alice.linkIn(shared)).To(Equal(link))

			bob.Send("/history\n")
			Expect(bob.linkIn(sharedLine("[history 1] ", alice.Nick, "notes.txt"))).To(Equal(link))
			status, _ = fs.put(url, content)
			Expect(status).To(Equal(http.StatusGone), "the upload link works once")
		})

		It("serves the file as an attachment, with its hash as ETag, a safe name and no sniffing, and a Range of it so a download resumes", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			content := []byte("hello world")
			status, _ := fs.put(alice.offer(fmt.Sprintf(`report.txt %d`, len(content))), content)
			Expect(status).To(Equal(http.StatusCreated))
			link := alice.linkIn(sharedLine("", alice.Nick, "report.txt"))

			resp := fs.get(link, "")
			Expect(resp.StatusCode).To(Equal(http.StatusOK))
			Expect(body(resp)).To(Equal("hello world"))
			Expect(resp.Header.Get("ETag")).To(Equal(`"` + sha(content) + `"`))
			Expect(resp.Header.Get("Content-Disposition")).To(Equal(`attachment; filename=report.txt`))
			Expect(resp.Header.Get("X-Content-Type-Options")).To(Equal("nosniff"))
			Expect(resp.Header.Get("Content-Type")).To(HavePrefix("text/plain"))

			resp = fs.get(link, "bytes=6-")
			Expect(resp.StatusCode).To(Equal(http.StatusPartialContent))
			Expect(body(resp)).To(Equal("world"))
			resp = fs.get(link, "bytes=100-")
			Expect(resp.StatusCode).To(Equal(http.StatusRequestedRangeNotSatisfiable))
		})

		It("stores identical uploads once, and each sharer's link keeps working", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			content := []byte("same bytes")
			var links []string
			for _, name := range []string{"a.txt", "b.txt"} {
				status, _ := fs.put(alice.offer(fmt.Sprintf("%s %d", name, len(content))), content)
				Expect(status).To(Equal(http.StatusCreated))
				links = append(links, alice.linkIn(sharedLine("", alice.Nick, name)))
			}
			Expect(links[0]).NotTo(Equal(links[1]), "each post has its own link")
			Expect(fs.filesUnder("blobs")).To(HaveLen(1))
			for _, link := range links {
				Expect(body(fs.get(link, ""))).To(Equal("same bytes"))
			}
		})

		It("takes /upload in the JSON format too, and posts a file event with its name, size, type, hash and link", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			alice.Send("/format json\n")
			alice.skipToPrefix(`{"type":"welcome"`)
			alice.Send(`{"type":"upload","name":"a b.txt","size":3}` + "\n")
			l, err := alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			m := regexp.MustCompile(`"url":"(http://[^"]+)"`).FindStringSubmatch(l)
			Expect(l).To(HavePrefix(`{"type":"upload"`))
			Expect(m).NotTo(BeNil(), "got %s", l)
			status, _ := fs.put(m[1], []byte("abc"))
			Expect(status).To(Equal(http.StatusCreated))
			l, err = alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			Expect(l).To(MatchRegexp(`^\{"type":"file","seq":1,"time":"[^"]+","room":"lobby","from":"` + alice.Nick +
				`","file":\{"name":"a b.txt","size":3,"mime":"text/plain; charset=utf-8","sha256":"` + sha([]byte("abc")) + `","url":"http://[^"]+/f/[^"]+"\}\}$`))
		})
	})

	Context("when a shared file is past its retention", func() {
		It("removes it: its link answers 410 Gone, and its message in history says it expired", SpecTimeout(specTimeout), func(ctx SpecContext) {
			var ahead atomic.Int64 // how far the file service's clock is ahead
			fs := startFileServer(nw, chat.Options{}, files.Config{Retain: time.Hour,
				Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			status, _ := fs.put(alice.offer("old.txt 3"), []byte("old"))
			Expect(status).To(Equal(http.StatusCreated))
			link := alice.linkIn(sharedLine("", alice.Nick, "old.txt"))

			ahead.Store(int64(time.Hour + time.Second))
			Expect(fs.Files.Sweep()).To(Succeed())
			Expect(fs.get(link, "").StatusCode).To(Equal(http.StatusGone))
			Expect(fs.filesUnder("blobs")).To(BeEmpty(), "the file is gone from the disk")
			alice.Send("/history\n")
			alice.ExpectLines("[history 1] " + alice.Nick + " shared old.txt (3 B, sha256 " + sha([]byte("old"))[:8] + "…): expired")
		})
	})

	Context("when a client shares a file with one person", func() {
		It("posts it to the recipient and the sender only, and keeps it out of the room's history", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			cs := connectAll(fs.runningServer, nw, 3)
			alice, bob, carol := cs[0], cs[1], cs[2]
			status, _ := fs.put(alice.offer("@"+bob.Nick+" secret.txt 6"), []byte("psst!!"))
			Expect(status).To(Equal(http.StatusCreated))
			link := bob.linkIn(sharedLine("[pm] ", alice.Nick, "secret.txt"))
			Expect(alice.linkIn(sharedLine("[pm to "+bob.Nick+"] ", alice.Nick, "secret.txt"))).To(Equal(link))
			Expect(body(fs.get(link, ""))).To(Equal("psst!!"))
			carol.Send("/history\n")
			carol.ExpectLines("*** start of #lobby history reached (0 messages)")
		})
	})

	Context("with natter's own client", func() {
		It("sends a file with /send, showing its progress and checking its hash, and gets the file of a message with /get into a directory", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			dir := GinkgoT().TempDir()
			content := bytes.Repeat([]byte("natter "), 150_000) // 1.05 MB
			Expect(os.WriteFile(filepath.Join(dir, "big.bin"), content, 0o600)).To(Succeed())
			alice := runCommand(clientcmd.Run, nw, "-addr", fs.Addr, "-nick", "alice")
			Eventually(alice.stdout).Should(gbytes.Say(`\*\*\* guest-\d+ is now alice\n`))
			bob := runCommand(clientcmd.Run, nw, "-addr", fs.Addr, "-nick", "bob")
			Eventually(bob.stdout).Should(gbytes.Say(`\*\*\* guest-\d+ is now bob\n`))

			alice.Type("/send " + filepath.Join(dir, "big.bin") + "\n")
			// Piped, the progress is a line at each quarter.
			Eventually(alice.stdout).Should(gbytes.Say(`\*\*\* sending big\.bin \[##\.+\] 2\d% .* of 1\.1 MB, .*/s, .* left\n`))
			Eventually(alice.stdout).Should(gbytes.Say(`\*\*\* sent big\.bin \(1\.1 MB\)\n`))
			Eventually(bob.stdout).Should(gbytes.Say(`alice shared big\.bin \(1\.1 MB, sha256 ` + sha(content)[:8] + `…\): http://\S+/f/\S+\n`))

			into := GinkgoT().TempDir()
			Eventually(bob.stdout).Should(gbytes.Say(`\*\*\* to download it: /get (\d+) \[DIR\]\n`))
			seq := regexp.MustCompile(`to download it: /get (\d+) `).FindStringSubmatch(string(bob.stdout.Contents()))[1]
			bob.Type("/get " + seq + " " + into + "\n")
			Eventually(bob.stdout).Should(gbytes.Say(`\*\*\* got big\.bin \(1\.1 MB, sha256 checked\): ` + regexp.QuoteMeta(filepath.Join(into, "big.bin")) + `\n`))
			got, err := os.ReadFile(filepath.Join(into, "big.bin"))
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(Equal(content))
			bob.Type("/get " + seq + " " + into + "\n")
			Eventually(bob.stdout).Should(gbytes.Say(regexp.QuoteMeta(filepath.Join(into, "big-1.bin"))+`\n`), "never over a file already there")
		})
	})

	Context("when someone offers or uploads what breaks the rules", func() {
		It("refuses a file over the size limit before any byte moves", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{MaxFileBytes: 1000})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			alice.Send("/upload big.iso 1001\n")
			alice.ExpectLines("*** error: file too large: this server takes files of up to 1.0 kB")
		})

		It("refuses names with a slash, dot-dot, a control character or 10,000 bytes, and bad hashes", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{MaxLineBytes: 20000}, files.Config{})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			for _, offer := range []string{"a/b 1", "../x 1", "a\\b 1", ".. 1", strings.Repeat("n", 10000) + " 1", "ok.txt 1 nothex"} {
				alice.Send("/upload " + offer + "\n")
				l, err := alice.NextLine()
				Expect(err).NotTo(HaveOccurred())
				Expect(l).To(MatchRegexp(`^\*\*\* error: bad (file name|SHA-256): `), "for %.40q", offer)
			}
			// A control character never gets past the line reader.
			alice.Send("/upload a\x07b 1\n")
			l, err := alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			Expect(l).To(MatchRegexp(`^\*\*\* error: .*control character.*; it was discarded$`))
		})

		It("refuses a body longer than offered, or one whose hash is not the one offered, posting nothing and keeping nothing", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			cs := connectAll(fs.runningServer, nw, 2)
			alice, bob := cs[0], cs[1]
			status, _ := fs.put(alice.offer("a.txt 5"), []byte("123456"))
			Expect(status).To(Equal(http.StatusRequestEntityTooLarge))
			status, answer := fs.put(alice.offer("c.txt 5 "+sha([]byte("12345"))), []byte("54321"))
			Expect(status).To(Equal(http.StatusUnprocessableEntity))
			Expect(answer).To(ContainSubstring(sha([]byte("54321"))))
			Expect(fs.tempFiles()).To(BeEmpty())
			alice.Send("still chatting\n")
			bob.ExpectLines(alice.Says("still chatting"))
		})

		It("keeps what a body shorter than offered brought, says how much it has, and takes the rest from there", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			content := []byte("0123456789")
			url := alice.offer(fmt.Sprintf("r.txt %d %s", len(content), sha(content)))
			status, _ := fs.put(url, content[:4])
			Expect(status).To(Equal(http.StatusBadRequest))
			head, err := http.NewRequest(http.MethodHead, url, nil)
			Expect(err).NotTo(HaveOccurred())
			resp, err := fs.HTTP.Do(head)
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			Expect(resp.Header.Get("Upload-Offset")).To(Equal("4"))
			rest, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(content[4:]))
			Expect(err).NotTo(HaveOccurred())
			rest.Header.Set("Content-Range", fmt.Sprintf("bytes 4-9/%d", len(content)))
			status, _ = fs.do(rest)
			Expect(status).To(Equal(http.StatusCreated))
			link := alice.linkIn(sharedLine("", alice.Nick, "r.txt"))
			Expect(body(fs.get(link, ""))).To(Equal(string(content)))
		})

		It("refuses an upload link past its time, and one already used", SpecTimeout(specTimeout), func(ctx SpecContext) {
			var ahead atomic.Int64 // how far the file service's clock is ahead
			fs := startFileServer(nw, chat.Options{}, files.Config{UploadTTL: time.Minute,
				Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			url := alice.offer("late.txt 1")
			ahead.Store(int64(time.Minute + time.Second))
			status, _ := fs.put(url, []byte("x"))
			Expect(status).To(Equal(http.StatusGone))
		})

		It("refuses an upload the disk can't take, keeping nothing and posting nothing", SpecTimeout(specTimeout), func(ctx SpecContext) {
			full := func(name string, flag int, perm os.FileMode) (files.WriteFile, error) {
				f, err := os.OpenFile(name, flag, perm)
				if err != nil {
					return nil, err
				}
				return &fullDisk{File: f, room: 3}, nil
			}
			fs := startFileServer(nw, chat.Options{}, files.Config{OpenFile: full})
			cs := connectAll(fs.runningServer, nw, 2)
			alice, bob := cs[0], cs[1]
			status, _ := fs.put(alice.offer("big.txt 10"), []byte("0123456789"))
			Expect(status).To(Equal(http.StatusInsufficientStorage))
			Expect(fs.tempFiles()).To(BeEmpty())
			alice.Send("after the disk filled\n")
			bob.ExpectLines(alice.Says("after the disk filled"))
		})

		It("ends an upload that stalls, keeping what came for it to be resumed, and the chat goes on meanwhile", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{StallTimeout: 200 * time.Millisecond})
			cs := connectAll(fs.runningServer, nw, 2)
			alice, bob := cs[0], cs[1]
			content := []byte("0123456789")
			url := alice.offer(fmt.Sprintf("slow.txt %d", len(content)))
			pr, pw := io.Pipe()
			DeferCleanup(pw.Close)
			req, err := http.NewRequest(http.MethodPut, url, pr)
			Expect(err).NotTo(HaveOccurred())
			req.ContentLength = int64(len(content))
			answered := make(chan int, 1)
			go func() {
				defer GinkgoRecover()
				resp, err := fs.HTTP.Do(req)
				if err != nil {
					answered <- 0
					return
				}
				resp.Body.Close()
				answered <- resp.StatusCode
			}()
			_, err = pw.Write(content[:4])
			Expect(err).NotTo(HaveOccurred())
			alice.Send("while it stalls\n")
			bob.ExpectLines(alice.Says("while it stalls"))
			Eventually(answered).Should(Receive(Equal(http.StatusRequestTimeout)))
			pw.Close()

			rest, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(content[4:]))
			Expect(err).NotTo(HaveOccurred())
			rest.Header.Set("Content-Range", fmt.Sprintf("bytes 4-9/%d", len(content)))
			status, _ := fs.do(rest)
			Expect(status).To(Equal(http.StatusCreated))
			Expect(body(fs.get(bob.linkIn(sharedLine("", alice.Nick, "slow.txt")), ""))).To(Equal(string(content)))
		})

		It("caps the uploads in progress from one address", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{MaxUploadsPerIP: 1})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			first, second := alice.offer("a.txt 10"), alice.offer("b.txt 10")
			pr, pw := io.Pipe()
			req, err := http.NewRequest(http.MethodPut, first, pr)
			Expect(err).NotTo(HaveOccurred())
			req.ContentLength = 10
			done := make(chan struct{})
			go func() {
				defer GinkgoRecover()
				defer close(done)
				if resp, err := fs.HTTP.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			_, err = pw.Write([]byte("01234"))
			Expect(err).NotTo(HaveOccurred())
			// The first is in progress once the server has some of it.
			Eventually(func() string {
				head, _ := http.NewRequest(http.MethodHead, first, nil)
				resp, err := fs.HTTP.Do(head)
				if err != nil {
					return ""
				}
				resp.Body.Close()
				return resp.Header.Get("Upload-Offset")
			}).Should(Equal("5"))
			req2, err := http.NewRequest(http.MethodPut, second, bytes.NewReader([]byte("0123456789")))
			Expect(err).NotTo(HaveOccurred())
			resp, err := fs.HTTP.Do(req2)
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusTooManyRequests))
			Expect(resp.Header.Get("Retry-After")).NotTo(BeEmpty())
			pw.Write([]byte("56789"))
			pw.Close()
			Eventually(done).Should(BeClosed())
		})

		It("tells a sender past its upload quota when enough of it frees", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{QuotaBytes: 10})
			alice := connectAll(fs.runningServer, nw, 1)[0]
			alice.offer("a.txt 8")
			alice.Send("/upload b.txt 8\n")
			l, err := alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			Expect(l).To(MatchRegexp(`^\*\*\* error: upload quota used up: enough of it frees at \S+ \(in \S+\)$`))
		})

		It("answers a download link no one was given with 404", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			resp := fs.get(fs.BaseURL+"/f/not-a-token", "")
			Expect(resp.StatusCode).To(Equal(http.StatusNotFound))
		})

		It("refuses uploads from a server that shares no files, and from guests where only registered users may upload", SpecTimeout(specTimeout), func(ctx SpecContext) {
			plain := startServer(nw, chat.Options{})
			c := connectAll(plain, nw, 1)[0]
			c.Send("/upload a.txt 1\n")
			c.ExpectLines("*** error: file sharing is off on this server")
			fs := startFileServer(nw, chat.Options{UploadsBy: chat.UploadsRegistered}, files.Config{})
			guest := connectAll(fs.runningServer, nw, 1)[0]
			guest.Send("/upload a.txt 1\n")
			guest.ExpectLines("*** error: only registered users may upload files here; /register or /login first")
		})

		It("gives a private file to no one if its recipient left, though someone else took the name", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			cs := connectAll(fs.runningServer, nw, 3)
			alice, bob, mallory := cs[0], cs[1], cs[2]
			bob.Send("/nick bob\n")
			bob.skipTo("*** " + bob.Nick + " is now bob")
			bob.Nick = "bob"
			url := alice.offer("@bob secret.txt 6")
			name := bob.Nick
			bob.Send("/quit\n")
			bob.ExpectDisconnected()
			mallory.skipTo("*** " + name + " quit")
			mallory.Send("/nick " + name + "\n")
			mallory.skipTo("*** " + mallory.Nick + " is now " + name)
			status, answer := fs.put(url, []byte("psst!!"))
			Expect(status).To(Equal(http.StatusConflict))
			Expect(answer).To(ContainSubstring(name + " is no longer connected"))
			mallory.Send("/who\n")
			l, err := mallory.NextLine()
			Expect(err).NotTo(HaveOccurred())
			Expect(l).To(HavePrefix("*** in #lobby"), "mallory got nothing before her answer")
		})

		It("posts nothing once the uploader has left, and says why", SpecTimeout(specTimeout), func(ctx SpecContext) {
			fs := startFileServer(nw, chat.Options{}, files.Config{})
			cs := connectAll(fs.runningServer, nw, 2)
			alice, bob := cs[0], cs[1]
			url := alice.offer("a.txt 1")
			alice.Send("/quit\n")
			alice.ExpectDisconnected()
			bob.skipTo("*** " + alice.Nick + " quit")
			status, answer := fs.put(url, []byte("x"))
			Expect(status).To(Equal(http.StatusConflict))
			Expect(answer).To(ContainSubstring("the chat connection that asked for this upload has closed"))
		})
	})
}, transports)
