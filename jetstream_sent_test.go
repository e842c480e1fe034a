package natsclient

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A resend answered "duplicate message id is in process" (10158) met the
// first copy still being stored: the write's outcome is open, not refused.
// The linearizability check found a KV write reported failed that was
// then stored; this is the decision that was wrong.
func TestMaybeSentDuplicateInProcess(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 409, ErrorCode: errDuplicateInProcess, Description: "duplicate message id is in process"}, true},
		{fmt.Errorf("publish: %w", &jetstream.APIError{Code: 409, ErrorCode: errDuplicateInProcess}), true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, false},
		{nats.ErrTimeout, true},
		{nats.ErrNoResponders, false},
	} {
		if got := maybeSent(tc.err); got != tc.want {
			t.Errorf("maybeSent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// PublishToStream sends a message answered "duplicate message id is in
// process" again, under the same ID, rather than report a failure the server
// is about to contradict: the resend that finds the first copy stored is
// acknowledged as its duplicate. A leaderless stream in a cluster answered
// so (TestPublishToStreamWaitsForALeaderlessStream, in CI).
func TestTransientDuplicateInProcess(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 409, ErrorCode: errDuplicateInProcess, Description: "duplicate message id is in process"}, true},
		{fmt.Errorf("publish: %w", &jetstream.APIError{Code: 409, ErrorCode: errDuplicateInProcess}), true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, false},
		{fmt.Errorf("%w: %w", ErrCircuitOpen, &jetstream.APIError{Code: 409, ErrorCode: errDuplicateInProcess}), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
