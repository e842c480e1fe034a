// Package reliability_test is the reliability suite: each file is one story
// from issue 4, a test that breaks a real NATS server the way an edge network
// does and fails when the client stops keeping its promise.
package reliability_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// An in-process nats-server that shuts down while a mirror waits for
		// its origin (a leaf whose hub link was cut) leaves this goroutine
		// waiting up to 30s on a timer of its own; it holds nothing of ours.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*stream).setupMirrorConsumer.func3"))
}
