package natsclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/c360/natsclient/testing/natstest"
)

// waitTimeout bounds every wait for an event in these tests.
const waitTimeout = 15 * time.Second

// testContext is the context of the brief's testing snippet in
// seed_examples_test.go, a file kept as the brief wrote it; other tests call
// natstest.Context themselves.
func testContext(t *testing.T) context.Context {
	return natstest.Context(t, waitTimeout)
}
