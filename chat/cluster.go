package chat

// This file is the glue to a cluster: what a node hands it, and what it
// hands the node.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/natter-chat/natter/chat/files"
	"github.com/natter-chat/natter/chat/history"
	"github.com/natter-chat/natter/chat/line"
	"github.com/natter-chat/natter/chat/protocol"
)

// Cluster links a server to the other nodes of a deployment (see package
// chat/cluster, which implements it over NATS JetStream). As a history
// store its Append stores and numbers messages for the whole deployment
// without delivering them; Run then hands every node every message, in
// one order, to deliver to its own clients.
type Cluster interface {
	history.Store
	// Run calls deliver with every message stored by any node, in the
	// cluster's order, until ctx ends or the delivery fails.
	Run(ctx context.Context, deliver func(history.Message)) error
	// Resume readies the delivery again after Run failed, to go on
	// after the last message it read.
	Resume(ctx context.Context) error
	// ClaimNick reserves a folded nickname for a client of this node,
	// reporting false if a client of another node has it.
	ClaimNick(nick string) (bool, error)
	// ReleaseNick gives up a nickname this node claimed.
	ReleaseNick(nick string)
	// OnStatus registers a function told when the node loses the
	// cluster (false) and has it again (true).
	OnStatus(func(up bool))
	// Enter and Leave record which of this node's clients are in which
	// room, for the whole cluster to see. They, and ReleaseNick, must not
	// wait for the cluster: a Server calls them with its lock held.
	Enter(room, nick string) error
	Leave(room, nick string)
	// Members returns the nicknames in room on every node; Rooms the
	// same for every room, by folded name.
	Members(room string) ([]string, error)
	Rooms() (map[string][]string, error)
	// SetTopic sets a room's topic for every node; each hears of it
	// through the function given to OnTopic, this one included. Topic
	// returns a room's topic.
	SetTopic(room, by, text string) error
	Topic(room string) (string, error)
	OnTopic(func(room, by, text string))
	// Close ends the node's requests in flight, and Run; whatever is
	// asked of it afterwards fails. A Server whose shutdown has taken
	// Options.ShutdownTimeout closes it, so that a cluster that does not
	// answer can't hold the shutdown up; the node's owner closes it
	// again (which does nothing) once Serve has returned.
	Close() error
	// ClaimsFresh reports whether this node's nickname claims are surely
	// still its own: renewed recently enough that none can have lapsed
	// and been taken elsewhere. It asks nothing of NATS.
	ClaimsFresh() bool
	// OnClaimLost registers a function told of each nickname (folded)
	// this node claimed that the cluster has given to a client of another
	// node meanwhile (as when this node stalled past the presence TTL).
	OnClaimLost(func(nick string))
	// OnRefused registers a function told of every message the cluster
	// handed this node that it refused (see StreamCheck), by its number
	// and why, in a word.
	OnRefused(func(seq uint64, reason string))
}

// StreamCheck returns the check a cluster node applies to every message it
// reads from the cluster (chat/cluster's Config.Check), since whoever may
// publish to the cluster could put anything there: it takes only what a
// client of a server with opts could have sent, or a room event a server
// could have made (see history.Message). It returns "" for a message it
// takes, or why it refuses one: "kind" (not a message, an action, a join,
// a part, a rename or a quit), "length" (text longer than MaxLineBytes),
// "utf8", "control" (a control character but tab, as a client's line),
// "from" (not a nickname or a guest's name within MaxNickLength; a
// rename's Text neither), "room" (not a room name within
// MaxRoomNameLength), "rooms" (an event's rooms: more than
// MaxRoomsPerClient, a name that is not a room's, or not starting with
// Room) or "file" (a shared file whose name, size, hash, type or token a
// file service would not have made, or a file on another kind).
func StreamCheck(opts Options) func(history.Message) string {
	opts = opts.withDefaults()
	return func(m history.Message) string {
		switch m.Kind {
		case protocol.TypeFile:
			if m.Text != "" || !validFile(m.File) {
				return "file"
			}
		case protocol.TypeMessage, protocol.TypeAction, protocol.TypeJoin, protocol.TypePart, protocol.TypeQuit:
			if m.File != nil {
				return "file"
			}
		case protocol.TypeNick:
			if !validSender(m.Text, opts.MaxNickLength) {
				return "from"
			}
		default:
			return "kind"
		}
		switch {
		case len(m.Text) > opts.MaxLineBytes:
			return "length"
		case !utf8.ValidString(m.Text) || !utf8.ValidString(m.From) || !utf8.ValidString(m.Room):
			return "utf8"
		case line.HasControl([]byte(m.Text)):
			return "control"
		case !validSender(m.From, opts.MaxNickLength):
			return "from"
		case protocol.CheckRoom(m.Room, opts.MaxRoomNameLength) != nil:
			return "room"
		case !validRooms(m, opts):
			return "rooms"
		}
		return ""
	}
}

