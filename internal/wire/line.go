// Package wire holds what the NATS protocol and nats-server accept, checked
// before anything is sent: the control line's limit and the length of the
// lines the client writes, subjects, queue groups, stream and bucket names,
// Key-Value keys, the size of encoded headers, and the message IDs the client
// gives JetStream publishes. A call that would break one of these limits
// costs a connection (the server closes it) or is refused by the server for
// good, so natsclient refuses it first, with an ErrInvalidArgument error that
// says what is wrong; the exported checks are natsclient's ValidateSubject,
// ValidateKey and the others, which call these.
package wire

import (
	"fmt"

	"github.com/c360/natsclient/internal/errs"
	"github.com/nats-io/nats.go"
)

// MaxControlLine is nats-server's default max_control_line: the longest
// protocol line, in bytes with its CRLF, that the client sends. The server
// closes a connection that sends a longer one. natsclient.MaxControlLine,
// the same value, says how the client counts a line against it.
const MaxControlLine = 4096

// LongSubject is the length from which the hot path checks the protocol
// line; shorter subjects fit whatever reply, queue or size goes with them
// (the reply and queue group are checked on their own).
const LongSubject = MaxControlLine / 2

// Widths in bytes of the protocol line's parts other than the subject, as
// nats.go writes them. A subscription ID is at most a uint64. A message's
// sizes are at most max_payload, an int32 on the server (nats.go refuses a
// larger message before sending it), so at most sizeWidth digits each.
const (
	sidWidth  = len("18446744073709551615")
	sizeWidth = len("2147483647")
	crlf      = len("\r\n")
)

// PubLineLen is the length of the PUB line that sends size bytes to subject
// or, when headers is set, the longest HPUB line that can send them with
// headers: the header size and the total are counted at sizeWidth, since
// the headers that go out may be known only as they are sent (a propagator
// injects the trace context, JetStream's publish options add theirs).
func PubLineLen(subject, reply string, size int, headers bool) int {
	n := len("PUB ") + len(subject) + 1 + digits(size) + crlf
	if headers {
		n += len("H") + sizeWidth + 1 + sizeWidth - digits(size)
	}
	if reply != "" {
		n += len(reply) + 1
	}
	return n
}

// CheckPub refuses a message whose PUB or HPUB line (see PubLineLen) would
// be over MaxControlLine.
func CheckPub(subject, reply string, size int, headers bool) error {
	op := "PUB"
	if headers {
		op = "HPUB"
	}
	return CheckLine(subject, op, PubLineLen(subject, reply, size, headers))
}

// SubLineLen is the length of the SUB line for subject and queue, with the
// widest subscription ID.
func SubLineLen(subject, queue string) int {
	n := len("SUB ") + len(subject) + 1 + sidWidth + crlf
	if queue != "" {
		n += len(queue) + 1
	}
	return n
}

// digits is how many decimal digits n is written with.
func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// CheckLine refuses a protocol line over MaxControlLine, naming the limit.
func CheckLine(subject, op string, n int) error {
	if n <= MaxControlLine {
		return nil
	}
	return fmt.Errorf("%w: subject %q (%d bytes): its %s protocol line would be %d bytes, over the %d-byte control-line limit of the server (max_control_line): %w",
		errs.ErrInvalidArgument, subject, len(subject), op, n, MaxControlLine, nats.ErrBadSubject)
}
