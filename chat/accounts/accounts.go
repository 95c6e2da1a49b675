// Package accounts keeps registered nicknames and their password hashes.
//
// Passwords are hashed with bcrypt (golang.org/x/crypto/bcrypt): a salted,
// deliberately slow hash whose cost and salt travel inside the hash, with a
// constant-time comparison. bcrypt uses a fixed, small amount of memory per
// check, so a burst of logins can't exhaust a small server's memory the way
// an argon2id setting strong enough to matter would; its 72-byte input
// limit is enforced as the longest password. A password never leaves this
// package except as a hash.
package accounts

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"
)

// Password length limits, in bytes.
const (
	MinPassword = 8
	MaxPassword = 72 // bcrypt's limit
)

// Errors.
var (
	ErrExists       = errors.New("that name is already registered")
	ErrUnknown      = errors.New("no account has that name")
	ErrWrong        = errors.New("wrong password")
	ErrPasswordRule = fmt.Errorf("a password is %d to %d bytes of UTF-8", MinPassword, MaxPassword)
)

// Store keeps accounts by name, case-insensitively.
type Store interface {
	// Register creates an account for name with password.
	Register(name, password string) error
	// Check reports whether password is name's, returning ErrUnknown or
	// ErrWrong if not.
	Check(name, password string) error
	// Exists reports whether name is registered.
	Exists(name string) (bool, error)
}

// Cost is the bcrypt cost of new hashes.
var Cost = bcrypt.DefaultCost

func key(name string) []byte { return []byte(strings.ToLower(name)) }

// Hash returns the hash to store for a new account's password, or
// ErrPasswordRule; for stores outside this package.
func Hash(password string) ([]byte, error) { return hash(password) }

// Verify checks password against a stored hash, h, nil if the account does
// not exist, returning ErrUnknown or ErrWrong if it does not match. It
// takes as long either way.
func Verify(h []byte, password string) error { return check(h, password) }

func hash(password string) ([]byte, error) {
	if len(password) < MinPassword || len(password) > MaxPassword || !utf8.ValidString(password) {
		return nil, ErrPasswordRule
	}
	return bcrypt.GenerateFromPassword([]byte(password), Cost)
}

func check(h []byte, password string) error {
	if h == nil {
		// Spend the same time as a real check, so that probing for names
		// by timing tells nothing.
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return ErrUnknown
	}
	if bcrypt.CompareHashAndPassword(h, []byte(password)) != nil {
		return ErrWrong
	}
	return nil
}

var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not anyone's password"), Cost)
	return h
})

// bucket is where a bolt database keeps accounts.
var bucket = []byte("natter/accounts")

// Bolt is a Store in a bbolt database, beside the message history.
type Bolt struct{ db *bolt.DB }

// NewBolt returns a Store in db.
func NewBolt(db *bolt.DB) *Bolt { return &Bolt{db: db} }

// Register implements Store.
func (s *Bolt) Register(name, password string) error {
	h, err := hash(password)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		if b.Get(key(name)) != nil {
			return ErrExists
		}
		return b.Put(key(name), h)
	})
}

// Check implements Store.
func (s *Bolt) Check(name, password string) error {
	var h []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket); b != nil {
			if v := b.Get(key(name)); v != nil {
				h = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return check(h, password)
}

// Exists implements Store.
func (s *Bolt) Exists(name string) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket); b != nil {
			ok = b.Get(key(name)) != nil
		}
		return nil
	})
	return ok, err
}

// Memory is a Store in memory, lost when the process ends.
type Memory struct {
	mu     sync.Mutex
	hashes map[string][]byte
}

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory { return &Memory{hashes: make(map[string][]byte)} }

// Register implements Store.
func (s *Memory) Register(name, password string) error {
	h, err := hash(password)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hashes[string(key(name))] != nil {
		return ErrExists
	}
	s.hashes[string(key(name))] = h
	return nil
}

// Check implements Store.
func (s *Memory) Check(name, password string) error {
	s.mu.Lock()
	h := s.hashes[string(key(name))]
	s.mu.Unlock()
	return check(h, password)
}

// Exists implements Store.
func (s *Memory) Exists(name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hashes[string(key(name))] != nil, nil
}
