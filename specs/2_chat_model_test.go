package specs_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/protocol"
)

var _ = DescribeTableSubtree("The chat model", func(tr Transport) {
	var (
		nw  Network
		srv *runningServer
	)

	// chatters connects clients and renames them, in order, to names; every
	// one of them has seen every rename by the time it returns.
	chatters := func(opts chat.Options, names ...string) []*testClient {
		GinkgoHelper()
		nw = tr.New(false)
		srv = startServer(nw, opts)
		cs := connectAll(srv, nw, len(names))
		for i, c := range cs {
			c.Send("/nick " + names[i] + "\n")
			c.Nick = names[i]
			// Everyone reads up to this client's first line under its new
			// name, so the renames are behind every spec's first assertion.
			c.Send("ready\n")
			for _, reader := range cs {
				reader.ExpectLines(c.Says("ready"))
			}
		}
		return cs
	}

	// join makes c join room and waits until it talks there.
	join := func(c *testClient, room string) {
		GinkgoHelper()
		c.Send("/join " + room + "\n")
		c.ExpectLines("*** you are now talking in #" + room)
	}

	Context("when a client connects", func() {
		BeforeEach(func() {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{})
		})

		It("gives it a guest name in a welcome line that states the limits and the commands", SpecTimeout(specTimeout), func(ctx SpecContext) {
			conn, err := nw.DialContext(ctx, "tcp", srv.Addr)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _ = conn.Close() })
			c := &testClient{conn: conn, lines: newLineReader(conn)}
			Expect(c.ReadLine()).To(Equal("*** Welcome, guest-1! You are in #lobby. Type a line to chat; " +
				"commands: /nick /register /login /join /part /rooms /who /topic /msg /me /upload /quit /help /history /resume /format. " +
				"Limits: lines of 4096 bytes, nicknames of 24 characters, room names of 32 characters, " +
				"10 rooms per client, 1000 members per room."))
		})

		It("announces the newcomer to the lobby, and its departure", SpecTimeout(specTimeout), func(ctx SpecContext) {
			first := connectAll(srv, nw, 1)[0]
			second := connectAll(srv, nw, 1)[0]
			first.ExpectExactly("*** " + second.Nick + " joined #lobby")
			Expect(second.conn.Close()).To(Succeed())
			first.ExpectExactly("*** " + second.Nick + " quit (connection closed)")
		})
	})

	Context("with nicknames", func() {
		It("renames a client with /nick and announces it to everyone who shares a room with it", SpecTimeout(specTimeout), func(ctx SpecContext) {
			nw = tr.New(false)
			srv = startServer(nw, chat.Options{})
			cs := connectAll(srv, nw, 2)
			a, b := cs[0], cs[1]
			a.ExpectExactly("*** " + b.Nick + " joined #lobby")
			old := a.Nick
			a.Send("/nick alice\n")
			a.ExpectExactly("*** " + old + " is now alice")
			b.ExpectExactly("*** " + old + " is now alice")
			a.Nick = "alice"
			a.Send("hi\n")
			a.ExpectExactly("alice: hi") // the rename reached a once, not once per shared room
			b.ExpectLines("alice: hi")
		})

		It("refuses a nickname someone has, whatever its case, and says so", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters(chat.Options{}, "alice", "bob")
			cs[1].Send("/nick ALICE\n")
			cs[1].ExpectLines("*** error: the nickname alice is taken")
		})

		It("lets a client change the case of its own nickname", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters(chat.Options{}, "alice")
			cs[0].Send("/nick Alice\n")
			cs[0].ExpectExactly("*** alice is now Alice")
		})

		DescribeTable("refuses a malformed or reserved nickname with the reason",
			func(ctx SpecContext, name, reason string) {
				cs := chatters(chat.Options{}, "alice")
				cs[0].Send("/nick " + name + "\n")
				cs[0].ExpectLines(`*** error: can't use "` + name + `" as a nickname: ` + reason)
			},
			Entry("too long", SpecTimeout(specTimeout), strings.Repeat("a", 25), "bad length: 1 to 24 characters"),
			Entry("a colon, which would fake attribution", SpecTimeout(specTimeout), "bob:", "bad characters: only letters, digits, - and _"),
			Entry("brackets, which would fake a room or a private message", SpecTimeout(specTimeout), "[pm]", "bad characters: only letters, digits, - and _"),
			Entry("a leading digit", SpecTimeout(specTimeout), "2pac", "bad characters: a nickname starts with a letter"),
			Entry("a guest name", SpecTimeout(specTimeout), "guest-99", `reserved: "guest-N" names are given to guests by the server`),
			Entry("a system name", SpecTimeout(specTimeout), "Server", `reserved: "Server" looks like the reserved name "server"`),
			Entry("a look-alike of a system name", SpecTimeout(specTimeout), "adm1n", `reserved: "adm1n" looks like the reserved name "admin"`),
		)
	})

	Context("when a client tries to pass for someone else", func() {
		It("attributes every line to its sender, so text that looks like another sender or a notice stays the sender's", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters(chat.Options{}, "mallory", "bob")
			mallory, bob := cs[0], cs[1]
			forgeries := []string{
				"bob: I owe mallory 100 euros",
				"*** server shutting down",
				"*** error: your password please",
				"[pm] bob: psst",
				"[#secret] bob: meet me there",
				"* bob agrees",
			}
			for _, f := range forgeries {
				mallory.Send(f + "\n")
			}
			for _, f := range forgeries {
				bob.ExpectLines("mallory: " + f)
			}
		})

		It("refuses JSON text that would smuggle in a line break or an escape sequence", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters(chat.Options{}, "mallory", "bob")
			mallory, bob := cs[0], cs[1]
			mallory.SwitchToJSON()
			mallory.Send(`{"type":"say","text":"hi\n*** server shutting down: send your password to mallory\u001b[31m"}` + "\n")
			mallory.ExpectEvent(protocol.Event{Type: protocol.TypeError, Code: "bad_json",
				Text: "not a valid JSON command: control characters (line breaks, escapes) are not allowed"})
			mallory.Command(map[string]any{"type": "say", "text": "an honest line"})
			bob.ExpectLines("mallory: an honest line") // and nothing before it
		})

		It("ignores a from field in a JSON command: the server sets the sender", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters(chat.Options{}, "mallory", "bob")
			mallory, bob := cs[0], cs[1]
			mallory.SwitchToJSON()
			mallory.Command(map[string]any{"type": "say", "from": "bob", "text": "trust me"})
			bob.ExpectLines("mallory: trust me")
		})
	})

	Context("with rooms", func() {
		var alice, bob, carol *testClient

		BeforeEach(func() {
			cs := chatters(chat.Options{}, "alice", "bob", "carol")
			alice, bob, carol = cs[0], cs[1], cs[2]
		})

		It("starts everyone in #lobby", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/who\n")
			alice.ExpectLines("*** in #lobby (3): alice, bob, carol")
		})

		It("creates a room on /join, makes it the current room, and announces the join to its members", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/join #games\n")
			alice.ExpectExactly("*** alice joined #games", "*** you are now talking in #games")
			bob.Send("/join games\n")
			bob.ExpectExactly("*** bob joined #games", "*** you are now talking in #games")
			alice.ExpectExactly("*** bob joined #games")
		})

		It("sends plain lines to the current room only, and marks lines from the reader's other rooms with the room", SpecTimeout(specTimeout), func(ctx SpecContext) {
			join(alice, "games")
			join(bob, "games")

			alice.Send("gg\n")
			alice.ExpectLines("alice: gg")
			bob.ExpectLines("alice: gg")
			carol.Send("anyone in the lobby?\n")
			alice.ExpectLines("[#lobby] carol: anyone in the lobby?")
			bob.ExpectLines("[#lobby] carol: anyone in the lobby?")
			carol.ExpectLines("carol: anyone in the lobby?") // not "alice: gg": carol is not in #games
		})

		It("switches the current room when a client joins a room it is already in", SpecTimeout(specTimeout), func(ctx SpecContext) {
			join(alice, "games")
			alice.Send("/join lobby\n")
			alice.ExpectExactly("*** you are now talking in #lobby")
			alice.Send("back\n")
			carol.ExpectLines("alice: back")
		})

		It("leaves a room on /part, announces it with the reason, and falls back to the room joined before", SpecTimeout(specTimeout), func(ctx SpecContext) {
			join(alice, "games")
			join(bob, "games")
			alice.ExpectExactly("*** bob joined #games")

			bob.Send("/part games dinner time\n")
			alice.ExpectExactly("*** bob left #games (dinner time)")
			bob.ExpectExactly("*** bob left #games (dinner time)", "*** you are now talking in #lobby")
		})

		It("lists rooms with member counts, and removes an empty room but never the lobby", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/join games\n")
			alice.Send("/rooms\n")
			alice.ExpectExactly("*** alice joined #games", "*** you are now talking in #games", "*** rooms: #games (1), #lobby (3)")
			alice.Send("/part\n")
			alice.Send("/rooms\n")
			alice.ExpectExactly("*** alice left #games", "*** you are now talking in #lobby", "*** rooms: #lobby (3)")
		})

		It("lists the members of a room with /who", SpecTimeout(specTimeout), func(ctx SpecContext) {
			join(bob, "games")
			join(carol, "games")
			alice.Send("/who #games\n")
			alice.ExpectLines("*** in #games (2): bob, carol")
		})

		It("sets a room's topic, shows it on /topic, and tells whoever joins later", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/topic Go vs Rust, round 12\n")
			bob.ExpectLines("*** alice set the topic of #lobby: Go vs Rust, round 12")
			bob.Send("/topic\n")
			bob.ExpectLines("*** topic of #lobby: Go vs Rust, round 12")

			alice.Send("/join games\n")
			alice.ExpectExactly("*** alice set the topic of #lobby: Go vs Rust, round 12", "*** alice joined #games", "*** you are now talking in #games")
			alice.Send("/topic no spoilers\n")
			alice.ExpectExactly("*** alice set the topic of #games: no spoilers")
			bob.Send("/join games\n")
			bob.ExpectExactly("*** bob joined #games", "*** you are now talking in #games", "*** topic of #games: no spoilers")
		})

		It("announces a quit, with its reason, once to each person who shared a room with the quitter", SpecTimeout(specTimeout), func(ctx SpecContext) {
			join(alice, "games")
			join(bob, "games")
			alice.Send("/quit off to bed\n")
			alice.ExpectDisconnected()
			bob.ExpectExactly("*** alice quit (off to bed)")
			bob.Send("/who games\n")
			bob.ExpectExactly("*** in #games (1): bob")
			carol.Send("/who\n")
			carol.ExpectExactly("*** alice quit (off to bed)", "*** in #lobby (2): bob, carol")
		})

		DescribeTable("answers a command it can't carry out with an error saying why",
			func(ctx SpecContext, command, want string) {
				alice.Send(command + "\n")
				alice.ExpectLines(want)
			},
			Entry("an unknown command", SpecTimeout(specTimeout), "/dance", "*** error: unknown command /dance; /help lists the commands"),
			Entry("missing arguments", SpecTimeout(specTimeout), "/msg bob", "*** error: usage: /msg NICK TEXT"),
			Entry("too many arguments", SpecTimeout(specTimeout), "/join a b", "*** error: usage: /join ROOM"),
			Entry("an action without words", SpecTimeout(specTimeout), "/me", "*** error: usage: /me ACTION"),
			Entry("a format that does not exist", SpecTimeout(specTimeout), "/format xml", "*** error: usage: /format text|json"),
			Entry("a private message to no one", SpecTimeout(specTimeout), "/msg nobody-here hi", "*** error: no one is called nobody-here"),
			Entry("leaving a room one is not in", SpecTimeout(specTimeout), "/part games", "*** error: you are not in #games"),
			Entry("asking who is in a room that does not exist", SpecTimeout(specTimeout), "/who #nowhere", "*** error: there is no room #nowhere"),
			Entry("a malformed room name", SpecTimeout(specTimeout), "/join my:room", `*** error: can't use "my:room" as a room name: bad characters: only letters, digits, - and _`),
		)

		It("tells a client in no room to join one before it talks", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/part\n")
			alice.ExpectExactly("*** alice left #lobby", "*** you are in no room now; /join one to talk")
			alice.Send("hello?\n")
			alice.ExpectLines("*** error: you are in no room; /join one")
		})
	})

	Context("with limits", func() {
		It("refuses to join more rooms than a client may be in", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice := chatters(chat.Options{MaxRoomsPerClient: 2}, "alice")[0]
			alice.Send("/join one\n/join two\n")
			alice.ExpectLines("*** you are now talking in #one", "*** error: you are in 2 rooms, the most allowed; /part one first")
		})

		It("refuses to join a full room", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters(chat.Options{MaxRoomMembers: 1}, "alice", "bob")
			cs[0].Send("/join tiny\n")
			cs[0].ExpectLines("*** you are now talking in #tiny")
			cs[1].Send("/join tiny\n")
			cs[1].ExpectLines("*** error: #tiny is full (1 members)")
		})

		It("refuses to create more rooms than the server allows", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice := chatters(chat.Options{MaxRooms: 2}, "alice")[0]
			alice.Send("/join one\n/join two\n")
			alice.ExpectLines("*** you are now talking in #one", "*** error: the server has 2 rooms, the most allowed; join an existing one")
		})

		It("stops announcing joins, parts and quits in a room past the announce limit, and still lists everyone with /who", SpecTimeout(specTimeout), func(ctx SpecContext) {
			cs := chatters(chat.Options{AnnounceLimit: 2}, "alice", "bob", "carol")
			alice, bob, carol := cs[0], cs[1], cs[2]
			join(alice, "small")
			join(bob, "small")
			alice.ExpectExactly("*** bob joined #small") // two members: announced

			// The lobby has three members, past the limit of two: a newcomer
			// arrives and leaves, and carol leaves, unannounced.
			Expect(connectAll(srv, nw, 1)[0].conn.Close()).To(Succeed())
			Eventually(srv.Clients).Should(Equal(3))
			carol.Send("/part lobby brb\n")
			carol.ExpectExactly("*** carol left #lobby (brb)", "*** you are in no room now; /join one to talk")
			carol.Send("/who lobby\n")
			carol.ExpectExactly("*** in #lobby (2): alice, bob")

			// None of that reached the lobby's members; the next line does.
			alice.Send("/join lobby\n")
			alice.ExpectExactly("*** you are now talking in #lobby")
			alice.Send("still here\n")
			alice.ExpectExactly("alice: still here")
			bob.ExpectExactly("[#lobby] alice: still here")
		})

		It("refuses a topic over the length limit", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice := chatters(chat.Options{MaxTopicBytes: 10}, "alice")[0]
			alice.Send("/topic this is far too long\n")
			alice.ExpectLines("*** error: a topic is at most 10 bytes")
		})
	})

	Context("with private messages and other commands", func() {
		var alice, bob, carol *testClient

		BeforeEach(func() {
			cs := chatters(chat.Options{}, "alice", "bob", "carol")
			alice, bob, carol = cs[0], cs[1], cs[2]
		})

		It("delivers /msg to its recipient only, and echoes it to the sender", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/msg BOB the cake is in the fridge\n")
			bob.ExpectLines("[pm] alice: the cake is in the fridge")
			alice.ExpectLines("[pm to bob] alice: the cake is in the fridge")
			alice.Send("public again\n")
			carol.ExpectLines("alice: public again")
		})

		It("shows /me as an action", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/me waves\n")
			bob.ExpectLines("* alice waves")
		})

		It("sends a line that starts with // as a chat line starting with /", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("///etc/hosts is where it lives\n")
			bob.ExpectLines("alice: //etc/hosts is where it lives")
		})

		It("lists every command on a line of its own with /help", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/help\n")
			var want []string
			for _, l := range protocol.HelpLines() {
				want = append(want, "*** "+l)
			}
			Expect(want).To(HaveLen(17))
			alice.ExpectLines(want...)
		})
	})

	Context("in the JSON format", func() {
		var alice, bob *testClient

		BeforeEach(func() {
			cs := chatters(chat.Options{}, "alice", "bob")
			alice, bob = cs[0], cs[1]
			alice.SwitchToJSON()
		})

		It("sends every event as one JSON object with a type, starting with a welcome that carries the limits", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/format json\n")
			alice.ExpectEvent(protocol.Event{Type: protocol.TypeFormat, Format: "json"})
			welcome := alice.Event(presenceEvents...)
			Expect(welcome.Time).To(MatchRegexp(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`))
			Expect(welcome.HistoryID).NotTo(BeEmpty(), "the welcome names the history its numbers belong to")
			welcome.Time, welcome.HistoryID = "", ""
			Expect(welcome).To(Equal(protocol.Event{
				Type: protocol.TypeWelcome, Nick: "alice", Room: "lobby",
				Commands: protocol.CommandNames(),
				Limits: &protocol.Limits{LineBytes: 4096, NickLength: 24, RoomNameLength: 32, TopicBytes: 300,
					RoomsPerClient: 10, RoomMembers: 1000, Rooms: 1000},
			}))
		})

		It("shares rooms with text clients: each sees the other's messages in its own format", SpecTimeout(specTimeout), func(ctx SpecContext) {
			bob.Send("hello from text\n")
			ev := alice.ExpectEvent(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", From: "bob", Text: "hello from text"})
			Expect(ev.Time).NotTo(BeEmpty())

			alice.Command(map[string]any{"type": "say", "text": "hello from JSON"})
			bob.ExpectLines("bob: hello from text", "alice: hello from JSON")
			alice.ExpectEvent(protocol.Event{Type: protocol.TypeMessage, Room: "lobby", From: "alice", Text: "hello from JSON"})
		})

		It("takes commands as JSON objects and answers with typed events", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Command(map[string]any{"type": "join", "room": "games"})
			alice.ExpectEvent(protocol.Event{Type: protocol.TypeCurrent, Room: "games"})
			alice.Command(map[string]any{"type": "who", "room": "lobby"})
			alice.ExpectEvent(protocol.Event{Type: protocol.TypeWho, Room: "lobby", Count: 2, Members: []string{"alice", "bob"}})
			alice.Command(map[string]any{"type": "rooms"})
			alice.ExpectEvent(protocol.Event{Type: protocol.TypeRooms, Rooms: []protocol.RoomInfo{{Name: "games", Members: 1}, {Name: "lobby", Members: 2}}})
			alice.Command(map[string]any{"type": "msg", "to": "bob", "text": "psst"})
			alice.ExpectEvent(protocol.Event{Type: protocol.TypePrivate, From: "alice", To: "bob", Text: "psst"})
			bob.ExpectLines("[pm] alice: psst")
			alice.Command(map[string]any{"type": "say", "room": "lobby", "text": "from afar"})
			bob.ExpectLines("alice: from afar")
		})

		It("still takes text commands and chat lines", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Send("/me nods\n")
			alice.ExpectEvent(protocol.Event{Type: protocol.TypeAction, Room: "lobby", From: "alice", Text: "nods"})
			bob.ExpectLines("* alice nods")
		})

		DescribeTable("answers a bad command with a typed error and keeps the connection",
			func(ctx SpecContext, line string, want protocol.Event) {
				alice.Send(line + "\n")
				alice.ExpectEvent(want)
				alice.Command(map[string]any{"type": "say", "text": "still here"})
				bob.ExpectLines("alice: still here")
			},
			Entry("malformed JSON", SpecTimeout(specTimeout), `{"type":"say",`,
				protocol.Event{Type: protocol.TypeError, Code: "bad_json", Text: "not a valid JSON command: unexpected EOF"}),
			Entry("an unknown type", SpecTimeout(specTimeout), `{"type":"fly"}`,
				protocol.Event{Type: protocol.TypeError, Code: "unknown_command", Text: "unknown command /fly; /help lists the commands"}),
			Entry("a missing argument", SpecTimeout(specTimeout), `{"type":"msg","to":"bob"}`,
				protocol.Event{Type: protocol.TypeError, Code: "usage", Text: "usage: /msg NICK TEXT"}),
			Entry("a nickname that is taken", SpecTimeout(specTimeout), `{"type":"nick","nick":"Bob"}`,
				protocol.Event{Type: protocol.TypeError, Code: "nick_taken", Text: "the nickname bob is taken"}),
		)

		It("announces a shutdown as a typed notice before closing", SpecTimeout(specTimeout), func(ctx SpecContext) {
			Expect(srv.Stop()).To(Succeed())
			alice.ExpectEvent(protocol.Event{Type: protocol.TypeNotice, Code: "shutdown", Text: "server shutting down"})
			alice.ExpectDisconnected()
		})

		It("goes back to text with /format text", SpecTimeout(specTimeout), func(ctx SpecContext) {
			alice.Command(map[string]any{"type": "format", "format": "text"})
			alice.ExpectLines("*** switched to the text format")
			l, err := alice.NextLine()
			Expect(err).NotTo(HaveOccurred())
			Expect(l).To(MatchRegexp(`^\*\*\* Welcome, alice! You are in #lobby\. `))
			bob.Send("plain again\n")
			alice.ExpectLines("bob: plain again")
		})
	})
}, transports)
