package natsclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/c360/natsclient/testing/natstest"
)

// waitTimeout bounds every wait for an event in these tests.
const waitTimeout = 15 * time.Second

// placeContext bounds one attempt to create a replicated stream or bucket
// (natstest.Cluster.Place): an attempt that times out on a loaded machine is
// made again, with a context of its own.
func placeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// testContext is the context of the brief's testing snippet in
// seed_examples_test.go, a file kept as the brief wrote it; other tests call
// natstest.Context themselves.
func testContext(t *testing.T) context.Context {
	return natstest.Context(t, waitTimeout)
}
