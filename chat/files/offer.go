package files

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

type slotState int

const (
	slotOpen    slotState = iota // waiting for its bytes
	slotDone                     // completed: the file was posted
	slotFailed                   // refused (size, hash, storage, post)
	slotExpired                  // not completed within UploadTTL
)

// slot is an upload slot. While busy, the request that set it owns hash,
// head and the temporary file; offset is read by HEAD at any time. The
// other fields are guarded by Service.mu.
type slot struct {
	token   string
	offer   Offer
	expires time.Time
	tmp     string  // the temporary file's path
	charge  *charge // its quota charge, nil once refunded or ended
	stored  bool    // its file was stored: a failure after that refunds nothing
	state   slotState
	ended   time.Time // when it left slotOpen
	busy    bool

	offset atomic.Int64 // bytes received and written
	hash   hash.Hash    // of the bytes received
	head   []byte       // the first 512 bytes, for sniffing
}

// MaxOpenSlots is how many open slots one uploader (Offer.Quota) may have
// at once, and MinCharge the least an offer takes from a quota (at most a
// 64th of the quota), so that a quota can't be spent on countless tiny
// slots.
const (
	MaxOpenSlots = 8
	MinCharge    = 4 << 10
)

// minCharge is the least an offer takes from a quota.
func (s *Service) minCharge() int64 { return min(MinCharge, s.cfg.QuotaBytes/64) }

// charge is bytes charged to a quota at a time.
type charge struct {
	at    time.Time
	bytes int64
	slot  *slot
}

// Offer checks an offer and returns a one-time upload slot for it, charging
// o.Size to the quota of o.Quota at once.
//
// It returns an error wrapping ErrBadName if the name is refused: empty,
// longer than MaxNameBytes bytes, not valid UTF-8, "." or "..", or with a
// '/', a '\\', a control character or a bidirectional text control (a
// leading '.' is allowed); ErrBadSize if o.Size is below 1 (empty files are
// not shared); ErrBadHash if o.SHA256 is given but is not 64 hex digits;
// a *TooLargeError if o.Size is over the least of MaxFileBytes, MaxBytes
// and QuotaBytes; a *QuotaError if the bytes offered under o.Quota within
// the last QuotaPeriod plus o.Size are over QuotaBytes; ErrClosed after
// Close. A slot that fails or expires refunds its charge.
func (s *Service) Offer(o Offer) (Slot, error) {
	if err := validateName(o.Name); err != nil {
		return Slot{}, err
	}
	if o.Size <= 0 {
		return Slot{}, ErrBadSize
	}
	if o.SHA256 != "" {
		o.SHA256 = strings.ToLower(o.SHA256)
		if b, err := hex.DecodeString(o.SHA256); err != nil || len(b) != sha256.Size {
			return Slot{}, ErrBadHash
		}
	}
	if max := s.cfg.maxFile(); o.Size > max {
		return Slot{}, &TooLargeError{Max: max}
	}
	token := rand.Text()
	sl := &slot{token: token, offer: o,
		tmp: filepath.Join(s.tmp, rand.Text()+".part")}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Slot{}, ErrClosed
	}
	defer s.removeDoomedLocked()
	cost := max(o.Size, s.minCharge())
	if at, ok := s.quotaLocked(o.Quota, cost, now); !ok {
		return Slot{}, &QuotaError{RetryAt: at}
	}
	open := 0
	for _, c := range s.quota[o.Quota] {
		if c.slot != nil && c.slot.state == slotOpen {
			open++
		}
	}
	if open >= MaxOpenSlots {
		return Slot{}, ErrTooManyUploads
	}
	sl.expires = now.Add(s.cfg.UploadTTL)
	sl.charge = &charge{at: now, bytes: cost, slot: sl}
	s.quota[o.Quota] = append(s.quota[o.Quota], sl.charge)
	s.slots[token] = sl
	return Slot{Token: token, URL: s.cfg.BaseURL + "/u/" + token, Expires: sl.expires}, nil
}

// quotaLocked reports whether size more bytes fit in key's quota at now, and
// if not, when enough will have left the window. It first ends the
// expired slots of key, refunding them, and forgets charges older than the
// window. s.mu must be held.
func (s *Service) quotaLocked(key string, size int64, now time.Time) (time.Time, bool) {
	for _, c := range slices.Clone(s.quota[key]) {
		if c.slot != nil {
			s.expireLocked(c.slot, now)
		}
	}
	s.pruneQuotaLocked(key, now)
	var used int64
	for _, c := range s.quota[key] {
		used += c.bytes
	}
	over := used + size - s.cfg.QuotaBytes
	if over <= 0 {
		return time.Time{}, true
	}
	var freed int64
	for _, c := range s.quota[key] {
		if freed += c.bytes; freed >= over {
			return c.at.Add(s.cfg.QuotaPeriod), false
		}
	}
	return now.Add(s.cfg.QuotaPeriod), false // unreachable: size <= QuotaBytes
}

