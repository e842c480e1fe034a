package classify

import (
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// refusingCodes are the JetStream error codes with which a stream refuses a
// message for the message's own sake: sending it again cannot succeed.
var refusingCodes = map[jetstream.ErrorCode]string{
	jetstream.JSErrCodeStreamMessageExceedsMaximum: "larger than the stream's limit",
	// 10077 is answered on a publish only for a stream with the discard-new
	// policy that is full (messages, bytes, or per subject) and for a
	// message too large for the store: both refusals of this message.
	10077: "the stream refuses new messages (full, with discard new)",
	// 10060, 10070, 10071 and 10164 refuse a message whose own
	// Nats-Expected-* headers (PublishMsg) do not hold.
	10060: "expected stream does not match",
	10070: "expected last message id does not match",
	jetstream.JSErrCodeStreamWrongLastSequence:         "expected last sequence does not match",
	jetstream.JSErrCodeStreamWrongLastSequenceConstant: "expected last sequence does not match",
}

// StreamRefused classifies a stream's answer to a publish by its error
// code, never by its text: true for a refusal of the message for good.
// Codes not listed (JetStream unavailable, no leader, timeouts) are
// transient: the message is worth sending again.
func StreamRefused(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		_, ok := refusingCodes[apiErr.ErrorCode]
		return ok
	}
	return false
}

// Unsendable classifies an error of the publish call itself: a message the
// connection refuses to send (over the server's max_payload, a malformed
// header or subject) will be refused on any connection to that server.
func Unsendable(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadHeaderMsg) ||
		errors.Is(err, nats.ErrBadSubject)
}
