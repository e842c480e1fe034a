package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
)

// Close ends a forwarding round's dial in progress, even to a hub that
// accepts the connection and never answers (a frozen link): it does not
// wait for the client's timeout, here 30 s.
func TestCloseDuringADialToAFrozenHub(t *testing.T) {
	tc := newEnv(t, natstest.WithClientOptions(natsclient.WithTimeout(30*time.Second)))
	before := tc.Server.NumClients()
	tc.Server.Freeze()
	defer tc.Server.Thaw()

	// The client still counts itself connected (no ping has failed yet),
	// so the outbox's forwarder dials at once, and hangs in the handshake.
	ob := openOutbox(t, tc.Client, outboxPath(t))
	dialled := time.Now().Add(waitTimeout)
	for tc.Server.NumClients() <= before {
		if time.Now().After(dialled) {
			t.Fatalf("the forwarder's connection never reached the server (%d clients)", tc.Server.NumClients())
		}
		time.Sleep(10 * time.Millisecond) // polling the server's count: no event says it changed
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	start := time.Now()
	if err := ob.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("Close took %v: it waited for the dial's handshake timeout", waited.Round(time.Millisecond))
	}
}
