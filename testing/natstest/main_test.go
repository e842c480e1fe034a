package natstest_test

import (
	"testing"

	"github.com/c360/natsclient/testing/natstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// What a user's TestMain does (see NewLeaf); leak_test.go checks that it
	// covers what it is for.
	goleak.VerifyTestMain(m, natstest.IgnoreGoroutines()...)
}
