package chat

import (
	"strings"
	"testing"

	"github.com/natter-chat/natter/chat/history"
)

func okFile() *history.File {
	return &history.File{Name: "a b.txt", Size: 3, MIME: "text/plain; charset=utf-8",
		SHA256: strings.Repeat("ab", 32), Token: "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
}

// TestStreamCheck checks that a cluster node takes from the stream what a
// client could have sent, and nothing else.
func TestStreamCheck(t *testing.T) {
	check := StreamCheck(Options{MaxLineBytes: 10, MaxNickLength: 8, MaxRoomNameLength: 5})
	ok := history.Message{Room: "lobby", Kind: "message", From: "alice", Text: "hi\tthere"}
	for _, tc := range []struct {
		name   string
		change func(*history.Message)
		want   string
	}{
		{"a message", func(*history.Message) {}, ""},
		{"an action", func(m *history.Message) { m.Kind = "action" }, ""},
		{"a guest's", func(m *history.Message) { m.From = "guest-12" }, ""},
		{"the longest text", func(m *history.Message) { m.Text = strings.Repeat("é", 5) }, ""},
		{"a notice", func(m *history.Message) { m.Kind = "notice" }, "kind"},
		{"too long", func(m *history.Message) { m.Text = strings.Repeat("x", 11) }, "length"},
		{"not UTF-8", func(m *history.Message) { m.Text = "\xff" }, "utf8"},
		{"ESC", func(m *history.Message) { m.Text = "\x1b[2J" }, "control"},
		{"NUL", func(m *history.Message) { m.Text = "a\x00" }, "control"},
		{"C1", func(m *history.Message) { m.Text = "\u009b" }, "control"},
		{"newline", func(m *history.Message) { m.Text = "a\nb" }, "control"},
		{"from server", func(m *history.Message) { m.From = "server" }, "from"},
		{"from a look-alike", func(m *history.Message) { m.From = "SERV3R" }, "from"},
		{"from with a colon", func(m *history.Message) { m.From = "bob: x" }, "from"},
		{"from no one", func(m *history.Message) { m.From = "" }, "from"},
		{"from a long name", func(m *history.Message) { m.From = "abcdefghi" }, "from"},
		{"from a long guest", func(m *history.Message) { m.From = "guest-123" }, "from"},
		{"from a fake guest", func(m *history.Message) { m.From = "guest-x" }, "from"},
		{"in a bad room", func(m *history.Message) { m.Room = "a.b" }, "room"},
		{"in a long room", func(m *history.Message) { m.Room = "lobbyy" }, "room"},
		{"a file", func(m *history.Message) { m.Kind, m.Text, m.File = "file", "", okFile() }, ""},
		{"a file with text", func(m *history.Message) { m.Kind, m.File = "file", okFile() }, "file"},
		{"a file without a file", func(m *history.Message) { m.Kind, m.Text = "file", "" }, "file"},
		{"a file with a path", func(m *history.Message) { m.Kind, m.Text, m.File = "file", "", okFile(); m.File.Name = "../x" }, "file"},
		{"a file with a bad hash", func(m *history.Message) { m.Kind, m.Text, m.File = "file", "", okFile(); m.File.SHA256 = "x" }, "file"},
		{"a file with a bad token", func(m *history.Message) { m.Kind, m.Text, m.File = "file", "", okFile(); m.File.Token = "a/b" }, "file"},
		{"a file of no size", func(m *history.Message) { m.Kind, m.Text, m.File = "file", "", okFile(); m.File.Size = 0 }, "file"},
		{"a file with a forged type", func(m *history.Message) { m.Kind, m.Text, m.File = "file", "", okFile(); m.File.MIME = "text/html\x1b" }, "file"},
		{"a message with a file", func(m *history.Message) { m.File = okFile() }, "file"},
	} {
		m := ok
		tc.change(&m)
		if got := check(m); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
