package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestParseUpload(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		line string
		want Command
	}{
		{"/upload report.pdf 1200", Command{Name: CmdUpload, File: FileOffer{Name: "report.pdf", Size: 1200}}},
		{"/upload report.pdf 1200 " + hash, Command{Name: CmdUpload, File: FileOffer{Name: "report.pdf", Size: 1200, SHA256: hash}}},
		{"/upload @bob notes.txt 5", Command{Name: CmdUpload, Nick: "bob", File: FileOffer{Name: "notes.txt", Size: 5}}},
	} {
		got, err := ParseText(tt.line)
		if err != nil || got != tt.want {
			t.Errorf("ParseText(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
	for _, line := range []string{"/upload", "/upload a", "/upload a -1", "/upload a x", "/upload a 1 b c", "/upload @bob", "/upload @ a 1"} {
		if _, err := ParseText(line); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseText(%q): %v, want a usage error", line, err)
		}
	}
}

func TestUploadJSONRoundTrip(t *testing.T) {
	for _, c := range []Command{
		{Name: CmdUpload, File: FileOffer{Name: "a report.pdf", Size: 1200}},
		{Name: CmdUpload, Nick: "bob", File: FileOffer{Name: "x", Size: 1, SHA256: strings.Repeat("0", 64)}},
	} {
		got, err := DecodeJSON(c.AppendJSON(nil))
		if err != nil || got != c {
			t.Errorf("DecodeJSON(AppendJSON(%+v)) = %+v, %v", c, got, err)
		}
	}
	if _, err := DecodeJSON([]byte(`{"type":"upload","name":"x"}`)); !errors.Is(err, ErrUsage) {
		t.Errorf("an upload without a size: %v, want a usage error", err)
	}
	if _, err := DecodeJSON([]byte(`{"type":"upload","name":"a\u001bb","size":1}`)); !errors.Is(err, ErrBadJSON) {
		t.Errorf("a name with an escape: %v, want ErrBadJSON", err)
	}
}

func TestAppendTextOfFiles(t *testing.T) {
	v := View{Me: "bob", Current: "lobby"}
	hash := "3f2a" + strings.Repeat("0", 60)
	f := &FileInfo{Name: "report.pdf", Size: 1_200_000, MIME: "application/pdf", SHA256: hash, URL: "http://h/f/TOKEN"}
	for _, tt := range []struct {
		ev   Event
		want string
	}{
		{Event{Type: TypeFile, Room: "lobby", From: "alice", File: f}, "alice shared report.pdf (1.2 MB, sha256 3f2a0000…): http://h/f/TOKEN\n"},
		{Event{Type: TypeFile, Room: "games", From: "alice", File: f}, "[#games] alice shared report.pdf (1.2 MB, sha256 3f2a0000…): http://h/f/TOKEN\n"},
		{Event{Type: TypeFile, From: "alice", To: "bob", File: f}, "[pm] alice shared report.pdf (1.2 MB, sha256 3f2a0000…): http://h/f/TOKEN\n"},
		{Event{Type: TypeFile, From: "bob", To: "alice", File: f}, "[pm to alice] bob shared report.pdf (1.2 MB, sha256 3f2a0000…): http://h/f/TOKEN\n"},
		{Event{Type: TypeFile, Room: "lobby", Seq: 9, History: true, From: "alice", File: &FileInfo{Name: "a", Size: 999, SHA256: hash, Expired: true}}, "[history 9] alice shared a (999 B, sha256 3f2a0000…): expired\n"},
		{Event{Type: TypeUpload, File: &FileInfo{Name: "it's.txt", Size: 2048}, URL: "http://h/u/SLOT", Expires: "2026-12-03T10:00:00Z"},
			"*** upload it's.txt (2.0 kB) before 2026-12-03T10:00:00Z: curl -g -T 'it'\\''s.txt' http://h/u/SLOT\n"},
	} {
		if got := string(tt.ev.AppendText(nil, v)); got != tt.want {
			t.Errorf("AppendText(%+v) =\n %q; want\n %q", tt.ev, got, tt.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 1_234_567: "1.2 MB", 1 << 30: "1.1 GB", 2_500_000_000_000: "2.5 TB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q; want %q", n, got, want)
		}
	}
}