// fileToken matches the download tokens chat/files makes (crypto/rand.Text).
var fileToken = regexp.MustCompile(`^[A-Z2-7]{26}$`)

// validFile reports whether f is what a file service would post.
func validFile(f *history.File) bool {
	if f == nil || f.Size <= 0 || files.CheckName(f.Name) != nil || !fileToken.MatchString(f.Token) ||
		len(f.MIME) > 255 || line.HasControl([]byte(f.MIME)) || !utf8.ValidString(f.MIME) {
		return false
	}
	b, err := hex.DecodeString(f.SHA256)
	return err == nil && len(b) == sha256.Size && f.SHA256 == strings.ToLower(f.SHA256)
}

// validRooms reports whether m names the rooms its kind does: none but
// Room for a message, a join or a part; for a rename or a quit, Room and
// the other rooms its client was in.
func validRooms(m history.Message, opts Options) bool {
	if m.Kind != protocol.TypeNick && m.Kind != protocol.TypeQuit {
		return len(m.Rooms) == 0
	}
	if len(m.Rooms) == 0 || len(m.Rooms) > opts.MaxRoomsPerClient || m.Rooms[0] != m.Room {
		return false
	}
	for _, r := range m.Rooms {
		if protocol.CheckRoom(r, opts.MaxRoomNameLength) != nil {
			return false
		}
	}
	return true
}

// validSender reports whether from names a client: a nickname, or a name
// the server gives a guest.
func validSender(from string, max int) bool {
	if n, ok := strings.CutPrefix(from, protocol.GuestPrefix); ok && len(from) <= max {
		_, err := strconv.ParseUint(n, 10, 64)
		return err == nil
	}
	return protocol.CheckNick(from, max) == nil
}

// awaited is one of this node's messages, stored by the cluster and not
// yet delivered back: its sender's next command waits for it.
type awaited struct {
	seq  uint64
	from *session
	at   time.Time // when it was accepted
}

// The wait before restarting the cluster's delivery: at first, and at
// most, after doubling at each failure.
const (
	minClusterRestart = 100 * time.Millisecond
	maxClusterRestart = 5 * time.Second
)

// runCluster delivers the cluster's messages to this node's clients until
// ctx ends, and then lets go of every sender waiting for a delivery that
// will not come. When the delivery fails, it lets them go too, says the
// node is not ready while it is down, and restarts it from where it
// stopped: after minClusterRestart, doubling up to maxClusterRestart, with
// jitter.
func (s *Server) runCluster(ctx context.Context) {
	c := s.opts.Cluster
	c.OnStatus(s.clusterStatus)
	c.OnTopic(s.topicSet)
	c.OnClaimLost(s.claimLost)
	c.OnRefused(s.streamRefused)
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.clusterStopped = true
		s.releaseAwaiting(len(s.awaiting))
	}()
	wait := minClusterRestart
	for {
		began := time.Now()
		err := c.Run(ctx, s.deliverStored)
		if ctx.Err() != nil {
			return
		}
		// This node no longer sees the others' messages: stop saying it
		// is ready, so a load balancer sends no one here.
		s.mu.Lock()
		s.clusterLost = true
		s.releaseAwaiting(len(s.awaiting))
		s.mu.Unlock()
		s.log.Error("Cluster delivery stopped; restarting", "err", err)
		if time.Since(began) > maxClusterRestart { // it ran a while: a new failure
			wait = minClusterRestart
		}
		for {
			if !sleepCtx(ctx, jitter(wait)) {
				return
			}
			wait = min(2*wait, maxClusterRestart)
			err := c.Resume(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("Restarting cluster delivery failed", "err", err)
		}
		s.mu.Lock()
		s.clusterLost = false
		s.mu.Unlock()
		s.log.Info("Cluster delivery restarted")
	}
}

// jitter returns a random duration between d/2 and d, so that nodes that
// failed together don't retry together.
func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }

