package cluster

import (
	"testing"

	"github.com/natter-chat/natter/chat/history"
)

func TestTheNodesOfADeploymentShareTheHistoryID(t *testing.T) {
	ns := startNATS(t)
	a, b := join(t, ns), join(t, ns)
	if history.ID(a) == "" || history.ID(a) != history.ID(b) {
		t.Fatalf("nodes' IDs = %q and %q; want one id, not empty", history.ID(a), history.ID(b))
	}
	if other := join(t, startNATS(t)); history.ID(other) == history.ID(a) {
		t.Fatalf("another deployment's ID = %q too; want its own", history.ID(other))
	}
}
