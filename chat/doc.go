// Package chat is natter's server: clients with nicknames talk in rooms,
// over any [net.Listener]. natter's own client is package chat/client; the
// wire protocol both speak is package chat/protocol, described in full in
// chat/PROTOCOL.md.
//
// The protocol is plain text, so `nc` is a full client. Every line a client
// sends ends with "\n" (a "\r" before it is dropped); every non-empty line is
// a chat line for the client's current room, or a /command. A chat line is
// delivered to every member of its room, the sender included, in one order
// that all of them share. Lines from the server that start with
// [protocol.SystemPrefix] ("*** ") are the server's own notices and errors,
// not chat.
//
// The server is built to keep going whatever its clients do:
//
//   - Reading is bounded. A line longer than [Options.MaxLineBytes], or that
//     is not UTF-8, or that holds a NUL byte or another control character,
//     is discarded whole and the sender gets an error line; its connection
//     stays up. A line must arrive within [Options.LineTimeout], and lines
//     beyond [Options.MessageRate] are held back, then refused.
//   - A client's lines take effect in the order it sent them, chat and
//     commands alike.
//   - Every message is stored before anyone receives it, so whatever a
//     client has seen is in the history.
//   - Each message is encoded once and shared by every receiver. Each
//     connection has a bounded outbound queue, drained by a flusher
//     goroutine that writes as much of it at once as one write takes (64
//     KiB) and runs only while there is something to write, so an idle
//     connection costs one goroutine (its reader, on a fresh 2 KiB stack)
//     and a small buffer.
//   - The broadcaster never blocks on a receiver. When a receiver's queue is
//     full ([Options.OutboundQueue] messages or [Options.OutboundBytes]
//     bytes), its oldest queued messages are dropped and it is told which
//     it missed; a replay page takes at most half of the bytes, so that it
//     never pushes itself out. A receiver that takes no data (not one
//     write of up to 64 KiB) for [Options.WriteTimeout] is disconnected,
//     however long its backlog takes to read.
//
// # Files
//
// A file per stage of a message's way through the server:
//
//	accept.go            accepting, the connection limits, TLS handshakes
//	session.go           one client's state
//	reader.go            a session's reader: lines in, carried out in order
//	flood.go             flood control
//	commands.go          the dispatcher, the chat line, /msg /help /format /quit
//	commands_nick.go     /nick and renaming
//	commands_account.go  /register, /login, -require-auth
//	commands_room.go     /join /part /who /rooms /topic
//	commands_history.go  history reads without the lock: the join replay, /history, /resume
//	commit.go            the commit loop: store, then deliver
//	deliver.go           encode once, fan out to a room
//	announce.go          joins, parts, renames and quits: here at once, to the cluster in the next batch
//	commands_files.go    /upload, posting a shared file, serving the file service's HTTP side
//	queue.go             a session's bounded outbound queue
//	flusher.go           a session's writer: coalesced writes, slow clients
//	room.go              rooms and their numbering
//	lifecycle.go         arriving and departing, and why clients leave
//	cluster.go           the glue to chat/cluster
//	ping.go              finding clients that stopped answering
//	metrics.go           Prometheus metrics and the admin endpoints
//	server.go            the Server: Serve and shutdown
//	options.go           every limit, with its default
//
// # Goroutines
//
// Every goroutine the server starts has an owner that waits for it: Serve
// waits for all of them (Server.wg) before it returns.
//
//   - An accept loop per listener (Serve starts them). A TLS connection's
//     handshake runs in a goroutine of its own, and so does the one line
//     written to a refused connection, so no peer can hold up Accept. On
//     a cluster node, so does every new connection's start, which claims
//     its guest name in the cluster without the lock (start, in
//     accept.go), so a slow cluster can't hold it up either.
//   - A reader per session (started once the connection is admitted, and
//     for TLS once its handshake is done): it reads, applies flood
//     control, and carries out each line. It is the only goroutine that
//     runs a client's commands, so a client's commands run one at a time,
//     in order. Slow work for a command (bcrypt, reading the accounts)
//     runs here, without the server's lock. Each time it has carried out
//     everything read and would wait for the client, it hands over to a
//     new goroutine on a fresh stack and ends (read, in reader.go): the
//     readers of a session run one after another, never two at once.
//   - A flusher per session, only while the session has something to write
//     (whoever queues the first message starts it). It owns every write to
//     the connection, and closes it once the session is finished. To cut
//     a client off (an unanswered ping, a shutdown that took too long),
//     the connection is closed from outside, which ends the reader's read
//     and the flusher's write.
//   - The commit loop (one): it stores accepted messages in batches and
//     then delivers them.
//   - The ping loop (one), and, on a cluster node, the cluster's delivery
//     loop (one), which delivers what any node stored.
//
// At shutdown a timer (time.AfterFunc) closes a cluster node once
// ShutdownTimeout has passed, so that no request to NATS outlasts it;
// Serve waits for it.
//
// With -require-auth, a login timer (time.AfterFunc) waits for each client
// to log in; departures and shutdown stop it, and one that fires once the
// server is closing does nothing.
//
// # Locks
//
// Server.mu guards all chat state: sessions, nicknames, rooms, membership.
// Every command runs under it, and every event is queued for its receivers
// under it, which gives every receiver one order. No password hash, no
// disk write, no write to a client and no close of one runs under it
// (queueing never blocks; flushers write without it), nor does the log
// line of a message or of a departure; a client waiting for its own
// messages to be delivered waits without it. What a command checks before
// an unlock (is this name free? is it registered?) it checks again after.
// A join, /history and /resume read the history before taking it, and a
// join uses what it read only if nothing was delivered to the room
// meanwhile (else it reads again). Some waits remain under it, and are
// known costs: the replay of the lobby to a client arriving or logging in;
// a join or a /nick that keeps finding what it read gone stale reads at
// its fourth try with the lock held (on a cluster node, a new room's
// topic too); and the log lines of those when they fail. On a cluster
// node nothing else asks NATS under it: nicknames are claimed before it
// is taken (and given up if the name is not taken after all), presence is
// written in the background, a new room's topic is read with its history,
// a topic is set without it, and /who and /rooms are answered
// from the presence the node keeps in memory by watching the cluster's
// claims (chat/cluster/presence.go), asking NATS nothing. /who and /rooms
// copy what they list under it, and sort, page and encode without it.
//
// A session's mu guards its outbound queue; it is taken under Server.mu
// (to queue) or alone (by the flusher, to take the queue), never the other
// way round: Server.mu before session.mu. The cluster node's locks (in
// chat/cluster) are taken under Server.mu and never call back into it.
//
// # The path of a message
//
//  1. The session's reader reads a line (line.Reader: bounded, valid
//     UTF-8, no control characters) and flood control admits it
//     (reader.go, flood.go).
//  2. The line is parsed, and then, under Server.mu, accepted for the
//     sender's current room and attributed to its nickname (commands.go:
//     accept); the reader hands it to the commit loop over a channel and
//     goes on to the next line. The reader's next command, if any, waits until this
//     message has been delivered (session.inflight).
//  3. The commit loop takes every message waiting, up to
//     [Options.CommitBatch], numbers each in its room and writes them as
//     one batch; the deliver loop waits for the batch to be durable (one
//     disk sync, which the batches written meanwhile share) and hands it
//     on (commit.go).
//  4. Under Server.mu, each message's room is looked up by name as it is
//     now, and the message is encoded once per form it is needed in and
//     queued for every member (deliver.go). Receivers are woken once per
//     batch (on a cluster node, once per message handed back).
//  5. Each receiver's flusher takes what is queued, up to 64 KiB at a
//     time, and writes it in one write, with a write deadline renewed as
//     writes complete (flusher.go). A receiver that can't keep up loses
//     its oldest messages and is told which; one that takes nothing for
//     [Options.WriteTimeout] is disconnected.
//
// On a cluster node (Options.Cluster), step 3 publishes the batch to the
// cluster, and step 4 happens on every node when the cluster hands the
// message back, in the cluster's one order (cluster.go).
package chat
