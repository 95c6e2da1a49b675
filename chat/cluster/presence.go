package cluster

// This file is presence: which node's client holds which nickname, and who
// is in which room, across the cluster.
//
// Two buckets hold it. In the claims bucket (no TTL) a nickname's key is
// nick.<folded nickname> and a member's in.<room>.<Nick>, each valued with
// the token of the node that holds it. In the nodes bucket (TTL
// PresenceTTL) each node keeps one liveness key, node.<token>, that it
// renews three times per TTL: one request per node per renewal, whatever
// its number of clients and rooms. A node's claims hold while its liveness
// key does.
//
// Every node watches both buckets. It keeps the claims in memory, and so
// answers Members and Rooms without asking NATS. When a liveness key
// expires, JetStream places a marker that every watcher sees; each node
// then removes the dead node's claims (reap), each at the revision it saw,
// so that only the dead node's entries go. A holder the node has no
// liveness key for (it died before this node joined, or this node missed
// its marker while cut off, or its renewals stopped coming) is checked
// with one Get, and reaped if its key is gone and its claims are older
// than the TTL (a direct Get may be answered by a replica that is behind).
//
// A node whose own liveness key lapsed (it stalled, or was cut off from
// NATS, past the TTL) takes a new token and claims its keys again under
// it, while it goes on renewing the new key (reclaimKeys): a nickname
// another node's client took meanwhile is lost (OnClaimLost). Its
// clients' lines were refused from two thirds of the TTL on (ClaimsFresh),
// before any claim could lapse, and are until every key is claimed again.
// A key of this node's that someone else removes is claimed again the
// same way.
//
// Removals that NATS did not answer are made again, like puts, so that
// a claim this node gave up never outlives it.
//
// Lock order: claimMu before mu. No NATS request is made holding mu, and
// no callback is called holding either.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// markerTTL is how long the marker of a removed claim or an expired
// liveness key stays in its bucket: long enough for a node that was
// briefly cut off to see it when its watch resumes; then the key leaves no
// trace, so the bucket does not grow with every nickname ever used. A
// node that misses a marker still finds the dead node: its renewals stop.
const markerTTL = 15 * time.Minute

// reclaimers is how many keys a node claims again at once after its
// liveness key lapsed, so that a node with many clients is done well
// within the TTL even when NATS is far away.
const reclaimers = 16

// presence is a node's view of the cluster's claims and live nodes. Its
// fields are guarded by Node.mu.
type presence struct {
	token  string              // this node's liveness token now
	tokens map[string]bool     // every token this node has had
	held   map[string]uint64   // keys this node holds, at the revisions it wrote (0: not yet written)
	mine   map[string][]string // this node's members, by room in lower case
	seen   map[string]claim    // every claim the watch has seen, by key
	rooms  map[string]map[string]string
	// rooms indexes seen's members: room in lower case → Nick → holder.
	live    map[string]time.Time // tokens whose liveness key is there, with when it was last seen renewed
	dead    map[string]bool      // tokens whose liveness key is gone: their claims are reaped
	unknown map[string]bool      // holders not known to be live or dead: reap checks them
	up      bool                 // connected to NATS
	// written holds the presence writes not yet made, in order: Enter
	// and drop queue them and return at once, so that a server may call
	// them under its lock; writePresence makes them. Only a key's last
	// write counts, so a key is queued once (queued), and the queue is
	// never longer than the keys this node has held since NATS last
	// answered.
	written []presenceWrite
	queued  map[string]int  // index in written, by key
	pending map[string]bool // held keys to claim again (reclaimKeys)
	lost    []string        // nicknames lost, for tellLost to report
}

// claim is an entry of the claims bucket.
type claim struct {
	holder  string // the token of the node holding it
	rev     uint64
	created time.Time
}

// presenceWrite is a key to write (put) or remove. A removal is made at
// rev; at rev 0 (the write's revision is not known), only if the key is
// this node's.
type presenceWrite struct {
	key string
	put bool
	rev uint64
}

