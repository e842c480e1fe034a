package natsclient

import (
	"fmt"

	"github.com/c360/natsclient/internal/errs"
	"github.com/nats-io/nats.go"
)

// ValidateSubject reports whether subject can be published to: not empty, no
// whitespace or control characters, no empty tokens ("a..b", a leading or
// trailing dot), no wildcards, and short enough that the protocol line that
// carries it fits the server's control-line limit (MaxControlLine). The
// error matches ErrInvalidArgument and nats.ErrBadSubject, and says what is
// wrong.
//
// Publish, Request and Subscribe check the whole line they send, with the
// reply subject, queue group and size, so a subject this accepts may still
// be refused there when it is within a few bytes of the limit.
func ValidateSubject(subject string) error {
	if err := validateSubject(subject, false); err != nil {
		return err
	}
	return checkLine(subject, "PUB", len("PUB ")+len(subject)+len(" 0\r\n"))
}

// ValidateSubscribeSubject is ValidateSubject for subscriptions: the
// wildcards "*" (one token) and ">" (the last token) are allowed.
func ValidateSubscribeSubject(subject string) error {
	if err := validateSubject(subject, true); err != nil {
		return err
	}
	return checkLine(subject, "SUB", len("SUB ")+len(subject)+len(" 1\r\n"))
}

func validateSubject(subject string, wildcards bool) error {
	if plainSubject(subject) {
		return nil
	}
	return explainSubject(subject, wildcards)
}

// MaxControlLine is the longest protocol line, in bytes with its CRLF, that
// the client sends: nats-server's default max_control_line. A server closes
// a connection that sends a longer one, so the client refuses the call
// instead: a subject that is too long would otherwise cost a connection on
// every attempt. Servers do not announce their limit; against one configured
// lower, such a call costs a connection, and the breaker and its backoff
// bound how often.
//
// The server measures less than the whole line: the arguments after the
// operation name, without the CRLF ("subject [reply] [header size] size").
// The client counts the name and the CRLF too, so it is a few bytes
// stricter than the server, never looser. A message's headers are not part
// of the line (they count toward max_payload, with the data), but their
// size is written on it.
const MaxControlLine = 4096

// longSubject is the length from which the hot path checks the protocol
// line; shorter subjects fit whatever reply, queue or size goes with them
// (the reply and queue group are checked on their own).
const longSubject = MaxControlLine / 2

// Widths in bytes of the protocol line's parts other than the subject, as
// nats.go writes them. A subscription ID is at most a uint64. A message's
// sizes are at most max_payload, an int32 on the server (nats.go refuses a
// larger message before sending it), so at most sizeWidth digits each.
const (
	sidWidth  = len("18446744073709551615")
	sizeWidth = len("2147483647")
	crlf      = len("\r\n")
)

// pubLineLen is the length of the PUB line that sends size bytes to subject
// or, when headers is set, the longest HPUB line that can send them with
// headers: the header size and the total are counted at sizeWidth, since
// the headers that go out may be known only as they are sent (a propagator
// injects the trace context, JetStream's publish options add theirs).
func pubLineLen(subject, reply string, size int, headers bool) int {
	n := len("PUB ") + len(subject) + 1 + digits(size) + crlf
	if headers {
		n += len("H") + sizeWidth + 1 + sizeWidth - digits(size)
	}
	if reply != "" {
		n += len(reply) + 1
	}
	return n
}

// checkPub refuses a message whose PUB or HPUB line (see pubLineLen) would
// be over MaxControlLine.
func checkPub(subject, reply string, size int, headers bool) error {
	op := "PUB"
	if headers {
		op = "HPUB"
	}
	return checkLine(subject, op, pubLineLen(subject, reply, size, headers))
}

// subLineLen is the length of the SUB line for subject and queue, with the
// widest subscription ID.
func subLineLen(subject, queue string) int {
	n := len("SUB ") + len(subject) + 1 + sidWidth + crlf
	if queue != "" {
		n += len(queue) + 1
	}
	return n
}

func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// checkLine refuses a protocol line over MaxControlLine, naming the limit.
func checkLine(subject, op string, n int) error {
	if n <= MaxControlLine {
		return nil
	}
	return fmt.Errorf("%w: subject %q (%d bytes): its %s protocol line would be %d bytes, over the %d-byte control-line limit of the server (max_control_line): %w",
		ErrInvalidArgument, subject, len(subject), op, n, MaxControlLine, nats.ErrBadSubject)
}

// Byte classes of plainSubject's table.
const (
	plainByte uint8 = iota // may appear anywhere in a token
	dotByte                // separates tokens
	checkByte              // whitespace, control, DEL, or a wildcard: explainSubject decides
)

var subjectBytes = func() (t [256]uint8) {
	for b := 0; b <= ' '; b++ {
		t[b] = checkByte
	}
	t[0x7f], t['*'], t['>'] = checkByte, checkByte, checkByte
	t['.'] = dotByte
	return t
}()

// plainSubject is the hot path's check, one table lookup per byte: it
// reports whether subject is made only of non-empty tokens of plain bytes,
// which every caller accepts. False means only that explainSubject must look
// closer (and say what is wrong, if anything is). Publish pays for this on
// every call: it costs about a third of explainSubject's loop
// (docs/benchmarks.md, "What the targets need").
func plainSubject(subject string) bool {
	prev := dotByte // a leading dot makes an empty first token
	for i := 0; i < len(subject); i++ {
		k := subjectBytes[subject[i]]
		if k+prev >= 2 { // a checkByte, or a dot after a dot
			return false
		}
		prev = k
	}
	return prev == plainByte // false for "" and for a trailing dot
}

// explainSubject checks subject byte by byte and token by token, and says
// what is wrong with it.
func explainSubject(subject string, wildcards bool) error {
	if subject == "" {
		return badSubject(subject, "empty subject")
	}
	tokenStart := 0
	for i := 0; i <= len(subject); i++ {
		if i < len(subject) {
			b := subject[i]
			if b <= ' ' || b == 0x7f {
				return badSubject(subject, fmt.Sprintf("whitespace or control character at byte %d", i))
			}
			if b != '.' {
				continue
			}
		}
		token := subject[tokenStart:i]
		switch {
		case token == "":
			return badSubject(subject, fmt.Sprintf("empty token at byte %d", tokenStart))
		case token == "*" || token == ">":
			if !wildcards {
				return badSubject(subject, "wildcard "+token+" in a subject to publish to")
			}
			if token == ">" && i != len(subject) {
				return badSubject(subject, "wildcard > before the last token")
			}
		}
		tokenStart = i + 1
	}
	return nil
}

func badSubject(subject, why string) error {
	return fmt.Errorf("%w: subject %q: %s: %w", ErrInvalidArgument, subject, why, nats.ErrBadSubject)
}

// validateQueue checks a queue group name: not empty, no whitespace, not so
// long that no SUB line could carry it.
func validateQueue(queue string) error {
	if queue == "" {
		return errs.InvalidArgument("empty queue group name")
	}
	if len(queue) > longSubject {
		return errs.InvalidArgument("queue group name of %d bytes: longer than %d, half the %d-byte control-line limit of the server", len(queue), longSubject, MaxControlLine)
	}
	for i := 0; i < len(queue); i++ {
		if queue[i] <= ' ' || queue[i] == 0x7f {
			return errs.InvalidArgument("queue group %q: whitespace or control character at byte %d", queue, i)
		}
	}
	return nil
}
