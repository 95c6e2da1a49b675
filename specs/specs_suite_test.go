// Package specs_test is natter's behaviour specification: Ginkgo specs that
// run every behaviour over two transports, the in-memory netfake network
// (label "netfake") and real loopback TCP (label "loopback"), with a
// goroutine-leak check around every spec. `make test` runs them and renders
// the results into SPECS.md beside this file. Files are numbered in the
// order the report presents them.
//
// Behaviours run once per transport through DescribeTableSubtree over
// [transports], whose entries carry the labels. A spec that makes sense on one
// transport only says so in its text and carries that transport's label on
// its It, not on a container, so the report keeps the container's heading.
package specs_test

import (
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/natter-chat/natter/chat/accounts"
)

// specTimeout bounds every spec, so a hang fails fast instead of stalling
// the run.
const specTimeout = 30 * time.Second

func TestSpecs(t *testing.T) {
	// Password hashing at its cheapest: the specs are about behaviour, and
	// bcrypt's default cost is slow on purpose.
	accounts.Cost = bcrypt.MinCost
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(10 * time.Second)
	SetDefaultEventuallyPollingInterval(5 * time.Millisecond)
	RunSpecs(t, "natter")
}

// Every spec starts by taking a goroutine baseline and registering the leak
// check as its first cleanup, so that the check runs last: after the
// servers, clients and connections the spec started have been torn down.
var _ = BeforeEach(func() {
	baseline := goleak.IgnoreCurrent()
	DeferCleanup(func() { goleak.VerifyNone(GinkgoT(), baseline) })
})
