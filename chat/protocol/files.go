package protocol

// This file is file sharing's part of the protocol: the /upload command,
// the upload event that answers it with a slot, and the file event that
// posts a shared file. The bytes themselves never cross the chat
// connection; they go over HTTP (see chat/PROTOCOL.md, "Sharing files").

import (
	"fmt"
	"strconv"
	"strings"
)

// FileOffer is what an /upload command offers: the file's name, its size
// in bytes and, optionally, its SHA-256 in lower-case hex, which the
// upload must then match.
type FileOffer struct {
	Name   string
	Size   int64
	SHA256 string
}

// FileInfo describes a shared file, in a file event (and, with its name
// and size only, in an upload event).
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	MIME   string `json:"mime,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	URL    string `json:"url,omitempty"`
	// Expired is set, in history, on a file the server no longer serves
	// (past its retention, or evicted for room).
	Expired bool `json:"expired,omitempty"`
}

// parseUpload parses the arguments of "/upload [@NICK] NAME SIZE [SHA256]".
func parseUpload(args []string) (Command, error) {
	c := Command{Name: CmdUpload}
	bad := &UsageError{Command: CmdUpload}
	if len(args) > 0 && strings.HasPrefix(args[0], "@") {
		c.Nick, args = args[0][1:], args[1:]
		if c.Nick == "" {
			return Command{}, bad
		}
	}
	if len(args) < 2 || len(args) > 3 {
		return Command{}, bad
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || size < 0 {
		return Command{}, bad
	}
	c.File = FileOffer{Name: args[0], Size: size}
	if len(args) == 3 {
		c.File.SHA256 = args[2]
	}
	return c, nil
}

// FormatBytes writes n bytes for people, in SI units: "999 B", "1.2 MB".
func FormatBytes(n int64) string {
	if n < 1000 {
		return strconv.FormatInt(n, 10) + " B"
	}
	f := float64(n)
	for _, unit := range []string{"kB", "MB", "GB", "TB"} {
		f /= 1000
		if f < 999.95 || unit == "TB" {
			return fmt.Sprintf("%.1f %s", f, unit)
		}
	}
	panic("unreachable")
}

// shortHash is the start of a hash, enough for people to compare.
func shortHash(h string) string {
	if len(h) > 8 {
		return h[:8] + "…"
	}
	return h
}

// shellQuote quotes s for a POSIX shell, so that a pasted command line
// passes it as one word.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// appendFile appends "NAME (SIZE, sha256 HASH…): URL" for a file event.
func appendFile(b []byte, f *FileInfo) []byte {
	if f == nil {
		return append(b, "a file"...)
	}
	b = append(b, f.Name...)
	b = append(b, " ("...)
	b = append(b, FormatBytes(f.Size)...)
	if f.SHA256 != "" {
		b = append(b, ", sha256 "...)
		b = append(b, shortHash(f.SHA256)...)
	}
	b = append(b, "): "...)
	if f.Expired || f.URL == "" {
		return append(b, "expired"...)
	}
	return append(b, f.URL...)
}
