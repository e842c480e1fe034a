package natsclient

import (
	"fmt"

	"github.com/c360/natsclient/internal/classify"
	"github.com/nats-io/nats.go/jetstream"
)

// breakExactlyOnce is false in every real build. Builds with the test-only
// tag natsclient_broken set it (faultswitch_broken.go) to plant a known
// bug: a write whose acknowledgement was lost is taken for a revision
// conflict, so an update loop reads the key again and calls its function a
// second time although the first write may have been stored. The
// linearizability checks in reliability/ must catch it; docs/reliability.md
// shows them doing so.
var breakExactlyOnce = false

// lostAckAsConflict is the planted bug: the identity, unless
// breakExactlyOnce is set.
func lostAckAsConflict(err error) error {
	if !breakExactlyOnce || !classify.MaybeSent(err) {
		return err
	}
	return &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence,
		Description: fmt.Sprintf("natsclient_broken: lost acknowledgement (%v) taken for a conflict", err)}
}
