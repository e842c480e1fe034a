package natstest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster.Place retries only the server's "no suitable peers for placement",
// however the error reaches it: from either of nats.go's JetStream APIs, and
// wrapped by natsclient.
func TestPlaceRetriesOnlyNoSuitablePeers(t *testing.T) {
	for _, tc := range []struct {
		err   error
		retry bool
	}{
		{&nats.APIError{ErrorCode: noSuitablePeersCode, Description: "no suitable peers for placement"}, true},
		{&jetstream.APIError{ErrorCode: noSuitablePeersCode, Description: "no suitable peers for placement"}, true},
		{fmt.Errorf("natsclient: create bucket: %w", &jetstream.APIError{ErrorCode: noSuitablePeersCode}), true},
		{&jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamNameInUse}, false},
		{errors.New("no suitable peers for placement"), false}, // the code decides, not the text
		{nil, false},
	} {
		if got := noSuitablePeers(tc.err); got != tc.retry {
			t.Errorf("noSuitablePeers(%v) = %t, want %t", tc.err, got, tc.retry)
		}
	}

	calls := 0
	err := (&Cluster{t: t}).Place(func() error {
		calls++
		if calls < 3 {
			return &jetstream.APIError{ErrorCode: noSuitablePeersCode}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Place = %v after %d calls, want nil after 3", err, calls)
	}
}