func newPresence(token string) presence {
	return presence{
		token:   token,
		tokens:  map[string]bool{token: true},
		held:    make(map[string]uint64),
		mine:    make(map[string][]string),
		seen:    make(map[string]claim),
		rooms:   make(map[string]map[string]string),
		live:    make(map[string]time.Time),
		dead:    make(map[string]bool),
		unknown: make(map[string]bool),
		pending: make(map[string]bool),
		up:      true,
	}
}

func liveKey(token string) string { return "node." + token }

func memberKey(room, nick string) string { return "in." + strings.ToLower(room) + "." + nick }

// parseMember returns the room and the Nick of a member's key.
func parseMember(key string) (room, nick string, ok bool) {
	rest, ok := strings.CutPrefix(key, "in.")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ".")
}

// newToken returns a token no node has had.
func newToken() string { return nats.NewInbox()[len(nats.InboxPrefix):] }

// answered reports whether err is NATS's answer (the request was refused:
// a wrong revision, say), rather than no answer at all.
func answered(err error) bool {
	var apiErr jetstream.JetStreamError
	return errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound)
}

// wake makes sure the goroutine woken by c looks at its work.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// joinPresence makes the node's liveness key and loads the cluster's
// claims and live nodes, starting the watches that keep them up to date.
// It returns once the node knows every claim made so far.
func (n *Node) joinPresence(ctx context.Context) (nodes, claims jetstream.KeyWatcher, err error) {
	rev, err := n.nodes.Create(ctx, liveKey(n.p.token), []byte(n.p.token))
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: liveness key: %w", err)
	}
	n.liveRev = rev
	// The watches last as long as the node: Close ends them by
	// cancelling n.ctx.
	if nodes, err = n.nodes.WatchAll(n.ctx); err != nil {
		return nil, nil, fmt.Errorf("cluster: watching nodes: %w", err)
	}
	if err := n.load(ctx, nodes, n.sawNode); err != nil {
		nodes.Stop()
		return nil, nil, err
	}
	if claims, err = n.claims.WatchAll(n.ctx); err != nil {
		nodes.Stop()
		return nil, nil, fmt.Errorf("cluster: watching claims: %w", err)
	}
	if err := n.load(ctx, claims, n.sawClaim); err != nil {
		nodes.Stop()
		claims.Stop()
		return nil, nil, err
	}
	return nodes, claims, nil
}

// load passes w's entries to saw up to the end of its initial values.
func (n *Node) load(ctx context.Context, w jetstream.KeyWatcher, saw func(jetstream.KeyValueEntry)) error {
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("cluster: presence watch ended while loading")
			case e == nil:
				return nil
			}
			saw(e)
		case <-ctx.Done():
			return fmt.Errorf("cluster: loading presence: %w", ctx.Err())
		}
	}
}

// watchPresence keeps the node's view of the claims and live nodes up to
// date until the watches end (Close).
func (n *Node) watchPresence(nodes, claims jetstream.KeyWatcher) {
	// A nil channel is never ready: a watch that ended is no longer read.
	nodeUpdates, claimUpdates := nodes.Updates(), claims.Updates()
	for nodeUpdates != nil || claimUpdates != nil {
		select {
		case e, ok := <-nodeUpdates:
			if !ok {
				nodeUpdates = nil
			} else if e != nil {
				n.sawNode(e)
			}
		case e, ok := <-claimUpdates:
			if !ok {
				claimUpdates = nil
			} else if e != nil {
				n.sawClaim(e)
			}
		}
	}
}

// sawNode takes in a change of a liveness key.
func (n *Node) sawNode(e jetstream.KeyValueEntry) {
	token, ok := strings.CutPrefix(e.Key(), "node.")
	if !ok {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.p.unknown, token)
	if e.Operation() == jetstream.KeyValuePut {
		if !n.p.dead[token] { // a token never lives again
			n.p.live[token] = time.Now()
		}
		return
	}
	// Expired (or removed): the node is gone, its claims with it. If it
	// is this node's token, this node lapsed: renew finds out, and
	// claims its keys again under a new one.
	n.markDeadLocked(token)
}

// markDeadLocked records that token's node is gone, for reap to remove
// its claims. n.mu must be held.
func (n *Node) markDeadLocked(token string) {
	delete(n.p.live, token)
	delete(n.p.unknown, token)
	n.p.dead[token] = true
	wake(n.toReap)
}

