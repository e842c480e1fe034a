package natsclient_test

import (
	"testing"

	"github.com/c360/natsclient/testing/natstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// natstest's embedded servers may leave nats-server goroutines waiting on
	// timers of their own after a leaf lost its hub (see natstest.NewLeaf).
	goleak.VerifyTestMain(m, natstest.IgnoreGoroutines()...)
}
