package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// Errors from the name checks.
var (
	ErrNameLength   = errors.New("bad length")
	ErrNameChars    = errors.New("bad characters")
	ErrNameReserved = errors.New("reserved")
)

// GuestPrefix starts the nicknames the server makes up; clients can't choose
// one.
const GuestPrefix = "guest-"

// reserved are names only the system may appear to use. A nickname that
// looks like one of them, once look-alike characters are folded, is
// refused too.
var reserved = []string{"server", "system", "natter", "admin", "administrator", "root", "operator", "notice", "error", "everyone", "all", "nobody"}

// CheckNick reports why name can't be a nickname, or nil: 1 to max
// characters, ASCII letters, digits, "-" and "_", starting with a letter,
// not a guest name, and not a look-alike of a reserved name such as
// "server" or "admin".
func CheckNick(name string, max int) error {
	if err := checkName(name, max); err != nil {
		return err
	}
	if c := name[0]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
		return fmt.Errorf("%w: a nickname starts with a letter", ErrNameChars)
	}
	if strings.HasPrefix(strings.ToLower(name), GuestPrefix) {
		return fmt.Errorf("%w: %q names are given to guests by the server", ErrNameReserved, GuestPrefix+"N")
	}
	s := skeleton(name)
	for _, r := range reserved {
		if s == skeleton(r) {
			return fmt.Errorf("%w: %q looks like the reserved name %q", ErrNameReserved, name, r)
		}
	}
	return nil
}

// CheckRoom reports why name can't be a room name, or nil: 1 to max
// characters, ASCII letters, digits, "-" and "_".
func CheckRoom(name string, max int) error { return checkName(name, max) }

func checkName(name string, max int) error {
	if name == "" || len(name) > max {
		return fmt.Errorf("%w: 1 to %d characters", ErrNameLength, max)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: only letters, digits, - and _", ErrNameChars)
		}
	}
	return nil
}

// Fold returns the key under which names are unique: names that differ only
// in case are the same name.
func Fold(name string) string { return strings.ToLower(name) }

// skeleton folds the characters people mistake for one another, so that
// "5erver", "SERV3R" and "adm1n" compare equal to "server" and "admin".
func skeleton(name string) string {
	s := strings.ToLower(name)
	s = strings.NewReplacer("-", "", "_", "", "rn", "m", "vv", "w").Replace(s)
	return strings.Map(func(r rune) rune {
		switch r {
		case '0':
			return 'o'
		case '1', 'i', '!':
			return 'l'
		case '3':
			return 'e'
		case '4':
			return 'a'
		case '5':
			return 's'
		case '7':
			return 't'
		case '8':
			return 'b'
		case '9':
			return 'g'
		}
		return r
	}, s)
}
