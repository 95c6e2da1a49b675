package client

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSafeFileNameStaysInItsDirectory(t *testing.T) {
	for name, want := range map[string]string{
		"report.pdf":        "report.pdf",
		"../../etc/passwd":  "passwd",
		`..\..\boot.ini`:    "boot.ini",
		"/abs/path.txt":     "path.txt",
		"..":                "file",
		".":                 "file",
		"":                  "file",
		"dir/":              "file",
		"a\x1b[2Jb":         "a_[2Jb",
		"gpj.\u202eexe.txt": "gpj._exe.txt",
	} {
		if got := SafeFileName(name); got != want {
			t.Errorf("SafeFileName(%q) = %q; want %q", name, got, want)
		}
	}
}

func TestFreePathNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	first, err := freePath(dir, "a.txt")
	if err != nil || first != filepath.Join(dir, "a.txt") {
		t.Fatalf("freePath = %q, %v", first, err)
	}
	if err := os.WriteFile(first, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if next, err := freePath(dir, "a.txt"); err != nil || next != filepath.Join(dir, "a-1.txt") {
		t.Fatalf("freePath with a.txt there = %q, %v", next, err)
	}
}