// sleepCtx waits for d, and reports whether it did before ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// awaitDelivery makes from's next command wait until the cluster hands
// back its message numbered seq, unless it has already (the cluster may
// hand a message back before confirming it stored it), or the cluster is
// unreachable or its delivery stopped, when the wait could last as long as
// the outage. s.mu must be held.
func (s *Server) awaitDelivery(seq uint64, from *session, at time.Time) {
	if s.clusterDown || s.clusterLost || s.clusterStopped || seq <= s.clusterDelivered {
		from.inflight.Done()
		return
	}
	s.awaiting = append(s.awaiting, awaited{seq, from, at})
}

// releaseAwaiting lets the first n senders in s.awaiting go on. s.mu must
// be held.
func (s *Server) releaseAwaiting(n int) {
	for _, a := range s.awaiting[:n] {
		a.from.inflight.Done()
		s.metrics.deliverySeconds.Observe(time.Since(a.at).Seconds())
	}
	clear(s.awaiting[:n]) // hold no session in the array's head
	s.awaiting = s.awaiting[n:]
}

// deliverStored delivers a message the cluster stored, on this node or
// another, to its room's members here. Messages arrive in the cluster's
// order; one numbered at or below what the room has delivered was replayed
// to its members already.
func (s *Server) deliverStored(m history.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.IsChat() {
		ev := s.historyEvent(m)
		ev.History = false
		if m.File != nil {
			// Just posted: live, though this node's view of the cluster's
			// files may not have caught up with it yet.
			ev.File = s.fileInfo(m.File, true)
		}
		s.deliverNumbered(ev)
	} else {
		s.deliverStoredEvent(m)
	}
	s.clusterDelivered = max(s.clusterDelivered, m.Seq)
	// The cluster numbers every message in one sequence, in the order it
	// hands them back: whatever this node stored up to m has come back.
	n := 0
	for n < len(s.awaiting) && s.awaiting[n].seq <= m.Seq {
		n++
	}
	s.releaseAwaiting(n)
}

// clusterStatus tells every client that the cluster has been lost, so
// messages are refused (nothing can be sent that the other nodes would
// not see), or that it is back. While it is lost, no sender waits for its
// messages to come back.
func (s *Server) clusterStatus(up bool) {
	ev := &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeClusterDown,
		Text: "the cluster is unreachable: messages can't be sent until it is back"}
	if up {
		ev = &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeClusterBack, Text: "the cluster is back: messages can be sent again"}
		s.log.Info("Cluster reachable again")
	} else {
		s.log.Warn("Cluster unreachable; refusing messages until it is back")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clusterDown = !up
	if !up {
		s.releaseAwaiting(len(s.awaiting))
	}
	s.deliverAll(ev)
}

// streamRefused is told of a message from the cluster this node refused.
func (s *Server) streamRefused(seq uint64, reason string) {
	s.metrics.streamRefused.WithLabelValues(reason).Inc()
	s.log.Warn("Refused a message from the cluster's stream", "seq", seq, "reason", reason)
}

// claimLost takes the nickname folded from the client here that had it,
// the cluster having given it to a client of another node: at once, so
// that no two clients speak under one name. The client gets a guest's
// name, claimed without s.mu, and is told why.
func (s *Server) claimLost(folded string) {
	guest, err := s.claimGuest()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.nicks[folded]
	switch {
	case ss == nil: // gone meanwhile
		if err == nil {
			s.unclaim(guest)
		}
		return
	case err != nil:
		// The cluster can't confirm any name right now: a name of this
		// node's, unconfirmed, is still better than another's client's.
		s.log.Error("Claiming a guest name in the cluster failed", "err", err)
		guest = s.localGuest()
	case s.holder(guest) != nil: // taken here meanwhile, with its claim
		guest = s.localGuest()
	}
	s.log.Warn("Nickname " + ss.nick + " was taken by a client of another node; renaming " + ss.addr() + " to " + guest)
	s.sendTo(ss, &protocol.Event{Type: protocol.TypeNotice, Code: protocol.CodeNickLost,
		Text: "your nickname " + ss.nick + " was taken by a client of another node while this node could not renew it; you are now " + guest})
	// The old name's claim is already gone from this node: rename gives
	// up nothing of another's.
	s.rename(ss, guest)
}

// topicSet is told of a topic set on any node of a cluster.
func (s *Server) topicSet(room, by, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topics.Add(1)
	if r := s.rooms[protocol.Fold(room)]; r != nil {
		s.topicSetLocked(r, by, text)
	}
}
