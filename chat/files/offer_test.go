package files

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	cfg.Dir = t.TempDir()
	s, err := New(cfg, func(Upload) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOfferTooLarge(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		max  int64
	}{
		{"default", Config{}, DefaultMaxFileBytes},
		{"MaxFileBytes", Config{MaxFileBytes: 100}, 100},
		{"MaxBytes", Config{MaxFileBytes: 100, MaxBytes: 50}, 50},
		{"QuotaBytes", Config{MaxFileBytes: 100, QuotaBytes: 30}, 30},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newService(t, c.cfg)
			if _, err := s.Offer(Offer{Name: "a", Size: c.max, Quota: "ann"}); err != nil {
				t.Fatalf("Offer of the most: %v", err)
			}
			_, err := s.Offer(Offer{Name: "a", Size: c.max + 1, Quota: "bob"})
			var tl *TooLargeError
			if !errors.As(err, &tl) || tl.Max != c.max {
				t.Fatalf("Offer of %d bytes: %v, want a TooLargeError with Max %d", c.max+1, err, c.max)
			}
		})
	}
	if got := (&TooLargeError{Max: 100 << 20}).Error(); got != "the file is too large: the most is 104.9 MB" {
		t.Errorf("Error() = %q", got)
	}
}

func TestOfferBadInput(t *testing.T) {
	s := newService(t, Config{})
	for _, c := range []struct {
		name string
		o    Offer
		want error
	}{
		{"empty name", Offer{Name: "", Size: 1}, ErrBadName},
		{"slash", Offer{Name: "a/b", Size: 1}, ErrBadName},
		{"backslash", Offer{Name: `a\b`, Size: 1}, ErrBadName},
		{"dot", Offer{Name: ".", Size: 1}, ErrBadName},
		{"dotdot", Offer{Name: "..", Size: 1}, ErrBadName},
		{"NUL", Offer{Name: "a\x00b", Size: 1}, ErrBadName},
		{"control", Offer{Name: "a\x1bb", Size: 1}, ErrBadName},
		{"C1 control", Offer{Name: "a\u0085b", Size: 1}, ErrBadName},
		{"bidi override", Offer{Name: "gpj\u202Eexe", Size: 1}, ErrBadName},
		{"invalid UTF-8", Offer{Name: "a\xffb", Size: 1}, ErrBadName},
		{"10,000 bytes", Offer{Name: strings.Repeat("a", 10000), Size: 1}, ErrBadName},
		{"256 bytes", Offer{Name: strings.Repeat("a", 256), Size: 1}, ErrBadName},
		{"zero size", Offer{Name: "a", Size: 0}, ErrBadSize},
		{"negative size", Offer{Name: "a", Size: -1}, ErrBadSize},
		{"short hash", Offer{Name: "a", Size: 1, SHA256: "abc"}, ErrBadHash},
		{"non-hex hash", Offer{Name: "a", Size: 1, SHA256: strings.Repeat("g", 64)}, ErrBadHash},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Offer(c.o)
			if !errors.Is(err, c.want) {
				t.Fatalf("Offer: %v, want %v", err, c.want)
			}
		})
	}
	for _, name := range []string{".bashrc", "résumé.pdf", strings.Repeat("é", 127), "a b"} {
		if _, err := s.Offer(Offer{Name: name, Size: 1}); err != nil {
			t.Errorf("Offer(%q): %v", name, err)
		}
	}
	if _, err := s.Offer(Offer{Name: "a", Size: 1, SHA256: strings.Repeat("AB", 32)}); err != nil {
		t.Errorf("Offer with an upper-case hash: %v", err)
	}
	_, err := s.Offer(Offer{Name: "a/b", Size: 1})
	if got := err.Error(); got != `bad file name: it contains a '/'` {
		t.Errorf("Error() = %q", got)
	}
}

func TestQuota(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport) {
		e := newEnv(t, tr, func(c *Config) { c.QuotaBytes, c.MaxFileBytes = 100, 100 })
		e.offer(Offer{Name: "a", Size: 60})
		e.clock.Advance(time.Minute)
		e.offer(Offer{Name: "b", Size: 30})
		_, err := e.s.Offer(Offer{Name: "c", Size: 20, Quota: "ann"})
		var qe *QuotaError
		if !errors.As(err, &qe) || !qe.RetryAt.Equal(epoch.Add(DefaultQuotaPeriod)) {
			t.Fatalf("Offer past the quota: %v, want a QuotaError with RetryAt %v", err, epoch.Add(DefaultQuotaPeriod))
		}
		if _, err := e.s.Offer(Offer{Name: "c", Size: 20, Quota: "bob"}); err != nil {
			t.Fatalf("another uploader's offer: %v", err)
		}

		// Unused slots expire and refund.
		e.clock.Advance(DefaultUploadTTL)
		e.offer(Offer{Name: "c", Size: 100})

		// A completed upload keeps its charge, and a failed one the bytes
		// it received: only what never came is refunded.
		e.clock.Advance(DefaultUploadTTL)
		e.upload("d", bytes.Repeat([]byte("d"), 60))
		if _, err := e.s.Offer(Offer{Name: "e", Size: 50, Quota: "ann"}); !errors.As(err, &qe) {
			t.Fatalf("Offer after an upload: %v, want a QuotaError", err)
		}
		sl := e.offer(Offer{Name: "e", Size: 40, SHA256: sum([]byte("x"))})
		resp, body := e.do("PUT", sl.URL, bytes.NewReader(bytes.Repeat([]byte("e"), 30)))
		wantStatus(t, resp, body, http.StatusBadRequest) // short: 30 of 40 came
		e.clock.Advance(DefaultUploadTTL)                // and it expires
		e.offer(Offer{Name: "f", Size: 10})
		if _, err := e.s.Offer(Offer{Name: "f", Size: 1, Quota: "ann"}); !errors.As(err, &qe) {
			t.Fatalf("Offer past 60 uploaded, 30 received and 10 offered: %v, want a QuotaError", err)
		}

		// Charges leave the window after QuotaPeriod.
		e.clock.Advance(DefaultQuotaPeriod)
		e.offer(Offer{Name: "g", Size: 60})
	})
}

func TestClose(t *testing.T) {
	s := newService(t, Config{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Offer(Offer{Name: "a", Size: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Offer after Close: %v", err)
	}
	if err := s.Sweep(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sweep after Close: %v", err)
	}
}

func TestNewConfig(t *testing.T) {
	if _, err := New(Config{}, func(Upload) error { return nil }); err == nil {
		t.Error("New without Dir: no error")
	}
	if _, err := New(Config{Dir: t.TempDir(), MaxBytes: -1}, func(Upload) error { return nil }); err == nil {
		t.Error("New with a negative MaxBytes: no error")
	}
	if _, err := New(Config{Dir: t.TempDir()}, nil); err == nil {
		t.Error("New without post: no error")
	}
}
