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
