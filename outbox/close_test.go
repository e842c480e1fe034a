package outbox_test

import (
	"context"
	"testing"

	"github.com/c360/natsclient/outbox"
)

// A Close whose ctx ended before the file was closed leaves the closing to
// a goroutine; a second Close must wait for it, so that once it returns nil
// the path can be opened again.
func TestCloseAfterATimedOutCloseWaitsForTheFile(t *testing.T) {
	tc := newEnv(t)
	path := outboxPath(t)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	// A Close with an ended ctx returns at once unless the forwarder has
	// already stopped; it has not, unless the scheduler ran it first, so a
	// few tries suffice.
	for try := 0; ; try++ {
		ob, err := outbox.Open(tc.Client, path)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		publishN(t, ob, subjectPfx+"c", "m", 3)
		if err := ob.Close(ended); err == nil {
			if try == 50 {
				t.Fatal("Close with an ended ctx never returned before the file was closed")
			}
			continue
		}
		if err := ob.Close(context.Background()); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		again, err := outbox.Open(tc.Client, path)
		if err != nil {
			t.Fatalf("Open right after the second Close returned: %v", err)
		}
		closeOutbox(t, again)
		return
	}
}
