// Package servercmd is the command line of natter's server, cmd/server:
// [Run] parses its flags, opens the history, the accounts and, in a
// cluster, the connection to NATS, and serves until its context is done.
package servercmd

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/chat"
	"github.com/natter-chat/natter/chat/accounts"
	"github.com/natter-chat/natter/chat/cli"
	"github.com/natter-chat/natter/chat/cluster"
	"github.com/natter-chat/natter/chat/files"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/logline"
)

// Run runs the chat server until ctx is done, then shuts it down
// gracefully, and returns the process exit code. Logs go to env.Stderr.
func Run(ctx context.Context, args []string, env cli.Env) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	addr := fs.String("addr", cli.DefaultAddr, "`address` to listen on")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	format := fs.String("log-format", "text", "log `format`: text or json")
	var opts chat.Options
	fs.IntVar(&opts.MaxLineBytes, "max-line-bytes", chat.DefaultMaxLineBytes, "longest line a client may send, in `bytes`")
	fs.IntVar(&opts.OutboundQueue, "outbound-queue", chat.DefaultOutboundQueue, "`messages` queued per client before the oldest are dropped")
	fs.IntVar(&opts.OutboundBytes, "outbound-bytes", chat.DefaultOutboundBytes, "`bytes` queued per client before the oldest are dropped (at least 64 KiB and 16 times -max-line-bytes); a replay page takes at most half")
	fs.DurationVar(&opts.WriteTimeout, "write-timeout", chat.DefaultWriteTimeout, "disconnect a client that takes no data (not one write of up to 64 KiB) for this `long`")
	fs.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", chat.DefaultShutdownTimeout, "how `long` a shutdown waits to deliver queued messages")
	fs.IntVar(&opts.MaxNickLength, "max-nick-length", chat.DefaultMaxNickLength, "longest nickname, in `characters`")
	fs.IntVar(&opts.MaxRoomNameLength, "max-room-name-length", chat.DefaultMaxRoomNameLength, "longest room name, in `characters`")
	fs.IntVar(&opts.MaxTopicBytes, "max-topic-bytes", chat.DefaultMaxTopicBytes, "longest room topic, in `bytes`")
	fs.IntVar(&opts.MaxRoomsPerClient, "max-rooms-per-client", chat.DefaultMaxRoomsPerClient, "`rooms` one client may be in at once")
	fs.IntVar(&opts.MaxRoomMembers, "max-room-members", chat.DefaultMaxRoomMembers, "`clients` a room may hold (the lobby has no limit)")
	fs.IntVar(&opts.AnnounceLimit, "announce-limit", chat.DefaultAnnounceLimit, "largest room, in `members`, whose joins, parts and quits are announced (-1: every room)")
	fs.IntVar(&opts.MaxRooms, "max-rooms", chat.DefaultMaxRooms, "`rooms` that may exist at once")
	fs.IntVar(&opts.MaxListPage, "max-list-page", chat.DefaultMaxListPage, "`rooms` one /rooms lists, and members one /who lists, per page")
	opts.MessageRate = chat.DefaultMessageRate
	fs.Var(rateFlag{&opts.MessageRate}, "rate", "`lines` a second a client may send, sustained (0: no limit)")
	fs.IntVar(&opts.MessageBurst, "burst", chat.DefaultMessageBurst, "`lines` a client may send at once before -rate applies")
	fs.DurationVar(&opts.FloodDelay, "flood-delay", chat.DefaultFloodDelay, "hold back a line over the rate this `long` at most, then refuse lines")
	fs.IntVar(&opts.FloodRefusals, "flood-refusals", chat.DefaultFloodRefusals, "disconnect a client after this many `lines` refused in a row")
	fs.DurationVar(&opts.LineTimeout, "line-timeout", chat.DefaultLineTimeout, "disconnect a client whose line takes longer than this to arrive")
	fs.IntVar(&opts.MaxClients, "max-clients", chat.DefaultMaxClients, "`clients` connected at once")
	fs.IntVar(&opts.MaxClientsPerIP, "max-clients-per-ip", chat.DefaultMaxClientsPerIP, "`clients` connected at once from one address (an IPv6 address by its -ipv6-prefix)")
	opts.ConnectRate = chat.DefaultConnectRate
	fs.Var(rateFlag{&opts.ConnectRate}, "connect-rate", "new `connections` a second from one address, sustained (0: no limit)")
	fs.IntVar(&opts.ConnectBurst, "connect-burst", chat.DefaultConnectBurst, "new `connections` one address may open at once")
	tlsAddr := fs.String("tls-addr", "", "`address` to serve TLS on, beside -addr (-addr \"\" for TLS only)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate `file` (PEM)")
	tlsKey := fs.String("tls-key", "", "TLS private key `file` (PEM)")
	fs.DurationVar(&opts.HandshakeTimeout, "handshake-timeout", chat.DefaultHandshakeTimeout, "drop a TLS client that hasn't completed its handshake after this `long`")
	fs.IntVar(&opts.MaxHandshakes, "max-handshakes", chat.DefaultMaxHandshakes, "TLS `handshakes` in progress at once; more are closed when accepted")
	fs.IntVar(&opts.MaxHandshakesPerIP, "max-handshakes-per-ip", chat.DefaultMaxHandshakesPerIP, "TLS `handshakes` in progress at once from one address")
	fs.IntVar(&opts.IPv6Prefix, "ipv6-prefix", chat.DefaultIPv6Prefix, "leading `bits` of an IPv6 address that count as one address for the per-address limits (128: each address)")
	fs.DurationVar(&opts.PingInterval, "ping-interval", chat.DefaultPingInterval, "ping a JSON client silent this `long`; disconnect it after twice that")
	fs.BoolVar(&opts.RequireAuth, "require-auth", false, "clients must /login or /register before anything else")
	fs.DurationVar(&opts.LoginTimeout, "login-timeout", chat.DefaultLoginTimeout, "with -require-auth, disconnect a client not logged in after this `long`")
	opts.LoginRate = chat.DefaultLoginRate
	fs.Var(rateFlag{&opts.LoginRate}, "login-rate", "password `attempts` (logins, registrations) a second, sustained, per address and per account from an address (0: no limit)")
	fs.IntVar(&opts.LoginBurst, "login-burst", chat.DefaultLoginBurst, "logins to one account from one address at once (`attempts`); an address may make twice as many in all")
	fs.IntVar(&opts.PasswordHashers, "password-hashers", chat.DefaultPasswordHashers, "password `hashes` (bcrypt) at once; more wait (0: half the CPUs, at least one)")
	filesAddr := fs.String("files-addr", "", "`address` to serve file uploads and downloads on, over HTTP (HTTPS with -tls-cert and -tls-key); off unless set")
	filesURL := fs.String("files-url", "", "public `URL` of -files-addr, for the links the server gives out (default: http://ADDR, or https://ADDR)")
	var fcfg files.Config
	fs.Int64Var(&fcfg.MaxFileBytes, "max-file-bytes", files.DefaultMaxFileBytes, "largest file, in `bytes`, that may be uploaded")
	fs.Int64Var(&fcfg.QuotaBytes, "file-quota", files.DefaultQuotaBytes, "`bytes` one user (an account, or else an address) may upload per -file-quota-period")
	fs.DurationVar(&fcfg.QuotaPeriod, "file-quota-period", files.DefaultQuotaPeriod, "the `period` -file-quota is counted over")
	fs.DurationVar(&fcfg.UploadTTL, "upload-ttl", files.DefaultUploadTTL, "how `long` an upload link lasts: the upload must be done within it")
	fs.DurationVar(&fcfg.StallTimeout, "upload-stall-timeout", files.DefaultStallTimeout, "end an upload that sends nothing for this `long` (it can be resumed)")
	fs.IntVar(&fcfg.MaxUploadsPerIP, "max-uploads-per-ip", files.DefaultMaxUploadsPerIP, "`uploads` in progress at once from one address")
	fs.DurationVar(&fcfg.Retain, "retain-files", files.DefaultRetain, "remove shared files older than this `long` (negative: keep)")
	fs.Int64Var(&fcfg.MaxBytes, "files-bytes", files.DefaultMaxBytes, "`bytes` of files kept at most; past it the oldest go first")
	fs.StringVar(&opts.UploadsBy, "uploads-by", chat.UploadsAnyone, "who may upload files: anyone, or registered (users logged in to an account)")
	adminAddr := fs.String("admin-addr", "", "`address` for /metrics, /healthz, /readyz and /debug/pprof (off unless set; keep it private)")
	dataDir := fs.String("data-dir", DefaultDataDir, "`directory` for the message history")
	memory := fs.Bool("memory", false, "keep history in memory only (lost on exit), ignoring -data-dir")
	fs.IntVar(&opts.HistoryOnJoin, "history-on-join", chat.DefaultHistoryOnJoin, "latest `messages` of a room sent to whoever joins it (-1: none)")
	var retention history.Retention
	fs.IntVar(&retention.MaxMessages, "retain-messages", 0, "keep only this many of each room's newest `messages` (0: all; in memory: 10000)")
	fs.DurationVar(&retention.MaxAge, "retain-age", 0, "remove messages older than this `long` (0: keep)")
	fs.Int64Var(&retention.MaxBytes, "memory-bytes", chat.DefaultMemoryBytes, "with -memory, keep at most this many `bytes` of history, the oldest messages going first (0: no limit)")
	natsURL := fs.String("nats", "", "NATS `URLs` (comma-separated): run as one node of a cluster that shares its chat through JetStream")
	natsCreds := fs.String("nats-creds", "", "NATS credentials `file`")
	natsCA := fs.String("nats-ca", "", "CA certificate `file` (PEM) to verify NATS's TLS certificate")
	natsCert := fs.String("nats-cert", "", "client certificate `file` (PEM) for NATS, with -nats-key")
	natsKey := fs.String("nats-key", "", "client key `file` (PEM) for NATS")
	var ccfg cluster.Config
	fs.StringVar(&ccfg.Name, "cluster-name", cluster.DefaultName, "`name` of the deployment; nodes with the same name serve one chat")
	fs.IntVar(&ccfg.Replicas, "cluster-replicas", 1, "NATS `servers` holding a copy of the history (3 for a three-server NATS cluster)")
	fs.DurationVar(&ccfg.PresenceTTL, "cluster-presence-ttl", cluster.DefaultPresenceTTL, "how `long` a dead node's users stay listed and keep their nicknames")
	if code := cli.ParseFlags(fs, args, env.Stderr); code >= 0 {
		return code
	}

	lvl, err := logline.ParseLevel(*level)
	if err != nil {
		fmt.Fprintf(env.Stderr, "server: -log-level: %v\n", err)
		return cli.ExitUsage
	}
	logger, err := logline.New(env.Stderr, *format, lvl)
	if err != nil {
		fmt.Fprintf(env.Stderr, "server: -log-format: %v\n", err)
		return cli.ExitUsage
	}
	opts.Logger = logger

	var node *cluster.Node
	if *natsURL != "" {
		ccfg.MaxMessages, ccfg.MaxAge = retention.MaxMessages, retention.MaxAge
		ccfg.Check = chat.StreamCheck(opts)
		var nc *nats.Conn
		var err error
		nc, node, err = joinCluster(ctx, logger, natsFlags{*natsURL, *natsCreds, *natsCA, *natsCert, *natsKey}, ccfg)
		if err != nil {
			return cli.ExitFailure
		}
		defer closeNATS(logger, nc, opts.ShutdownTimeout)
		defer node.Close() // sends NATS nothing: at once, whatever NATS does
		opts.Cluster, opts.Accounts = node, node.Accounts()
		logger.Info("Cluster node of " + ccfg.Name + " through NATS at " + nc.ConnectedUrlRedacted())
	}
	switch {
	case opts.Cluster != nil:
		// The cluster keeps the history and the accounts.
	case *memory:
		if retention.MaxMessages == 0 {
			retention.MaxMessages = chat.DefaultMemoryHistory
		}
		opts.History = history.NewMemory(retention)
		opts.Accounts = accounts.NewMemory()
		if retention.MaxBytes > 0 {
			logger.Info(fmt.Sprintf("History is kept in memory only, at most %d bytes of it", retention.MaxBytes))
		} else {
			logger.Info("History is kept in memory only")
		}
	default:
		store, err := history.OpenLog(*dataDir, retention)
		if err != nil {
			logger.Error(fmt.Sprintf("Cannot open the history in %s: %v", *dataDir, err))
			return cli.ExitFailure
		}
		defer store.Close()
		for _, r := range store.Repairs() {
			logger.Warn("Opening the history " + r)
		}
		opts.History = store
		opts.Accounts = accounts.NewBolt(store.DB())
		logger.Info("History is stored in " + filepath.Join(*dataDir, history.LogDir))
	}

	listen := env.Listen
	if listen == nil {
		listen = net.Listen
	}
	var listeners []net.Listener
	defer func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}()
	open := func(addr string) net.Listener {
		ln, err := listen("tcp", addr)
		if err != nil {
			logger.Error(fmt.Sprintf("Cannot listen on %s: %s", addr, cli.Reason(err)))
			return nil
		}
		listeners = append(listeners, ln)
		return ln
	}
	var ln net.Listener
	if *addr != "" {
		if ln = open(*addr); ln == nil {
			return cli.ExitFailure
		}
	}
	// The certificate serves the chat's TLS listener and the files'.
	var tlsConfig *tls.Config
	if *tlsAddr != "" || (*filesAddr != "" && *tlsCert != "") {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			logger.Error(fmt.Sprintf("Cannot load the TLS certificate: %v", err))
			return cli.ExitFailure
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if *tlsAddr != "" {
		tl := open(*tlsAddr)
		if tl == nil {
			return cli.ExitFailure
		}
		tl = tls.NewListener(tl, tlsConfig)
		if ln == nil {
			ln = tl
		} else {
			opts.TLSListener = tl
		}
	}
	if ln == nil {
		logger.Error("Nothing to listen on: give -addr, -tls-addr or both")
		return cli.ExitUsage
	}
	var srv *chat.Server
	if *filesAddr != "" {
		if opts.UploadsBy != chat.UploadsAnyone && opts.UploadsBy != chat.UploadsRegistered {
			logger.Error(fmt.Sprintf("-uploads-by: %q is neither anyone nor registered", opts.UploadsBy))
			return cli.ExitUsage
		}
		fl := open(*filesAddr)
		if fl == nil {
			return cli.ExitFailure
		}
		scheme := "http"
		if tlsConfig != nil {
			fl, scheme = tls.NewListener(fl, tlsConfig), "https"
		}
		fcfg.BaseURL = strings.TrimSuffix(*filesURL, "/")
		if fcfg.BaseURL == "" {
			fcfg.BaseURL = scheme + "://" + fl.Addr().String()
		}
		fcfg.Dir = filepath.Join(*dataDir, "files")
		where := fcfg.Dir
		if node != nil {
			// The cluster keeps the files; uploads in progress stay here.
			store, err := node.Files(ctx, fcfg.MaxBytes)
			if err != nil {
				logger.Error(fmt.Sprintf("Cannot open the cluster's file store: %v", err))
				return cli.ExitFailure
			}
			fcfg.Store, where = store, "the cluster (JetStream object store natter_"+ccfg.Name+"_blobs)"
		}
		if *memory {
			dir, err := os.MkdirTemp("", "natter-files-")
			if err != nil {
				logger.Error(fmt.Sprintf("Cannot make a directory for files: %v", err))
				return cli.ExitFailure
			}
			defer os.RemoveAll(dir)
			fcfg.Dir = dir
		}
		fcfg.Check = func(o files.Offer) error { return srv.CheckPost(o) }
		svc, err := files.New(fcfg, func(u files.Upload) error { return srv.PostFile(u) })
		if err != nil {
			logger.Error(fmt.Sprintf("Cannot open the file store in %s: %v", fcfg.Dir, err))
			return cli.ExitFailure
		}
		defer svc.Close()
		opts.Files, opts.FilesListener = svc, fl
		logger.Info("Shared files are stored in " + where + " and linked as " + fcfg.BaseURL)
	}
	srv = chat.NewServer(ln, opts)
	if *adminAddr != "" {
		al := open(*adminAddr)
		if al == nil {
			return cli.ExitFailure
		}
		admin := &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		done := make(chan struct{})
		go func() {
			defer close(done)
			admin.Serve(al)
		}()
		defer func() {
			admin.Close()
			<-done
		}()
		logger.Info("Admin endpoints on http://" + al.Addr().String() + "/metrics")
	}
	if err := srv.Serve(ctx); err != nil {
		return cli.ExitFailure
	}
	return cli.ExitOK
}

