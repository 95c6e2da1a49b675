package chat

import (
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat/accounts"
	"github.com/natter-chat/natter/chat/files"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/protocol"
)

// Defaults for the zero fields of [Options].
const (
	// DefaultMaxLineBytes bounds a line a client sends, not counting its
	// line ending.
	DefaultMaxLineBytes = protocol.DefaultMaxLineBytes
	// DefaultOutboundQueue is how many messages wait for a slow receiver
	// before the oldest are dropped.
	DefaultOutboundQueue = 256
	// DefaultOutboundBytes is how many bytes of messages wait for a slow
	// receiver before the oldest are dropped: 1 MiB, the least power of
	// two whose half (the most a replay page may take) holds a full page
	// of the longest text lines, 100 of 4 KiB. For messages under 4 KiB
	// the message limit (DefaultOutboundQueue) binds first; the bytes bind
	// for the longest lines, above all in JSON, whose escaping can make a
	// line six times longer. It is Centrifugo's client queue and InspIRCd's
	// hardsendq, and far below nats-server's max_pending (64 MiB) or
	// Redis' pubsub output buffer (32 MB): their messages may be
	// megabytes, a chat line is kilobytes, and a client that far behind
	// is better served by /resume from the stored history than by the
	// server's memory (DefaultMaxClients at 1 MiB each is nearly 10 GiB).
	DefaultOutboundBytes = 1 << 20
	// DefaultWriteTimeout is how long a receiver may take no data (not one
	// write of up to 64 KiB) before it is disconnected.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultShutdownTimeout bounds a graceful shutdown: how long the server
	// waits for queued messages to reach their clients.
	DefaultShutdownTimeout = 5 * time.Second

	// DefaultMaxNickLength bounds nicknames, in characters.
	DefaultMaxNickLength = 24
	// DefaultMaxRoomNameLength bounds room names, in characters.
	DefaultMaxRoomNameLength = 32
	// DefaultMaxTopicBytes bounds a room's topic.
	DefaultMaxTopicBytes = 300
	// DefaultMaxRoomsPerClient is how many rooms one client may be in.
	DefaultMaxRoomsPerClient = 10
	// DefaultMaxRoomMembers is how many clients a room other than the
	// default room may hold. The default room has no limit, so that every
	// client has somewhere to be.
	DefaultMaxRoomMembers = 1000
	// DefaultMaxRooms is how many rooms may exist at once.
	DefaultMaxRooms = 1000
	// DefaultAnnounceLimit is the largest room whose joins, parts and
	// quits are announced to its members.
	DefaultAnnounceLimit = 200

	// DefaultHistoryOnJoin is how many of a room's latest messages a client
	// receives when it joins the room.
	DefaultHistoryOnJoin = 20
	// DefaultMaxListPage bounds the rooms one /rooms lists, and the
	// members one /who lists; the reply says where to go on.
	DefaultMaxListPage = 100
	// DefaultMaxHistoryPage bounds the messages sent for one /history or
	// /resume.
	DefaultMaxHistoryPage = 100
	// DefaultCommitBatch bounds how many messages are written to the
	// history as one batch (one write; one disk sync at most).
	DefaultCommitBatch = 256
	// DefaultTrimInterval is how often messages past the history store's
	// age limit are removed.
	DefaultTrimInterval = time.Minute
	// DefaultMemoryHistory is how many messages per room the in-memory
	// history keeps when Options.History is nil.
	DefaultMemoryHistory = 10000
	// DefaultMemoryBytes bounds the in-memory history, in bytes as
	// history.MemoryStore.Bytes counts them, when Options.History is nil
	// (and with the server's -memory): past it the oldest messages go
	// first, whatever their room.
	DefaultMemoryBytes = 64 << 20

	// DefaultMessageRate is how many lines a second a client may send,
	// sustained.
	DefaultMessageRate rate.Limit = 5
	// DefaultMessageBurst is how many lines a client may send at once
	// before DefaultMessageRate applies.
	DefaultMessageBurst = 10
	// DefaultFloodDelay is the longest a line over the rate is held back
	// before lines are refused instead.
	DefaultFloodDelay = 2 * time.Second
	// DefaultFloodRefusals is how many lines in a row may be refused for
	// flooding before the client is disconnected.
	DefaultFloodRefusals = 10
	// DefaultLineTimeout is how long a line may take to arrive, from its
	// first byte to its newline.
	DefaultLineTimeout = time.Minute

	// DefaultMaxClients is how many clients may be connected at once.
	DefaultMaxClients = 10000
	// DefaultMaxClientsPerIP is how many clients may be connected at once
	// from one address (Server.addressOf: IPv6 by IPv6Prefix).
	DefaultMaxClientsPerIP = 100
	// DefaultConnectRate is how many new connections a second one IP
	// address may open, sustained.
	DefaultConnectRate rate.Limit = 1
	// DefaultConnectBurst is how many new connections one address may
	// open at once before DefaultConnectRate applies.
	DefaultConnectBurst = 20

	// DefaultMaxHandshakes is how many TLS handshakes may be in progress
	// at once. A handshake costs the server a signature, the most CPU any
	// connection takes before it is a client.
	DefaultMaxHandshakes = 64
	// DefaultMaxHandshakesPerIP is how many TLS handshakes one address
	// may have in progress at once.
	DefaultMaxHandshakesPerIP = 4
	// DefaultIPv6Prefix is the length of the IPv6 prefix that counts as one
	// address for the per-address limits: a /64 is the least a subscriber
	// is given, so its 2^64 addresses are one client's. Many are given a
	// /56 or a /48; a server that sees attacks from those counts by them.
	DefaultIPv6Prefix = 64

	// DefaultHandshakeTimeout bounds a TLS handshake.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultLoginTimeout is how long a client has to log in when
	// RequireAuth is set.
	DefaultLoginTimeout = time.Minute
	// DefaultLoginRate is how fast password attempts come back, per
	// address and per account from an address: one a minute.
	DefaultLoginRate = rate.Limit(1.0 / 60)
	// DefaultLoginBurst is how many logins to one account one address may
	// try at once before DefaultLoginRate applies; an address may make
	// twice as many password attempts in all.
	DefaultLoginBurst = 5
	// DefaultPasswordHashers, zero, means half the CPUs (at least one)
	// may hash passwords at once: bcrypt is slow on purpose, and chat
	// must keep the rest.
	DefaultPasswordHashers = 0
	// DefaultPingInterval is how long a JSON-format client may stay silent
	// before the server pings it; one silent for twice as long is
	// disconnected.
	DefaultPingInterval = 2 * time.Minute
)

