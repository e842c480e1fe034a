package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster.Place retries only the server's "no suitable peers for placement"
// and an attempt that timed out, however the error reaches it: from either of
// nats.go's JetStream APIs, and wrapped by natsclient.
func TestPlaceRetriesOnlyNoSuitablePeersAndTimeouts(t *testing.T) {
	for _, tc := range []struct {
		err   error
		retry bool
	}{
		{&nats.APIError{ErrorCode: noSuitablePeersCode, Description: "no suitable peers for placement"}, true},
		{&jetstream.APIError{ErrorCode: noSuitablePeersCode, Description: "no suitable peers for placement"}, true},
		{fmt.Errorf("natsclient: create bucket: %w", &jetstream.APIError{ErrorCode: noSuitablePeersCode}), true},
		{&jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamNameInUse}, false},
		{errors.New("no suitable peers for placement"), false}, // the code decides, not the text
		{fmt.Errorf("natsclient: create bucket: %w", context.DeadlineExceeded), true},
		{nats.ErrTimeout, true},
		{context.Canceled, false},
		{nil, false},
	} {
		if got := placeAgain(tc.err); got != tc.retry {
			t.Errorf("Place retries %v: %t, want %t", tc.err, got, tc.retry)
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

// Route ports come from below the kernel's ephemeral range, where no
// outgoing connection can take one between the choice and the bind, and are
// distinct and free when chosen.
func TestRoutePortsAreFreeAndBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	ports := freePorts(t, 5)
	seen := map[int]bool{}
	for _, p := range ports {
		if p < routePortMin || p >= low {
			t.Errorf("route port %d outside [%d, %d)", p, routePortMin, low)
		}
		if seen[p] {
			t.Errorf("route port %d chosen twice", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("route port %d is not free after freePorts: %v", p, err)
			continue
		}
		ln.Close()
	}
}