// pruneQuotaLocked forgets key's charges that left the window.
func (s *Service) pruneQuotaLocked(key string, now time.Time) {
	cs := s.quota[key]
	kept := cs[:0]
	for _, c := range cs {
		if now.Before(c.at.Add(s.cfg.QuotaPeriod)) {
			kept = append(kept, c)
		} else if c.slot != nil {
			c.slot.charge = nil
		}
	}
	clear(cs[len(kept):])
	if len(kept) == 0 {
		delete(s.quota, key)
	} else {
		s.quota[key] = kept
	}
}

// refundLocked takes back what sl's charge holds beyond the bytes that
// came for it: those cost the uploader all the same.
func (s *Service) refundLocked(sl *slot) {
	if sl.charge == nil {
		return
	}
	if got := sl.offset.Load(); got > 0 {
		sl.charge.bytes = min(sl.charge.bytes, max(got, s.minCharge()))
		sl.charge.slot, sl.charge = nil, nil
		return
	}
	key := sl.offer.Quota
	cs := s.quota[key]
	for i, c := range cs {
		if c == sl.charge {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(s.quota, key)
	} else {
		s.quota[key] = cs
	}
	sl.charge = nil
}

// expireLocked ends sl if it is open, idle and past its expiry.
func (s *Service) expireLocked(sl *slot, now time.Time) {
	if sl.state == slotOpen && !sl.busy && !now.Before(sl.expires) {
		s.endLocked(sl, slotExpired, now)
	}
}

// endLocked moves the open slot sl to state: its temporary file is removed
// and, unless it is done, its charge refunded.
func (s *Service) endLocked(sl *slot, state slotState, now time.Time) {
	if sl.state != slotOpen {
		return
	}
	sl.state, sl.ended = state, now
	if state != slotDone {
		// Removed once the lock is let go (removeDoomedLocked): unlinking
		// a large file can take a while.
		s.doomed = append(s.doomed, sl.tmp)
		if !sl.stored { // once stored, it may have evicted others' files
			s.refundLocked(sl)
		}
	}
	sl.hash, sl.head = nil, nil
	sl.offer.Owner, sl.offer.Recipient = nil, nil // hold no chat session
	if sl.charge != nil {
		sl.charge.slot, sl.charge = nil, nil
	}
}

// removeDoomedLocked arranges for the temporary files of ended slots to be
// removed when s.mu is let go: it must be deferred before the deferred
// Unlock, or called after it.
func (s *Service) removeDoomedLocked() {
	doomed := s.doomed
	s.doomed = nil
	if len(doomed) == 0 {
		return
	}
	s.mu.Unlock()
	for _, p := range doomed {
		os.Remove(p)
	}
	s.mu.Lock()
}

// end is endLocked with the lock.
func (s *Service) end(sl *slot, state slotState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.removeDoomedLocked()
	s.endLocked(sl, state, s.cfg.Now())
}

// lookupSlotLocked finds an open slot by token, ending it first if it
// expired. If there is none, it returns the status and sentence to answer.
func (s *Service) lookupSlotLocked(token string) (*slot, int, string) {
	if s.closed {
		return nil, 503, "File sharing is closed."
	}
	sl := s.slots[token]
	if sl == nil {
		return nil, 404, "There is no such upload slot."
	}
	s.expireLocked(sl, s.cfg.Now())
	switch sl.state {
	case slotDone:
		return nil, 410, "This upload slot was already used."
	case slotFailed:
		return nil, 410, "This upload slot failed; ask for a new one."
	case slotExpired:
		return nil, 410, "This upload slot expired; ask for a new one."
	}
	return sl, 0, ""
}

// claim finds the open slot of token and marks it busy for the caller, who
// must release it.
func (s *Service) claim(token string) (*slot, int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.removeDoomedLocked()
	sl, code, msg := s.lookupSlotLocked(token)
	if sl == nil {
		return nil, code, msg
	}
	if sl.busy {
		return nil, 409, "Another upload to this slot is in progress."
	}
	sl.busy = true
	return sl, 0, ""
}

// release ends a claim, expiring the slot if its time is up.
func (s *Service) release(sl *slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.removeDoomedLocked()
	sl.busy = false
	s.expireLocked(sl, s.cfg.Now())
}

// acquireAddr counts an upload request from host, unless it has
// MaxUploadsPerIP in progress already.
func (s *Service) acquireAddr(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[host] >= s.cfg.MaxUploadsPerIP {
		return false
	}
	s.perIP[host]++
	return true
}

func (s *Service) releaseAddr(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[host]--; s.perIP[host] <= 0 {
		delete(s.perIP, host)
	}
}

// sweepSlotsLocked expires the slots whose time is up and forgets those
// that ended more than an UploadTTL ago (their tokens then answer 404), and
// the quota charges that left the window.
func (s *Service) sweepSlotsLocked(now time.Time) {
	for token, sl := range s.slots {
		s.expireLocked(sl, now)
		if sl.state != slotOpen && !now.Before(sl.ended.Add(s.cfg.UploadTTL)) {
			delete(s.slots, token)
		}
	}
	for key := range s.quota {
		s.pruneQuotaLocked(key, now)
	}
}