// sawClaim takes in a change of a claim.
func (n *Node) sawClaim(e jetstream.KeyValueEntry) {
	key := e.Key()
	n.mu.Lock()
	defer n.mu.Unlock()
	old, had := n.p.seen[key]
	if had {
		n.unindexLocked(key, old.holder)
	}
	_, held := n.p.held[key]
	if e.Operation() != jetstream.KeyValuePut {
		delete(n.p.seen, key)
		if held {
			// Removed, though this node holds it: reaped while this node
			// had lapsed, or by a node that took it for dead. Claim it
			// again (a nickname only if no one took it meanwhile).
			n.reclaimLocked(key)
		}
		return
	}
	holder := string(e.Value())
	n.p.seen[key] = claim{holder, e.Revision(), e.Created()}
	if room, nick, ok := parseMember(key); ok {
		if n.p.rooms[room] == nil {
			n.p.rooms[room] = make(map[string]string)
		}
		n.p.rooms[room][nick] = holder
	}
	switch {
	case n.p.dead[holder]:
		wake(n.toReap)
	case n.p.tokens[holder]:
	case !n.p.live[holder].IsZero():
	default:
		n.p.unknown[holder] = true
		wake(n.toReap)
	}
	nick, isNick := strings.CutPrefix(key, "nick.")
	if rev := n.p.held[key]; isNick && held && !n.p.tokens[holder] && e.Revision() > rev {
		// Another node's client has it now, written after this node's
		// claim: this node lapsed, and the claim was reaped and taken.
		n.forgetLocked(key)
		n.loseLocked(nick)
	}
}

// unindexLocked removes key, held by holder, from the members index.
// n.mu must be held.
func (n *Node) unindexLocked(key, holder string) {
	room, nick, ok := parseMember(key)
	if !ok {
		return
	}
	if n.p.rooms[room][nick] == holder {
		delete(n.p.rooms[room], nick)
		if len(n.p.rooms[room]) == 0 {
			delete(n.p.rooms, room)
		}
	}
}

// reap removes the claims of dead nodes, and finds out whether the holders
// the node knows no live liveness key for are dead, until Close. It is
// woken by the watch and at every renewal.
func (n *Node) reap() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.toReap:
		}
		n.checkUnknown()
		if !n.reapDead() {
			return
		}
	}
}

// checkUnknown asks NATS for the liveness key of each holder whose
// liveness is not known, and of each live node whose renewals stopped
// coming (this node may have missed its marker), and marks dead those
// whose key is gone and whose claims are all older than the TTL.
func (n *Node) checkUnknown() {
	stale := time.Now().Add(-n.cfg.PresenceTTL * 4 / 3)
	n.mu.Lock()
	for t, at := range n.p.live {
		if at.Before(stale) && !n.p.tokens[t] {
			delete(n.p.live, t)
			n.p.unknown[t] = true
		}
	}
	unknown := make([]string, 0, len(n.p.unknown))
	for t := range n.p.unknown {
		unknown = append(unknown, t)
	}
	n.mu.Unlock()
	for _, t := range unknown {
		ctx, cancel := n.op()
		_, err := n.nodes.Get(ctx, liveKey(t))
		cancel()
		n.mu.Lock()
		switch {
		case !n.p.unknown[t]: // the watch told meanwhile
		case err == nil:
			n.p.live[t] = time.Now()
			delete(n.p.unknown, t)
		case errors.Is(err, jetstream.ErrKeyNotFound) && n.claimedBeforeLocked(t, time.Now().Add(-n.cfg.PresenceTTL)):
			n.markDeadLocked(t)
		}
		n.mu.Unlock()
	}
}

// claimedBeforeLocked reports whether every claim of token's seen was
// made before t. n.mu must be held.
func (n *Node) claimedBeforeLocked(token string, t time.Time) bool {
	for _, c := range n.p.seen {
		if c.holder == token && !c.created.Before(t) {
			return false
		}
	}
	return true
}