// minOutboundBytes is the least Options.OutboundBytes: one write's worth.
const minOutboundBytes = maxWriteBytes

// DefaultRoom is the room every client is in when it connects (with
// RequireAuth, once it logs in). It always exists and has no member limit.
const DefaultRoom = protocol.DefaultRoom

// Options configures a [Server]. The zero value uses every default.
type Options struct {
	// MaxLineBytes is the longest line, in bytes, that a client may send;
	// longer lines are discarded with an error to the sender. Zero means
	// DefaultMaxLineBytes.
	MaxLineBytes int

	// OutboundQueue is the number of messages queued for one client; when
	// it is full the oldest are dropped and the client is told how many it
	// missed. Zero means DefaultOutboundQueue.
	OutboundQueue int
	// OutboundBytes bounds the bytes of the messages queued for one
	// client, as they are encoded for it; beyond it the oldest are dropped
	// and the client is told what it missed, as for OutboundQueue (the
	// newest message is kept whatever its length). Besides the queue, the
	// client's write under way holds up to 64 KiB (or one longer message).
	// A replay page
	// (/history, /resume, the replay on joining) is cut to half of it.
	// Zero means DefaultOutboundBytes. It is at least 64 KiB and 16 times
	// MaxLineBytes, so that half of it holds the longest message in
	// either format: JSON's escaping can make a line six times longer.
	OutboundBytes int

	// WriteTimeout is how long a client may take no data before it is
	// disconnected as a slow consumer: what is queued for it is written in
	// writes of at most 64 KiB, and a client is disconnected when one of
	// them has waited between three quarters of WriteTimeout and all of
	// it, however long its whole backlog takes to read. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration

	// ShutdownTimeout bounds how long a shutdown waits for queued messages
	// to be written before closing connections regardless. Zero means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// MaxNickLength bounds nicknames, in characters. Zero means
	// DefaultMaxNickLength.
	MaxNickLength int
	// MaxRoomNameLength bounds room names, in characters. Zero means
	// DefaultMaxRoomNameLength.
	MaxRoomNameLength int
	// MaxTopicBytes bounds a room's topic. Zero means DefaultMaxTopicBytes.
	MaxTopicBytes int
	// MaxRoomsPerClient is how many rooms one client may be in at once,
	// the default room included. Zero means DefaultMaxRoomsPerClient.
	MaxRoomsPerClient int
	// MaxRoomMembers is how many clients a room may hold; the default room
	// is exempt. Zero means DefaultMaxRoomMembers.
	MaxRoomMembers int
	// AnnounceLimit is the largest room, in members, whose joins, parts
	// and quits are announced to its members. Larger rooms stay quiet (IRC
	// calls this auditorium mode): announcing every arrival to everyone
	// costs N² deliveries as a room fills, which at thousands of members
	// outweighs the chat itself. /who still lists everyone, and the person
	// joining or leaving is still told. Zero means DefaultAnnounceLimit;
	// negative means every room announces.
	AnnounceLimit int
	// MaxRooms is how many rooms may exist at once, the default room
	// included. Zero means DefaultMaxRooms.
	MaxRooms int

	// Cluster, if set, makes this server one node of several serving one
	// chat: messages are stored and ordered by the cluster and reach
	// clients through it, on every node, and it is the history (History
	// is ignored). See package chat/cluster.
	Cluster Cluster
	// History stores every message before anyone receives it. Nil means an
	// in-memory store that keeps DefaultMemoryHistory messages per room,
	// and DefaultMemoryBytes in all.
	// The server does not close it.
	History history.Store
	// HistoryOnJoin is how many of a room's latest messages a client
	// receives on joining it. Zero means DefaultHistoryOnJoin; negative
	// means none.
	HistoryOnJoin int
	// MaxListPage bounds the rooms listed by one /rooms and the members by
	// one /who; the reply names where the next page starts. Zero means
	// DefaultMaxListPage.
	MaxListPage int
	// MaxHistoryPage bounds the messages sent for one /history or /resume.
	// Zero means DefaultMaxHistoryPage. It is capped at half of
	// OutboundQueue, and HistoryOnJoin at MaxHistoryPage, because a replay
	// is queued like any other message; for the same reason a page ends
	// early once it would take more than half of OutboundBytes.
	MaxHistoryPage int
	// CommitBatch bounds the messages written to the history as one
	// batch. Zero means DefaultCommitBatch.
	CommitBatch int
	// TrimInterval is how often the store's age limit is applied. Zero
	// means DefaultTrimInterval.
	TrimInterval time.Duration

	// MessageRate is how many lines a second a client may send, sustained;
	// zero means DefaultMessageRate and rate.Inf means no limit.
	MessageRate rate.Limit
	// MessageBurst is how many lines a client may send at once. Zero means
	// DefaultMessageBurst.
	MessageBurst int
	// FloodDelay is the longest a line over the rate is held back (the
	// client's connection not read meanwhile) before lines are refused.
	// Zero means DefaultFloodDelay.
	FloodDelay time.Duration
	// FloodRefusals is how many lines in a row may be refused before the
	// client is disconnected. Zero means DefaultFloodRefusals.
	FloodRefusals int
	// LineTimeout is how long a line may take from its first byte to its
	// newline; a client that trickles a line slower is disconnected. Zero
	// means DefaultLineTimeout.
	LineTimeout time.Duration

	// MaxClients is how many clients may be connected at once. Zero means
	// DefaultMaxClients.
	MaxClients int
	// MaxClientsPerIP is how many clients may be connected at once from one
	// address (an IPv6 one by IPv6Prefix). Zero means DefaultMaxClientsPerIP.
	MaxClientsPerIP int
	// ConnectRate is how many new connections a second one address may
	// open, sustained; zero means DefaultConnectRate and rate.Inf means no
	// limit.
	ConnectRate rate.Limit
	// ConnectBurst is how many new connections one address may open at
	// once. Zero means DefaultConnectBurst.
	ConnectBurst int

	// MaxHandshakes is how many TLS handshakes may be in progress at once;
	// a connection past it is closed when accepted. Zero means
	// DefaultMaxHandshakes.
	MaxHandshakes int
	// MaxHandshakesPerIP is how many TLS handshakes one address may have
	// in progress at once; a connection past it is closed when accepted.
	// Zero means DefaultMaxHandshakesPerIP.
	MaxHandshakesPerIP int
	// IPv6Prefix is how many leading bits of an IPv6 address name one
	// address for the per-address limits (MaxClientsPerIP, ConnectRate,
	// MaxHandshakesPerIP, LoginRate); 128 counts each address on its own.
	// Zero means DefaultIPv6Prefix.
	IPv6Prefix int

	// TLSListener, if set, is a second listener whose connections speak
	// TLS (made with tls.NewListener), served beside the first.
	TLSListener net.Listener

	// Files is the file-sharing service (chat/files), made with
	// Server.PostFile as the function it posts completed uploads with;
	// nil turns file sharing off, and /upload says so. The server serves
	// its HTTP side (uploads and downloads) on FilesListener, and closes
	// that listener on shutdown; the caller closes Files after Serve
	// returns. On a cluster node, Files keeps its files in the cluster
	// (its Store is chat/cluster's Node.Files).
	Files         *files.Service
	FilesListener net.Listener
	// UploadsBy is who may upload: UploadsAnyone (the default, "") or
	// UploadsRegistered. With RequireAuth everyone is registered.
	UploadsBy string
	// HandshakeTimeout bounds the TLS handshake of a connection accepted
	// on TLSListener. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// PingInterval is how long a JSON-format client may send nothing
	// before the server sends it a ping; a client silent for twice as long
	// is disconnected as unresponsive. Text-format clients (people with
	// nc) are not pinged; dead TCP peers are found by TCP keepalive, which
	// Go enables on accepted connections. Zero means DefaultPingInterval.
	PingInterval time.Duration

	// Accounts keeps registered nicknames and password hashes. Nil means
	// an in-memory store, lost on exit.
	Accounts accounts.Store
	// RequireAuth makes clients log in (or register) before anything else;
	// until then they are in no room.
	RequireAuth bool
	// LoginTimeout is how long a client has to log in when RequireAuth is
	// set. Zero means DefaultLoginTimeout.
	LoginTimeout time.Duration
	// LoginRate and LoginBurst limit password attempts against guessing:
	// an address may make 2*LoginBurst logins and registrations in all,
	// and LoginBurst logins to any one account, coming back at LoginRate.
	// Zero means DefaultLoginRate and DefaultLoginBurst, and a LoginRate
	// of rate.Inf means no limit.
	LoginRate  rate.Limit
	LoginBurst int
	// PasswordHashers is how many password hashes (a /register, a /login)
	// may run at once; more wait their turn, each on its own client.
	// Zero means half of GOMAXPROCS, at least one.
	PasswordHashers int

	// Logger receives the server's log. Nil means no logging.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	orDefault(&o.MaxLineBytes, DefaultMaxLineBytes)
	orDefault(&o.OutboundQueue, DefaultOutboundQueue)
	orDefault(&o.OutboundBytes, DefaultOutboundBytes)
	o.OutboundBytes = max(o.OutboundBytes, minOutboundBytes, 16*o.MaxLineBytes)
	orDefault(&o.WriteTimeout, DefaultWriteTimeout)
	orDefault(&o.ShutdownTimeout, DefaultShutdownTimeout)
	orDefault(&o.MaxNickLength, DefaultMaxNickLength)
	orDefault(&o.MaxRoomNameLength, DefaultMaxRoomNameLength)
	orDefault(&o.MaxTopicBytes, DefaultMaxTopicBytes)
	orDefault(&o.MaxRoomsPerClient, DefaultMaxRoomsPerClient)
	orDefault(&o.MaxRoomMembers, DefaultMaxRoomMembers)
	orDefault(&o.MaxRooms, DefaultMaxRooms)
	orDefault(&o.MaxHistoryPage, DefaultMaxHistoryPage)
	orDefault(&o.MaxListPage, DefaultMaxListPage)
	orDefault(&o.CommitBatch, DefaultCommitBatch)
	orDefault(&o.TrimInterval, DefaultTrimInterval)
	orDefault(&o.MessageRate, DefaultMessageRate)
	orDefault(&o.MessageBurst, DefaultMessageBurst)
	orDefault(&o.FloodDelay, DefaultFloodDelay)
	orDefault(&o.FloodRefusals, DefaultFloodRefusals)
	orDefault(&o.LineTimeout, DefaultLineTimeout)
	orDefault(&o.MaxClients, DefaultMaxClients)
	orDefault(&o.MaxClientsPerIP, DefaultMaxClientsPerIP)
	orDefault(&o.ConnectRate, DefaultConnectRate)
	orDefault(&o.ConnectBurst, DefaultConnectBurst)
	orDefault(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	orDefault(&o.MaxHandshakes, DefaultMaxHandshakes)
	orDefault(&o.MaxHandshakesPerIP, DefaultMaxHandshakesPerIP)
	orDefault(&o.IPv6Prefix, DefaultIPv6Prefix)
	orDefault(&o.PasswordHashers, max(1, runtime.GOMAXPROCS(0)/2))
	o.IPv6Prefix = min(o.IPv6Prefix, 128)
	orDefault(&o.PingInterval, DefaultPingInterval)
	orDefault(&o.LoginTimeout, DefaultLoginTimeout)
	orDefault(&o.LoginRate, DefaultLoginRate)
	orDefault(&o.LoginBurst, DefaultLoginBurst)
	if o.Accounts == nil {
		o.Accounts = accounts.NewMemory()
	}
	switch {
	case o.AnnounceLimit == 0:
		o.AnnounceLimit = DefaultAnnounceLimit
	case o.AnnounceLimit < 0:
		o.AnnounceLimit = math.MaxInt
	}
	switch {
	case o.HistoryOnJoin == 0:
		o.HistoryOnJoin = DefaultHistoryOnJoin
	case o.HistoryOnJoin < 0:
		o.HistoryOnJoin = 0
	}
	// A replay goes through the client's outbound queue like everything
	// else; at most half of it, so that a replay can't push itself out.
	o.MaxHistoryPage = max(1, min(o.MaxHistoryPage, o.OutboundQueue/2))
	o.HistoryOnJoin = min(o.HistoryOnJoin, o.MaxHistoryPage)
	if o.Cluster != nil {
		o.History = o.Cluster
	}
	if o.History == nil {
		o.History = history.NewMemory(history.Retention{MaxMessages: DefaultMemoryHistory, MaxBytes: DefaultMemoryBytes})
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// orDefault sets *v to def unless it is positive.
func orDefault[T int | time.Duration | rate.Limit](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
