package natsclient

import "github.com/c360/natsclient/internal/wire"

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
func ValidateSubject(subject string) error { return wire.ValidateSubject(subject) }

// ValidateSubscribeSubject is ValidateSubject for subscriptions: the
// wildcards "*" (one token) and ">" (the last token) are allowed.
func ValidateSubscribeSubject(subject string) error { return wire.ValidateSubscribeSubject(subject) }

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
const MaxControlLine = wire.MaxControlLine
