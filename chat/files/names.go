package files

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// validateName checks a file name offered for upload. The name is shown in
// chat and sent in Content-Disposition, never used as a path on disk; it is
// refused if empty, longer than MaxNameBytes bytes, not valid UTF-8, "." or
// "..", or if it has a '/', a '\\', a control character (NUL included) or a
// bidirectional text control (which can make "gpj.exe" show as "exe.jpg").
// A leading '.' is allowed: ".bashrc" is a name people share.
func validateName(name string) error { return CheckName(name) }

// CheckName returns an error wrapping ErrBadName if name can't be a shared
// file's name (see Service.Offer), or nil.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: it is empty", ErrBadName)
	case len(name) > MaxNameBytes:
		return fmt.Errorf("%w: it is longer than %d bytes", ErrBadName, MaxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: it is not valid UTF-8", ErrBadName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: it can't be %q", ErrBadName, name)
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '\\':
			return fmt.Errorf("%w: it contains a %q", ErrBadName, r)
		case unicode.IsControl(r):
			return fmt.Errorf("%w: it contains a control character", ErrBadName)
		case isBidiControl(r):
			return fmt.Errorf("%w: it contains a bidirectional text control", ErrBadName)
		}
	}
	return nil
}

// isBidiControl reports whether r is an explicit bidirectional formatting
// character: embeddings, overrides, isolates and marks.
func isBidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 ||
		r == 0x200E || r == 0x200F || r == 0x061C
}
