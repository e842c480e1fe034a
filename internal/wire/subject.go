package wire

import (
	"fmt"

	"github.com/c360/natsclient/internal/errs"
	"github.com/nats-io/nats.go"
)

// ValidateSubject reports whether subject can be published to, and that its
// PUB line with no reply fits the control line (see natsclient's
// ValidateSubject).
func ValidateSubject(subject string) error {
	if err := validateSubject(subject, false); err != nil {
		return err
	}
	return CheckLine(subject, "PUB", len("PUB ")+len(subject)+len(" 0\r\n"))
}

// ValidateSubscribeSubject is ValidateSubject for subscriptions: the
// wildcards "*" (one token) and ">" (the last token) are allowed.
func ValidateSubscribeSubject(subject string) error {
	if err := validateSubject(subject, true); err != nil {
		return err
	}
	return CheckLine(subject, "SUB", len("SUB ")+len(subject)+len(" 1\r\n"))
}

// validateSubject takes the common case at the cost of plainSubject, and
// leaves the rest to explainSubject.
func validateSubject(subject string, wildcards bool) error {
	if plainSubject(subject) {
		return nil
	}
	return explainSubject(subject, wildcards)
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

// badSubject is the error for subject, saying why.
func badSubject(subject, why string) error {
	return fmt.Errorf("%w: subject %q: %s: %w", errs.ErrInvalidArgument, subject, why, nats.ErrBadSubject)
}

// ValidateQueue checks a queue group name: not empty, no whitespace, not so
// long that no SUB line could carry it.
func ValidateQueue(queue string) error {
	if queue == "" {
		return errs.InvalidArgument("empty queue group name")
	}
	if len(queue) > LongSubject {
		return errs.InvalidArgument("queue group name of %d bytes: longer than %d, half the %d-byte control-line limit of the server", len(queue), LongSubject, MaxControlLine)
	}
	for i := 0; i < len(queue); i++ {
		if queue[i] <= ' ' || queue[i] == 0x7f {
			return errs.InvalidArgument("queue group %q: whitespace or control character at byte %d", queue, i)
		}
	}
	return nil
}
