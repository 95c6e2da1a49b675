package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Defaults of the Config fields left zero.
const (
	// DefaultMaxFileBytes is the largest file one may offer: 100 MiB.
	DefaultMaxFileBytes int64 = 100 << 20
	// DefaultQuotaBytes is the number of bytes one uploader may offer per
	// QuotaPeriod: 1 GiB.
	DefaultQuotaBytes int64 = 1 << 30
	// DefaultQuotaPeriod is the sliding window of the quota: 24 hours.
	DefaultQuotaPeriod = 24 * time.Hour
	// DefaultUploadTTL is the life of an upload slot: 10 minutes.
	DefaultUploadTTL = 10 * time.Minute
	// DefaultStallTimeout is how long an upload request may send nothing
	// before it is ended: 30 seconds.
	DefaultStallTimeout = 30 * time.Second
	// DefaultMaxUploadsPerIP is the number of upload requests one address
	// may have in progress at once: 4.
	DefaultMaxUploadsPerIP = 4
	// DefaultRetain is the age at which files are removed: 30 days.
	DefaultRetain = 30 * 24 * time.Hour
	// DefaultMaxBytes is the disk budget of the stored blobs: 10 GiB.
	DefaultMaxBytes int64 = 10 << 30
	// DefaultSweepInterval is how often the retention goroutine runs: a
	// minute.
	DefaultSweepInterval = time.Minute
)

// MaxNameBytes is the longest file name accepted, in bytes.
const MaxNameBytes = 255

// Config configures a Service. Every zero field means its Default*
// constant; negative values are refused, except Retain's.
type Config struct {
	// Dir is the store's root, required: it holds the blobs (Dir/blobs),
	// the partial uploads (Dir/tmp) and the metadata (Dir/files.db).
	Dir string
	// BaseURL is the public URL prefix of the HTTP listener, such as
	// "http://127.0.0.1:8081"; a trailing "/" is dropped.
	BaseURL string
	// MaxFileBytes is the largest file one may offer.
	MaxFileBytes int64
	// QuotaBytes is the number of bytes one uploader (Offer.Quota) may
	// offer within any QuotaPeriod: a sliding window, charged at the offer
	// and refunded when the slot fails or expires.
	QuotaBytes int64
	// QuotaPeriod is the quota's window.
	QuotaPeriod time.Duration
	// UploadTTL is a slot's life: its upload must be complete within it.
	UploadTTL time.Duration
	// StallTimeout ends an upload request that sends no byte for this
	// long (real time, as it is a deadline on the connection).
	StallTimeout time.Duration
	// MaxUploadsPerIP is the number of upload requests one address (the
	// host of http.Request.RemoteAddr) may have in progress at once.
	MaxUploadsPerIP int
	// Retain is the age at which files are removed; negative keeps them
	// forever.
	Retain time.Duration
	// MaxBytes is the budget of the stored blobs, each counted once however
	// many uploads share it; past it the oldest uploads are evicted.
	MaxBytes int64
	// SweepInterval is how often the retention goroutine removes expired
	// slots and files (see Service.Sweep).
	SweepInterval time.Duration
	// Now is the clock of slot expiry, quota and retention; nil means
	// time.Now.
	Now func() time.Time
	// Store, if set, is where files are kept (see Store); nil means
	// blobs as files under Dir, records in Dir/files.db, within MaxBytes.
	// A Store given here is closed by Service.Close.
	Store Store

	// Check, if set, is called once an upload's bytes are all in, before
	// the file is stored: an error refuses the upload (409, with its
	// text), before storing it could evict anything. The chat server
	// checks there that the sender may still post where the offer said.
	Check func(Offer) error
	// OpenFile opens the temporary files uploads are written to, with
	// os.OpenFile's arguments; nil means os.OpenFile. Tests use it to make
	// writes fail.
	OpenFile func(name string, flag int, perm os.FileMode) (WriteFile, error)

	putDone func() // tests: called when a PUT handler has let go of its slot
}

// WriteFile is a temporary file an upload is written to; *os.File is one.
type WriteFile interface {
	io.Writer
	Sync() error
	Close() error
}

func openOSFile(name string, flag int, perm os.FileMode) (WriteFile, error) {
	return os.OpenFile(name, flag, perm)
}

// withDefaults returns c with its zero fields set, or an error naming a
// field that is wrong.
func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, errors.New("files: Config.Dir is required")
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxFileBytes", c.MaxFileBytes}, {"QuotaBytes", c.QuotaBytes},
		{"QuotaPeriod", int64(c.QuotaPeriod)}, {"UploadTTL", int64(c.UploadTTL)},
		{"StallTimeout", int64(c.StallTimeout)}, {"MaxUploadsPerIP", int64(c.MaxUploadsPerIP)},
		{"MaxBytes", c.MaxBytes}, {"SweepInterval", int64(c.SweepInterval)},
	} {
		if f.v < 0 {
			return c, fmt.Errorf("files: Config.%s is negative", f.name)
		}
	}
	setDefault(&c.MaxFileBytes, DefaultMaxFileBytes)
	setDefault(&c.QuotaBytes, DefaultQuotaBytes)
	setDefault(&c.QuotaPeriod, DefaultQuotaPeriod)
	setDefault(&c.UploadTTL, DefaultUploadTTL)
	setDefault(&c.StallTimeout, DefaultStallTimeout)
	setDefault(&c.MaxUploadsPerIP, DefaultMaxUploadsPerIP)
	setDefault(&c.Retain, DefaultRetain)
	setDefault(&c.MaxBytes, DefaultMaxBytes)
	setDefault(&c.SweepInterval, DefaultSweepInterval)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.OpenFile == nil {
		c.OpenFile = openOSFile
	}
	return c, nil
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// maxFile is the largest size an offer may have: the least of MaxFileBytes,
// MaxBytes and QuotaBytes, as a larger file could never be stored.
func (c *Config) maxFile() int64 {
	return min(c.MaxFileBytes, c.MaxBytes, c.QuotaBytes)
}
