//go:build !linux

package history

import "os"

// fdatasync makes f's written data durable: fsync where there is no
// fdatasync.
func fdatasync(f *os.File) error { return f.Sync() }