// reapDead removes the claims of dead nodes, each at the revision seen,
// and forgets the dead tokens with no claims left. It reports false if
// the node is closing.
func (n *Node) reapDead() bool {
	type doomed struct {
		key string
		rev uint64
	}
	var gone []doomed
	n.mu.Lock()
	for key, c := range n.p.seen {
		if n.p.dead[c.holder] {
			gone = append(gone, doomed{key, c.rev})
		}
	}
	n.mu.Unlock()
	for _, d := range gone {
		// At the revision seen: a claim made again meanwhile, by its
		// node come back or by another, stays.
		ctx, cancel := n.op()
		n.claims.Purge(ctx, d.key, jetstream.LastRevision(d.rev), jetstream.PurgeTTL(markerTTL))
		cancel()
		if n.ctx.Err() != nil {
			return false
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	// A dead token with no claims left is forgotten; a stale write of
	// it would be checked again.
	held := make(map[string]bool)
	for _, c := range n.p.seen {
		held[c.holder] = true
	}
	for t := range n.p.dead {
		// One of this node's own stays dead: it must claim nothing under
		// it again (claimAgain waits for the next token).
		if !held[t] && !n.p.tokens[t] {
			delete(n.p.dead, t)
		}
	}
	return true
}

// ClaimNick reserves nick (folded) for a client of this node across the
// cluster, and reports whether it could: false if a client of another
// node has it. A node's claims last while it lives (see PresenceTTL).
func (n *Node) ClaimNick(nick string) (bool, error) {
	n.claimMu.RLock()
	defer n.claimMu.RUnlock()
	ctx, cancel := n.op()
	defer cancel()
	key := "nick." + nick
	n.mu.Lock()
	token := n.p.token
	n.mu.Unlock()
	var rev uint64
	var err error
	// Three tries: a name removed between the create and the get (its
	// release made meanwhile) is created again.
	for range 3 {
		rev, err = n.claims.Create(ctx, key, []byte(token))
		if !errors.Is(err, jetstream.ErrKeyExists) {
			break
		}
		var e jetstream.KeyValueEntry
		if e, err = n.claims.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		} else if err != nil {
			break
		}
		n.mu.Lock()
		ours := n.p.tokens[string(e.Value())]
		n.mu.Unlock()
		if !ours {
			return false, nil
		}
		// Ours already (a client here had it, and its release may still
		// be queued): written again, so that the queued removal, at the
		// old revision, fails.
		if rev, err = n.claims.Update(ctx, key, []byte(token), e.Revision()); !errors.Is(err, jetstream.ErrKeyExists) {
			break
		}
	}
	if err != nil {
		if !answered(err) {
			// It may have been made all the same: removed once NATS
			// answers, if it is this node's.
			n.mu.Lock()
			if _, held := n.p.held[key]; !held {
				n.queueLocked(presenceWrite{key: key})
			}
			n.mu.Unlock()
			wake(n.toWrite)
		}
		return false, fmt.Errorf("cluster: claiming a nickname: %w", err)
	}
	n.mu.Lock()
	n.p.held[key] = rev
	if i, queued := n.p.queued[key]; queued && !n.p.written[i].put {
		n.p.written[i].rev = rev // the removal, if it comes, must not remove this claim
		n.p.written[i].put = true
	}
	n.mu.Unlock()
	return true, nil
}

// ReleaseNick gives up a nickname this node claimed.
func (n *Node) ReleaseNick(nick string) { n.drop("nick." + nick) }

// Enter records across the cluster that nick, a client of this node, is
// in room, until Leave (or until the node is gone for PresenceTTL). The
// write is made in the background, in order with the node's other
// presence writes, so Enter never waits for NATS; one that fails is made
// again once NATS answers. It returns nil.
func (n *Node) Enter(room, nick string) error {
	key := memberKey(room, nick)
	n.mu.Lock()
	if _, held := n.p.held[key]; !held {
		n.p.held[key] = 0 // its revision once written
		r := strings.ToLower(room)
		n.p.mine[r] = append(n.p.mine[r], nick)
	}
	n.queueLocked(presenceWrite{key: key, put: true})
	n.mu.Unlock()
	wake(n.toWrite)
	return nil
}

// Leave records that nick is no longer in room.
func (n *Node) Leave(room, nick string) { n.drop(memberKey(room, nick)) }

// drop forgets a key this node holds and removes it in the background, in
// order with its other presence writes, at the revision the node wrote,
// so that it never removes another node's claim.
func (n *Node) drop(key string) {
	n.mu.Lock()
	rev, held := n.p.held[key]
	n.forgetLocked(key)
	if held {
		n.queueLocked(presenceWrite{key: key, rev: rev})
	}
	n.mu.Unlock()
	if held {
		wake(n.toWrite)
	}
}

// forgetLocked stops holding key. n.mu must be held.
func (n *Node) forgetLocked(key string) {
	if _, held := n.p.held[key]; !held {
		return
	}
	delete(n.p.held, key)
	delete(n.p.pending, key)
	if room, nick, ok := parseMember(key); ok {
		mine := n.p.mine[room]
		for i, m := range mine {
			if m == nick {
				mine[i] = mine[len(mine)-1]
				mine = mine[:len(mine)-1]
				break
			}
		}
		if len(mine) == 0 {
			delete(n.p.mine, room)
		} else {
			n.p.mine[room] = mine
		}
	}
}

// queueLocked queues w for writePresence, in place of a write of the same
// key still queued. n.mu must be held.
func (n *Node) queueLocked(w presenceWrite) {
	if i, ok := n.p.queued[w.key]; ok {
		n.p.written[i] = w
		return
	}
	if n.p.queued == nil {
		n.p.queued = make(map[string]int)
	}
	n.p.queued[w.key] = len(n.p.written)
	n.p.written = append(n.p.written, w)
}

// writePresence makes the presence writes Enter and drop queue, in order,
// until Close. A write NATS did not answer is queued again, to be made
// when NATS next answers (every renewal wakes it).
func (n *Node) writePresence() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.toWrite:
		}
		n.mu.Lock()
		ws := n.p.written
		n.p.written, n.p.queued = nil, nil
		n.mu.Unlock()
		for _, w := range ws {
			n.write(w)
			if n.ctx.Err() != nil {
				return
			}
		}
	}
}

