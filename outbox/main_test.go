package outbox_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the leak check, or, when the crash tests re-run this binary
// as a child process, the child's part (child_test.go) instead.
func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(childMain(mode))
	}
	goleak.VerifyTestMain(m)
}
