package clientcmd_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientLinksNoServerCode checks what the split into chat/client and
// chat/cli/clientcmd is for: cmd/client links neither the server nor its
// dependencies.
func TestClientLinksNoServerCode(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies with")
	}
	out, err := exec.Command(goCmd, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}",
		"github.com/natter-chat/natter/cmd/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	server := map[string]bool{ // packages of natter's server
		"github.com/natter-chat/natter/chat":               true,
		"github.com/natter-chat/natter/chat/cli/servercmd": true,
		"github.com/natter-chat/natter/chat/history":       true,
		"github.com/natter-chat/natter/chat/accounts":      true,
		"github.com/natter-chat/natter/chat/cluster":       true,
		"github.com/natter-chat/natter/chat/logline":       true,
	}
	// Modules only the server uses.
	modules := []string{"github.com/prometheus/", "go.etcd.io/bbolt", "github.com/nats-io/", "golang.org/x/crypto"}
	for _, pkg := range strings.Fields(string(out)) {
		if server[pkg] {
			t.Errorf("cmd/client links %s", pkg)
		}
		for _, m := range modules {
			if strings.HasPrefix(pkg, m) {
				t.Errorf("cmd/client links %s", pkg)
			}
		}
	}
}