// write makes one presence write with the node's token now.
func (n *Node) write(w presenceWrite) {
	n.claimMu.RLock()
	defer n.claimMu.RUnlock()
	ctx, cancel := n.op()
	defer cancel()
	n.mu.Lock()
	token := n.p.token
	n.mu.Unlock()
	if !w.put {
		n.remove(ctx, w)
		return
	}
	rev, err := n.claims.Put(ctx, w.key, []byte(token))
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, still := n.p.held[w.key]; still {
		if err == nil {
			n.p.held[w.key] = rev
		} else if _, queued := n.p.queued[w.key]; !queued {
			n.queueLocked(w) // again, once NATS answers
		}
	}
}

// remove makes the removal w: at its revision, or, at revision 0, of
// whatever revision holds one of this node's tokens.
func (n *Node) remove(ctx context.Context, w presenceWrite) {
	rev := w.rev
	var err error
	if rev == 0 {
		var e jetstream.KeyValueEntry
		if e, err = n.claims.Get(ctx, w.key); err == nil {
			n.mu.Lock()
			ours := n.p.tokens[string(e.Value())]
			n.mu.Unlock()
			if !ours {
				return
			}
			rev = e.Revision()
		}
	}
	if err == nil {
		err = n.claims.Purge(ctx, w.key, jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL))
	}
	if err == nil || answered(err) {
		return // removed, or not ours to remove (written again since)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	_, held := n.p.held[w.key]
	if _, queued := n.p.queued[w.key]; !held && !queued {
		n.queueLocked(w) // again, once NATS answers
	}
}

// Members returns the nicknames of the members of room on every node,
// in no particular order, as this node knows them: its own at once, the
// others' as the watch tells. It asks NATS nothing, and fails while the
// node is cut off from NATS, when what it knows of the others may be out
// of date.
func (n *Node) Members(room string) ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.p.up {
		return nil, errors.New("cluster: presence: NATS is unreachable")
	}
	return n.membersLocked(strings.ToLower(room)), nil
}

