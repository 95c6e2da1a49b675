package files

import (
	"errors"
	"time"

	"github.com/natter-chat/natter/chat/protocol"
)

// Errors of Offer, worded to be shown to the chat user. ErrBadName is
// wrapped with the reason.
var (
	// ErrBadName is a file name that is refused; see Service.Offer.
	ErrBadName = errors.New("bad file name")
	// ErrBadHash is a SHA-256 that is not 64 hexadecimal digits.
	ErrBadHash = errors.New("bad SHA-256: it must be 64 hexadecimal digits")
	// ErrBadSize is a size below 1 byte: empty files are not shared.
	ErrBadSize = errors.New("bad file size: it must be at least 1 byte")
	// ErrTooManyUploads refuses an offer while MaxOpenSlots of the same
	// uploader's slots are still open.
	ErrTooManyUploads = errors.New("too many uploads waiting: finish one, or let it expire, first")
	// ErrClosed is returned by a Service that was closed.
	ErrClosed = errors.New("file sharing is closed")
)

// TooLargeError refuses an offer larger than Max bytes.
type TooLargeError struct {
	Max int64 // the largest size accepted
}

// Error implements error.
func (e *TooLargeError) Error() string {
	return "the file is too large: the most is " + protocol.FormatBytes(e.Max)
}

// QuotaError refuses an offer that would take the uploader past the quota.
type QuotaError struct {
	// RetryAt is when enough of the uploader's quota frees for the offer,
	// unless a slot of theirs fails or expires sooner and refunds its charge.
	RetryAt time.Time
}

// Error implements error.
func (e *QuotaError) Error() string {
	return "upload quota used up: try again after " + e.RetryAt.UTC().Format("2006-01-02 15:04 MST")
}
