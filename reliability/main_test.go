// Package reliability_test is the reliability suite: each file is one story
// from issue 4, a test that breaks a real NATS server the way an edge network
// does and fails when the client stops keeping its promise.
package reliability_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
