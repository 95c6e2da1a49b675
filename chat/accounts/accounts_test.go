package accounts

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"
)

func stores(t *testing.T) map[string]Store {
	Cost = bcrypt.MinCost // fast tests
	db, err := bolt.Open(filepath.Join(t.TempDir(), "a.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return map[string]Store{"bolt": NewBolt(db), "memory": NewMemory()}
}

func TestRegisterAndCheck(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if err := s.Register("Alice", "correct horse"); err != nil {
				t.Fatalf("Register = %v", err)
			}
			tests := []struct {
				name, password string
				want           error
			}{
				{"alice", "correct horse", nil},
				{"ALICE", "correct horse", nil},
				{"alice", "wrong horse!", ErrWrong},
				{"bob", "correct horse", ErrUnknown},
			}
			for _, tt := range tests {
				if err := s.Check(tt.name, tt.password); !errors.Is(err, tt.want) {
					t.Errorf("Check(%q, %q) = %v; want %v", tt.name, tt.password, err, tt.want)
				}
			}
			if err := s.Register("alice", "another one"); !errors.Is(err, ErrExists) {
				t.Errorf("second Register = %v; want ErrExists", err)
			}
			if ok, err := s.Exists("aLiCe"); !ok || err != nil {
				t.Errorf("Exists = %v, %v; want true, nil", ok, err)
			}
		})
	}
}

func TestPasswordRules(t *testing.T) {
	for name, s := range stores(t) {
		for _, pw := range []string{"short", string(make([]byte, 73)), "bad\xffutf8!"} {
			if err := s.Register("carol", pw); !errors.Is(err, ErrPasswordRule) {
				t.Errorf("%s: Register with %q = %v; want ErrPasswordRule", name, pw, err)
			}
		}
	}
}
