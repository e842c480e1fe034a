package natsclient

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// ValidateSubject reports whether subject can be published to: not empty, no
// whitespace or control characters, no empty tokens ("a..b", a leading or
// trailing dot) and no wildcards. The error matches ErrInvalidArgument and
// nats.ErrBadSubject, and says what is wrong.
func ValidateSubject(subject string) error {
	return validateSubject(subject, false)
}

// ValidateSubscribeSubject is ValidateSubject for subscriptions: the
// wildcards "*" (one token) and ">" (the last token) are allowed.
func ValidateSubscribeSubject(subject string) error {
	return validateSubject(subject, true)
}

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
// (BENCHMARKS.md).
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

// validateQueue checks a queue group name: not empty, no whitespace.
func validateQueue(queue string) error {
	if queue == "" {
		return invalidArgument("empty queue group name")
	}
	for i := 0; i < len(queue); i++ {
		if queue[i] <= ' ' || queue[i] == 0x7f {
			return invalidArgument("queue group %q: whitespace or control character at byte %d", queue, i)
		}
	}
	return nil
}
