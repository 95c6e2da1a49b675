package history

import (
	"testing"
	"time"
)

func TestMemoryStoresHaveIDsOfTheirOwn(t *testing.T) {
	a, b := NewMemory(Retention{}), NewMemory(Retention{})
	id := ID(a)
	if id == "" {
		t.Fatal("ID is empty")
	}
	if got := ID(a); got != id {
		t.Fatalf("ID = %q, then %q; want one id", id, got)
	}
	if ID(a) == ID(b) {
		t.Fatalf("two memory stores have the ID %q; want one each", ID(a))
	}
}

func TestABoltStoreKeepsItsID(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, Retention{MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := ID(s)
	if id == "" {
		t.Fatal("ID is empty")
	}
	// Trim walks every bucket: the id's must not trouble it.
	appendN(t, s, "lobby", 2, time.Now().Add(-2*time.Hour))
	if n, err := s.Trim(time.Now(), 10); n != 2 || err != nil {
		t.Fatalf("Trim = %d, %v; want 2, nil", n, err)
	}
	s.Close()

	s, err = OpenBolt(dir, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := ID(s); got != id {
		t.Fatalf("ID after reopening = %q; want %q, as before", got, id)
	}
	other, err := OpenBolt(t.TempDir(), Retention{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if ID(other) == id {
		t.Fatalf("two databases have the ID %q; want one each", id)
	}
}

// anonymous is a Store that does not say which history it holds.
type anonymous struct{ Store }

func TestIDOfAStoreWithoutOne(t *testing.T) {
	if got := ID(anonymous{NewMemory(Retention{})}); got != "" {
		t.Fatalf("ID = %q; want empty", got)
	}
}
