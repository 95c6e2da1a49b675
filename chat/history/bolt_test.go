package history

import (
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/natter-chat/natter/chat/accounts"
)

// Accounts share the bolt file with the history (accounts.NewBolt on
// DB); their bucket is not a room's, and age retention goes on past it.
func TestBoltTrimLeavesOtherStoresBucketsAlone(t *testing.T) {
	s, err := OpenBolt(t.TempDir(), Retention{MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc := accounts.NewBolt(s.DB())
	if err := acc.Register("alice", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	appendN(t, s, "lobby", 3, now.Add(-2*time.Hour))
	appendN(t, s, "zoo", 2, now.Add(-2*time.Hour)) // after "natter/accounts" in bucket order
	appendN(t, s, "zoo", 1, now)
	if n, err := s.Trim(now, 100); n != 5 || err != nil {
		t.Fatalf("Trim = %d, %v; want 5, nil", n, err)
	}
	if msgs, _ := s.After("zoo", 0, 10); fmt.Sprint(seqs(msgs)) != "[3]" {
		t.Fatalf("zoo kept %v; want [3]", seqs(msgs))
	}
	if err := acc.Check("alice", "correct horse battery"); err != nil {
		t.Fatalf("the account did not survive the trim: %v", err)
	}
}

// A record that can't be decoded is skipped, and reported, but trimming
// goes on around it and keeps what it removed.
func TestBoltTrimSkipsCorruptRecords(t *testing.T) {
	s, err := OpenBolt(t.TempDir(), Retention{MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	appendN(t, s, "lobby", 4, now.Add(-2*time.Hour))
	appendN(t, s, "lobby", 1, now)
	if err := s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketName("lobby")).Put(key(2), []byte("$2a$10$not a message"))
	}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Trim(now, 100)
	if n != 3 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Trim = %d, %v; want 3 and an error wrapping ErrCorrupt", n, err)
	}
	var kept []uint64
	s.DB().View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketName("lobby")).ForEach(func(k, _ []byte) error {
			kept = append(kept, keySeq(k))
			return nil
		})
	})
	if fmt.Sprint(kept) != "[2 5]" {
		t.Fatalf("kept %v; want [2 5]: the corrupt record and the recent one", kept)
	}
	// And the next trim finds nothing more to remove, still past it.
	if n, err := s.Trim(now, 100); n != 0 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("second Trim = %d, %v; want 0 and ErrCorrupt", n, err)
	}
}

// A room name with "/" would be taken for another store's bucket (see
// DB), so Append refuses it.
func TestBoltRefusesARoomNameWithASlash(t *testing.T) {
	s, err := OpenBolt(t.TempDir(), Retention{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs := []Message{{Room: "lobby"}, {Room: "natter/accounts"}}
	if err := s.Append(msgs); err == nil {
		t.Fatal("Append to natter/accounts succeeded")
	}
	if _, newest, _ := s.Bounds("lobby"); newest != 0 {
		t.Fatalf("lobby's newest = %d after a failed Append; want 0", newest)
	}
}

func keySeq(k []byte) uint64 {
	var n uint64
	for _, b := range k {
		n = n<<8 | uint64(b)
	}
	return n
}
