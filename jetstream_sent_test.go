package natsclient

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// "Duplicate message id is in process" (10158) answers a resend that met the
// first copy, under the same ID, still being stored:
//   - for maybeSent, the write's outcome is open, not refused: the
//     linearizability check found a KV write reported failed that was then
//     stored;
//   - for transient, the message is worth sending again, under the same ID,
//     rather than reporting a failure the server is about to contradict: the
//     resend that finds the first copy stored is acknowledged as its
//     duplicate. A leaderless stream in a cluster answered so
//     (TestPublishToStreamWaitsForALeaderlessStream, in CI).
func TestDuplicateInProcess(t *testing.T) {
	inProcess := &jetstream.APIError{Code: 409, ErrorCode: errDuplicateInProcess, Description: "duplicate message id is in process"}
	for _, tc := range []struct {
		err                error
		maySent, sendAgain bool
	}{
		{inProcess, true, true},
		{fmt.Errorf("publish: %w", inProcess), true, true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, false, false},
		{nats.ErrTimeout, true, true},
		{nats.ErrNoResponders, false, true},
		{fmt.Errorf("%w: %w", ErrCircuitOpen, inProcess), true, false},
	} {
		if got := maybeSent(tc.err); got != tc.maySent {
			t.Errorf("maybeSent(%v) = %v, want %v", tc.err, got, tc.maySent)
		}
		if got := transient(tc.err); got != tc.sendAgain {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.sendAgain)
		}
	}
}
