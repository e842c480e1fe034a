// Package reliability_test is the reliability suite: each file is one story
// from issue 4, a test that breaks a real NATS server the way an edge network
// does and fails when the client stops keeping its promise.
package reliability_test

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