// Rooms returns, for every room with members on any node, by its name in
// lower case, the nicknames of its members, as Members does.
func (n *Node) Rooms() (map[string][]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.p.up {
		return nil, errors.New("cluster: presence: NATS is unreachable")
	}
	all := make(map[string][]string)
	for room := range n.p.rooms {
		all[room] = nil
	}
	for room := range n.p.mine {
		all[room] = nil
	}
	for room := range all {
		if m := n.membersLocked(room); len(m) > 0 {
			all[room] = m
		} else {
			delete(all, room)
		}
	}
	return all, nil
}

// membersLocked returns room's members: this node's own, and the others'
// the watch has seen. n.mu must be held.
func (n *Node) membersLocked(room string) []string {
	nicks := append([]string(nil), n.p.mine[room]...)
	for nick, holder := range n.p.rooms[room] {
		if !n.p.tokens[holder] && !n.p.dead[holder] {
			nicks = append(nicks, nick)
		}
	}
	return nicks
}

// renew renews the node's liveness key three times per PresenceTTL until
// Close. When the key lapsed, the node takes a new token (takeToken), and
// reclaimKeys claims its keys again under it while renew goes on renewing
// the new key.
func (n *Node) renew() {
	defer close(n.renewed)
	t := time.NewTicker(n.cfg.PresenceTTL / 3)
	defer t.Stop()
	lapsed := false
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		ok := false
		if !lapsed {
			ok, lapsed = n.renewLiveness()
		}
		if lapsed && n.takeToken() {
			lapsed, ok = false, true
		}
		if ok && !n.reclaiming.Load() {
			n.renewedAt.Store(start.UnixNano())
		}
		wake(n.toWrite)   // writes NATS did not answer
		wake(n.toReap)    // holders to check again
		wake(n.toReclaim) // keys to claim again
	}
}

// renewLiveness renews the liveness key at the revision the node wrote,
// and reports whether it did, and whether the key lapsed (expired) so the
// node must claim its keys again.
func (n *Node) renewLiveness() (ok, lapsed bool) {
	ctx, cancel := n.op()
	defer cancel()
	n.mu.Lock()
	token := n.p.token
	n.mu.Unlock()
	rev, err := n.nodes.Update(ctx, liveKey(token), []byte(token), n.liveRev)
	if err == nil {
		n.liveRev = rev
		return true, false
	}
	if !answered(err) {
		return false, false // NATS did not answer: try again
	}
	// Written by this node after all (an update that timed out here may
	// have reached NATS), or lapsed.
	e, err := n.nodes.Get(ctx, liveKey(token))
	switch {
	case err == nil && string(e.Value()) == token && e.Operation() == jetstream.KeyValuePut:
		n.liveRev = e.Revision()
		return true, false
	case err == nil || errors.Is(err, jetstream.ErrKeyNotFound):
		return false, true
	}
	return false, false
}

// takeToken gives the node a new liveness token, its last one having
// lapsed, and reports whether it could. From then on its writes are made
// under the new token, none made under the old one is still in flight,
// and every key it holds is to be claimed again (reclaimKeys).
func (n *Node) takeToken() bool {
	n.claimMu.Lock()
	defer n.claimMu.Unlock()
	ctx, cancel := n.op()
	defer cancel()
	fresh := newToken()
	rev, err := n.nodes.Create(ctx, liveKey(fresh), []byte(fresh))
	if err != nil {
		return false
	}
	n.mu.Lock()
	n.p.token, n.p.tokens[fresh] = fresh, true
	for key := range n.p.held {
		n.reclaimLocked(key)
	}
	n.mu.Unlock()
	n.liveRev = rev
	return true
}

// reclaimLocked marks key, which this node holds, to be claimed again.
// n.mu must be held.
func (n *Node) reclaimLocked(key string) {
	n.p.pending[key] = true
	n.reclaiming.Store(true)
	wake(n.toReclaim)
}

