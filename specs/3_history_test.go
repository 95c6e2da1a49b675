package specs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

var _ = DescribeTableSubtree("Message history", func(tr Transport) {
	var (
		nw  Network
		srv *runningServer
	)

	// serve starts a server whose history is the log store on disk.
	serve := func(opts chat.Options) {
		GinkgoHelper()
		nw = tr.New(false)
		if opts.History == nil {
			opts.History = openStore(GinkgoT().TempDir(), history.Retention{})
		}
		srv = startServer(nw, opts)
	}
	// say sends n numbered lines from c and waits for their echo.
	say := func(c *testClient, n int) {
		GinkgoHelper()
		for i := 1; i <= n; i++ {
			c.Send(fmt.Sprintf("line %d\n", i))
		}
		for i := 1; i <= n; i++ {
			c.ExpectLines(c.Says(fmt.Sprintf("line %d", i)))
		}
	}

	It("numbers every room's messages from 1, with the server's time, in the JSON format", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{})
		cs := connectAll(srv, nw, 2)
		alice, bob := cs[0], cs[1]
		alice.SwitchToJSON()
		say(bob, 3)
		for i := 1; i <= 3; i++ {
			ev := alice.ExpectEvent(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", From: bob.Nick, Text: fmt.Sprintf("line %d", i)})
			Expect(ev.Seq).To(BeEquivalentTo(i))
			Expect(ev.Time).To(MatchRegexp(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`))
		}
		alice.Command(map[string]any{"type": "join", "room": "games"})
		alice.ExpectEvent(protocol.Event{Type: protocol.TypeCurrent, Room: "games"})
		alice.Command(map[string]any{"type": "say", "text": "first in games"})
		ev := alice.ExpectEvent(protocol.Event{Type: protocol.TypeMessage, Room: "games", From: alice.Nick, Text: "first in games"})
		Expect(ev.Seq).To(BeEquivalentTo(1), "numbers are per room")
	})

	It("replays the latest messages to a client that joins, marked as history, then live ones", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{HistoryOnJoin: 5})
		alice := connectAll(srv, nw, 1)[0]
		say(alice, 8)

		bob := connectAll(srv, nw, 1)[0]
		for i := 4; i <= 8; i++ {
			bob.ExpectExactly(fmt.Sprintf("[history %d] %s: line %d", i, alice.Nick, i))
		}
		alice.Send("live now\n")
		bob.ExpectLines(alice.Says("live now"))
	})

	It("leaves no gap and no duplicate between the replay and live messages, even while the room is busy", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{HistoryOnJoin: 1000})
		cs := connectAll(srv, nw, 2)
		alice, bob := cs[0], cs[1]
		bob.SwitchToJSON()
		alice.Send("/join busy\n")
		alice.ExpectLines("*** you are now talking in #busy")
		// alice talks in bursts, each sent at once and then waited for, so
		// that a batch the server stores and delivers together is small.
		const burst = 5
		talk := func(from int) {
			GinkgoHelper()
			for i := from; i < from+burst; i++ {
				alice.Send(fmt.Sprintf("busy %d\n", i))
			}
			for i := from; i < from+burst; i++ {
				alice.ExpectLines(alice.Says(fmt.Sprintf("busy %d", i)))
			}
		}
		// Some history before bob joins, so there is a replay.
		const before = 2 * burst
		for i := 1; i <= before; i += burst {
			talk(i)
		}
		// alice keeps talking until bob has seen a live message, so bob's
		// join lands while the room is busy and bob crosses from the replay
		// to live messages; she stops at line 1000 in any case.
		const most = 1000
		live := make(chan struct{})
		goLive := sync.OnceFunc(func() { close(live) })
		sent := make(chan int, 1) // the number of alice's last line
		var wg sync.WaitGroup
		DeferCleanup(func() { goLive(); wg.Wait() }) // alice stops, even if the spec fails
		wg.Go(func() {
			defer GinkgoRecover()
			i := before
			defer func() { sent <- i }()
			for i < most {
				select {
				case <-live:
					return
				default:
				}
				talk(i + 1)
				i += burst
			}
		})
		bob.Command(map[string]any{"type": "join", "room": "busy"})
		// bob sees the latest messages as history and the rest live: every
		// number from the first replayed on, exactly once, in order.
		var (
			seqs     []uint64
			replayed []bool
		)
		last := uint64(0) // the number of alice's last line, once known
		for last == 0 || len(seqs) == 0 || seqs[len(seqs)-1] < last {
			ev := bob.Event(protocol.TypeJoin, protocol.TypeQuit, protocol.TypeCurrent)
			Expect(ev.Type).To(Equal(protocol.TypeMessage), "%+v", ev)
			Expect(ev.Text).To(Equal(fmt.Sprintf("busy %d", ev.Seq)), "message %d", ev.Seq)
			seqs = append(seqs, ev.Seq)
			replayed = append(replayed, ev.History)
			if !ev.History && last == 0 {
				goLive()
				last = uint64(<-sent)
			}
			if ev.Seq == most && last == 0 {
				break // alice is done and bob saw no live message
			}
		}
		wg.Wait()
		for i, s := range seqs {
			Expect(s).To(Equal(seqs[0]+uint64(i)), "after message %d", seqs[0]+uint64(i)-1)
		}
		By("crossing from the replay to live messages once, while alice was still talking")
		boundary := slices.Index(replayed, false)
		Expect(boundary).To(BeNumerically(">", 0), "bob got no replay, or no live message: %d of %d replayed",
			len(slices.DeleteFunc(slices.Clone(replayed), func(h bool) bool { return !h })), len(replayed))
		Expect(replayed[:boundary]).To(HaveEach(true), "the replay comes first")
		Expect(replayed[boundary:]).To(HaveEach(false), "then only live messages")
		Expect(seqs[boundary-1]).To(BeNumerically(">=", before), "the replay reaches the messages sent before bob joined")
		Expect(seqs[len(seqs)-1]).To(Equal(last), "every one of alice's lines reached bob")
	})

	It("pages backwards through the current room with /history N before SEQ", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{HistoryOnJoin: -1})
		alice := connectAll(srv, nw, 1)[0]
		say(alice, 25)
		page := func(from, to int) []string {
			var lines []string
			for i := from; i <= to; i++ {
				lines = append(lines, fmt.Sprintf("[history %d] %s: line %d", i, alice.Nick, i))
			}
			return lines
		}

		alice.Send("/history 10\n")
		alice.ExpectExactly(append(page(16, 25), "*** end of this page of #lobby history (10 messages); /history 10 before 16 for older ones")...)
		alice.Send("/history 10 before 16\n")
		alice.ExpectExactly(append(page(6, 15), "*** end of this page of #lobby history (10 messages); /history 10 before 6 for older ones")...)
		alice.Send("/history 10 before 6\n")
		alice.ExpectExactly(append(page(1, 5), "*** start of #lobby history reached (5 messages)")...)
	})

	It("answers /history in the JSON format with typed events and a closing event to page on from", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{HistoryOnJoin: -1})
		alice := connectAll(srv, nw, 1)[0]
		say(alice, 3)
		alice.SwitchToJSON()
		alice.Command(map[string]any{"type": "history", "limit": 2})
		for i := 2; i <= 3; i++ {
			ev := alice.ExpectEvent(protocol.Event{Type: protocol.TypeMessage, History: true, Room: "lobby", From: alice.Nick, Text: fmt.Sprintf("line %d", i)})
			Expect(ev.Seq).To(BeEquivalentTo(i))
		}
		alice.ExpectEvent(protocol.Event{Type: protocol.TypeHistory, Room: "lobby", Count: 2, More: true, Before: 2})
	})

	It("replays exactly the messages after the one a client names with /resume, and says the replay is complete", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{HistoryOnJoin: -1})
		alice := connectAll(srv, nw, 1)[0]
		say(alice, 10)
		bob := connectAll(srv, nw, 1)[0]
		bob.Send("/resume lobby 6\n")
		for i := 7; i <= 10; i++ {
			bob.ExpectExactly(fmt.Sprintf("[history %d] %s: line %d", i, alice.Nick, i))
		}
		bob.ExpectExactly("*** resumed #lobby after 6: 4 messages, complete")

		bob.Send("/resume lobby 10\n")
		bob.ExpectExactly("*** resumed #lobby after 10: 0 messages, complete")

		bob.SwitchToJSON()
		bob.Command(map[string]any{"type": "resume", "room": "lobby", "after": 9})
		bob.ExpectEvent(protocol.Event{Type: protocol.TypeMessage, History: true, Room: "lobby", From: alice.Nick, Text: "line 10"})
		bob.ExpectEvent(protocol.Event{Type: protocol.TypeResumed, Room: "lobby", After: 9, Count: 1})
	})

	It("says when retention has removed some of the messages a client asks to resume from", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{HistoryOnJoin: -1, History: openStore(GinkgoT().TempDir(), history.Retention{MaxMessages: 4})})
		alice := connectAll(srv, nw, 1)[0]
		say(alice, 10)
		alice.Send("/resume lobby 2\n")
		for i := 7; i <= 10; i++ {
			alice.ExpectExactly(fmt.Sprintf("[history %d] %s: line %d", i, alice.Nick, i))
		}
		alice.ExpectExactly("*** resumed #lobby after 2: 4 messages, older messages were removed by retention")
	})

	It("removes messages past the age limit, a few at a time between commits, and keeps the rest", SpecTimeout(specTimeout), func(ctx SpecContext) {
		store := history.NewMemory(history.Retention{MaxAge: time.Hour})
		old := make([]history.Message, 2500)
		for i := range old {
			old[i] = history.Message{Room: "lobby", Time: time.Now().Add(-2 * time.Hour), Kind: protocol.TypeMessage, From: "ghost", Text: "long ago"}
		}
		Expect(store.Append(old)).To(Succeed())
		serve(chat.Options{History: store, HistoryOnJoin: -1, TrimInterval: time.Nanosecond})
		alice := connectAll(srv, nw, 1)[0]
		say(alice, 1) // a commit, after which the loop trims
		Eventually(func() []uint64 {
			msgs, err := store.After("lobby", 0, 5000)
			Expect(err).NotTo(HaveOccurred())
			var seqs []uint64
			for _, m := range msgs {
				seqs = append(seqs, m.Seq)
			}
			return seqs
		}).Should(Equal([]uint64{2501}))
		alice.Send("/resume lobby 0\n")
		alice.ExpectExactly(fmt.Sprintf("[history 2501] %s: line 1", alice.Nick),
			"*** resumed #lobby after 0: 1 messages, older messages were removed by retention")
	})

	It("refuses a message it could not store, tells the sender, and delivers it to no one", SpecTimeout(specTimeout), func(ctx SpecContext) {
		store := &failingStore{Store: history.NewMemory(history.Retention{})}
		serve(chat.Options{History: store})
		cs := connectAll(srv, nw, 2)
		alice, bob := cs[0], cs[1]
		store.failing.Store(true)
		alice.Send("lost to a full disk\n")
		alice.ExpectLines("*** error: your message could not be stored, so it was not sent: no space left on device")
		Eventually(srv.Log).Should(gbytesSay(`ERROR Storing messages failed; refusing them count=1 err="no space left on device"`))

		store.failing.Store(false)
		alice.Send("disk cleaned up\n")
		bob.ExpectLines(alice.Says("disk cleaned up")) // and not the refused line
	})

	// chatThenStop runs a server on the log in dir, has a client say n
	// lines there, and stops it and closes the log. It returns the client.
	chatThenStop := func(dir string, n int) *testClient {
		GinkgoHelper()
		nw = tr.New(false)
		store, err := history.OpenLog(dir, history.Retention{})
		Expect(err).NotTo(HaveOccurred())
		first := startServer(nw, chat.Options{History: store})
		alice := connectAll(first, nw, 1)[0]
		say(alice, n)
		Expect(first.Stop()).To(Succeed())
		Expect(store.Close()).To(Succeed())
		return alice
	}

	It("starts after a crash tore the log's last record: cuts it off, says so, and numbers on without a gap", SpecTimeout(specTimeout), func(ctx SpecContext) {
		dir := GinkgoT().TempDir()
		alice := chatThenStop(dir, 2)

		// What a crash in the middle of writing a third message leaves:
		// its record's start, never synced, so never delivered.
		segment := filepath.Join(dir, history.LogDir, "00000001.seg")
		data, err := os.ReadFile(segment)
		Expect(err).NotTo(HaveOccurred())
		end := len(bytes.TrimRight(data, "\x00"))
		f, err := os.OpenFile(segment, os.O_WRONLY, 0)
		Expect(err).NotTo(HaveOccurred())
		torn := []byte("\x00\x00\x00\x60\x12\x34\x56\x78{\"room\":\"lobby\",\"seq\":3,\"te")
		_, err = f.WriteAt(torn, int64(end))
		Expect(err).NotTo(HaveOccurred())
		Expect(f.Close()).To(Succeed())

		store, err := history.OpenLog(dir, history.Retention{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(store.Close)
		Expect(store.Repairs()).To(ConsistOf(ContainSubstring(fmt.Sprintf("cut off %d bytes of an incomplete record at the end of %s", len(torn), segment))))
		second := startServer(nw, chat.Options{History: store})
		bob := connectAll(second, nw, 1)[0]
		for i := 1; i <= 2; i++ {
			bob.ExpectExactly(fmt.Sprintf("[history %d] %s: line %d", i, alice.Nick, i))
		}
		bob.SwitchToJSON()
		bob.Command(map[string]any{"type": "say", "text": "after the crash"})
		ev := bob.ExpectEvent(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", From: bob.Nick, Text: "after the crash"})
		Expect(ev.Seq).To(BeEquivalentTo(3))
	})

	It("keeps the history and the numbering across a restart on the same data directory", SpecTimeout(specTimeout), func(ctx SpecContext) {
		dir := GinkgoT().TempDir()
		alice := chatThenStop(dir, 3)

		store, err := history.OpenLog(dir, history.Retention{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(store.Close)
		second := startServer(nw, chat.Options{History: store})
		bob := connectAll(second, nw, 1)[0]
		for i := 1; i <= 3; i++ {
			bob.ExpectExactly(fmt.Sprintf("[history %d] %s: line %d", i, alice.Nick, i))
		}
		bob.SwitchToJSON()
		bob.Command(map[string]any{"type": "say", "text": "after the restart"})
		ev := bob.ExpectEvent(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", From: bob.Nick, Text: "after the restart"})
		Expect(ev.Seq).To(BeEquivalentTo(4))
	})

	It("refuses /history and /resume for a room the client is not in", SpecTimeout(specTimeout), func(ctx SpecContext) {
		serve(chat.Options{})
		alice := connectAll(srv, nw, 1)[0]
		alice.Send("/resume games 0\n")
		alice.ExpectLines("*** error: you are not in #games")
		alice.Send("/history 5 after 3\n")
		alice.ExpectLines("*** error: usage: /history [N] [before SEQ]")
	})
}, transports)
