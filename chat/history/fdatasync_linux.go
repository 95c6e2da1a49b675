package history

import (
	"os"
	"syscall"
)

// fdatasync makes f's written data durable, and as much of its metadata
// (its size) as reading the data back needs, but not its times: one flush
// of the data and, when f grew, of its inode.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