// reclaimKeys claims the keys marked to be claimed again under the node's
// token now, reclaimers at a time, until Close. A nickname another node's
// client took meanwhile is lost; a key NATS did not answer for is tried
// again at the next renewal.
func (n *Node) reclaimKeys() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.toReclaim:
		}
		n.mu.Lock()
		keys := make(chan string, len(n.p.pending))
		for key := range n.p.pending {
			keys <- key
		}
		clear(n.p.pending)
		n.mu.Unlock()
		close(keys)
		var wg sync.WaitGroup
		for range reclaimers {
			wg.Go(func() {
				for key := range keys {
					n.claimAgain(key)
				}
			})
		}
		wg.Wait()
		n.mu.Lock()
		if len(n.p.pending) == 0 {
			n.reclaiming.Store(false)
		}
		n.mu.Unlock()
	}
}

// claimAgain claims key again under the node's token now, if the node
// still holds it: at the revision it wrote (a nickname), or whatever is
// there (a member).
func (n *Node) claimAgain(key string) {
	n.claimMu.RLock()
	defer n.claimMu.RUnlock()
	n.mu.Lock()
	rev, held := n.p.held[key]
	token := n.p.token
	if held && n.p.dead[token] {
		// This node lapsed, and has yet to find out (renew): claimed
		// under its next token.
		n.p.pending[key] = true
		held = false
	}
	n.mu.Unlock()
	if !held {
		return
	}
	ctx, cancel := n.op()
	defer cancel()
	var err error
	if strings.HasPrefix(key, "nick.") {
		rev, err = n.claims.Update(ctx, key, []byte(token), rev)
		if answered(err) {
			// Reaped: ours again only if no one took it meanwhile.
			rev, err = n.claims.Create(ctx, key, []byte(token))
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			// Or written with this token after all: an update that
			// timed out here may have reached NATS.
			if e, gerr := n.claims.Get(ctx, key); gerr == nil && string(e.Value()) == token {
				rev, err = e.Revision(), nil
			}
		}
	} else {
		rev, err = n.claims.Put(ctx, key, []byte(token))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	_, still := n.p.held[key]
	switch {
	case !still:
		if err == nil { // dropped meanwhile: remove what was just written
			n.queueLocked(presenceWrite{key: key, rev: rev})
			wake(n.toWrite)
		}
	case errors.Is(err, jetstream.ErrKeyExists):
		n.forgetLocked(key) // another node's client's now
		if nick, isNick := strings.CutPrefix(key, "nick."); isNick {
			n.loseLocked(nick)
		}
	case err == nil:
		n.p.held[key] = rev
	default:
		n.p.pending[key] = true // at the next renewal
	}
}

// loseLocked queues nick, lost, for tellLost. n.mu must be held.
func (n *Node) loseLocked(nick string) {
	n.p.lost = append(n.p.lost, nick)
	wake(n.toTellLost)
}

// tellLost tells the function given to OnClaimLost of each nickname lost,
// in order, until Close: from a goroutine of its own, since the server
// claims a guest name for its client, a round trip to NATS, and neither
// the watch nor reclaimKeys should wait for it.
func (n *Node) tellLost() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.toTellLost:
		}
		n.mu.Lock()
		lost, f := n.p.lost, n.onClaimLost
		n.p.lost = nil
		n.mu.Unlock()
		for _, nick := range lost {
			if f != nil {
				f(nick)
			}
		}
	}
}

// ClaimsFresh reports whether this node's claims are surely still its own:
// whether a renewal of its liveness key began less than two thirds of
// PresenceTTL ago, long before the key could lapse and its claims be
// reaped and taken elsewhere, and no key of its is waiting to be claimed
// again. A node that stalls, or can't reach NATS, stops being fresh
// before its claims lapse; it is fresh again once its keys are claimed
// again, which also finds the claims it lost (OnClaimLost).
func (n *Node) ClaimsFresh() bool {
	return !n.reclaiming.Load() && time.Since(time.Unix(0, n.renewedAt.Load())) < n.cfg.PresenceTTL*2/3
}

// OnClaimLost registers a function told of each nickname (folded) this
// node claimed that another node's client holds now: its client here must
// lose it.
func (n *Node) OnClaimLost(f func(nick string)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.onClaimLost = f
}