// natsFlags are the flags for the connection to NATS.
type natsFlags struct{ url, creds, ca, cert, key string }

// joinCluster connects to NATS and joins the cluster, logging why if it
// can't. The caller closes the node, then the connection.
func joinCluster(ctx context.Context, logger *slog.Logger, f natsFlags, cfg cluster.Config) (*nats.Conn, *cluster.Node, error) {
	opts := []nats.Option{
		nats.Name("natter"),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1), // refuse, never delay, what can't be sent
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("Lost the connection to NATS; messages are refused until it is back", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("Connected to NATS again at " + nc.ConnectedUrlRedacted())
		}),
	}
	if f.creds != "" {
		opts = append(opts, nats.UserCredentials(f.creds))
	}
	if f.ca != "" {
		opts = append(opts, nats.RootCAs(f.ca))
	}
	if f.cert != "" || f.key != "" {
		opts = append(opts, nats.ClientCert(f.cert, f.key))
	}
	nc, err := nats.Connect(f.url, opts...)
	if err != nil {
		logger.Error(fmt.Sprintf("Cannot connect to NATS at %s: %v", f.url, err))
		return nil, nil, err
	}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	node, err := cluster.Join(jctx, nc, cfg)
	if err != nil {
		nc.Close()
		logger.Error(fmt.Sprintf("Cannot join the cluster: %v", err))
		return nil, nil, err
	}
	return nc, node, nil
}

// closeNATS closes nc, waiting at most timeout: closing flushes what is
// buffered, and a NATS server that stalled, its socket full, would hold
// the write for nats.go's flusher timeout (a minute). Past timeout the
// close goes on by itself, and the process exits without it.
func closeNATS(logger *slog.Logger, nc *nats.Conn, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc.Close()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		logger.Warn("Closing the connection to NATS is taking too long; exiting without waiting")
	}
}

// DefaultDataDir is where the server keeps its history unless told
// otherwise: a directory under the working directory.
const DefaultDataDir = "natter-data"

// rateFlag is a flag for a rate.Limit, in events a second, where 0 means
// no limit.
type rateFlag struct{ l *rate.Limit }

func (r rateFlag) String() string {
	switch {
	case r.l == nil:
		return ""
	case *r.l == rate.Inf:
		return "0"
	}
	return strconv.FormatFloat(float64(*r.l), 'g', 4, 64)
}

func (r rateFlag) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return errors.New("want a number, at least 0")
	}
	*r.l = rate.Limit(f)
	if f == 0 {
		*r.l = rate.Inf
	}
	return nil
}
