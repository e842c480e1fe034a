// Package classify is the one table of what an error means to natsclient
// and its outbox: whether the breaker counts it, whether a call is worth
// making again, whether a request that failed may still have been acted on,
// whether a dial can ever succeed, whether a stream refused a message for
// good. Every rule compares sentinels, types and server error codes, never
// message text (one phrase of nats.go's excepted, see TLSRefused).
//
// # The table
//
// Of a call's or a request's error:
//
//	error                                           TransportFailure  Transient  MaybeSent
//	a closed, stale or reconnecting connection, a   yes               yes        yes
//	  full reconnect buffer, a reset, refused or
//	  broken socket, io.EOF, any net.Error
//	the connected server's own answer missing       yes               yes        yes
//	  (ConnectionTimeout: a flush, the probe)
//	a request's timeout (nats.ErrTimeout, the       no                yes        yes
//	  call's deadline)
//	the caller's context canceled                   no                no         yes
//	no responders (NoResponders)                    no                yes        no
//	"duplicate message id is in process" (10158)    no                yes        yes
//	any other answer of the server (an API error)   no                no         no
//	ErrNotConnected (a new connection is dialled)   no                yes        no
//	ErrCircuitOpen, ErrClosed                       no                no         no
//	ErrInvalidArgument, a bad subject, header or    no                no         no
//	  key, over max_payload (refused unsent)
//
// Of a dial's error, Permanent: bad credentials, a TLS trust, handshake or
// certificate failure, a server refusing the client's certificate, a TLS
// mismatch, an unusable file or connection option of the client's own are
// permanent; everything else (a server down, reset, out of reach, slow) is
// worth dialling again.
//
// Of a stream's answer to the outbox's publish: StreamRefused (a message
// over the stream's limit, a full discard-new stream, a failed
// Nats-Expected-* header) and Unsendable (over max_payload, a malformed
// header or subject) send the message to the dead letters; anything else is
// sent again.
//
// TransportFailure is what the breaker counts (docs/design.md, "What counts
// as a failure"). Transient is what the JetStream and KV retries send again.
// MaybeSent is what the exactly-once write must read back before it may
// call the user's function again. Permanent is what ends Connect at once.
// WrongLastSequence and StreamMissing read two answers of the server by
// their codes and sentinels, for the KV store's errors. What "no responders"
// to a JetStream publish means beyond this (a stream that does not exist, or
// one beyond a leaf link that is down) is internal/capture's rule.
package classify

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/c360/natsclient/internal/errs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// transportErrors are the nats.go errors that say the connection to the
// server failed, as opposed to the caller's request being refused.
// nats.ErrTimeout is not among them: see ConnectionTimeout.
var transportErrors = []error{
	nats.ErrConnectionClosed,
	nats.ErrConnectionReconnecting,
	nats.ErrReconnectBufExceeded,
	nats.ErrStaleConnection,
	nats.ErrNoServers,
	nats.ErrInvalidConnection,
	nats.ErrDisconnected,
	io.EOF,
	io.ErrUnexpectedEOF,
	net.ErrClosed,
	syscall.ECONNREFUSED,
	syscall.ECONNRESET,
	syscall.EPIPE,
}

// connTimeoutError marks a timeout of the connection itself: the server the
// client is connected to did not answer a flush (its PONG) in time.
type connTimeoutError struct{ err error }

func (e *connTimeoutError) Error() string { return e.err.Error() }
func (e *connTimeoutError) Unwrap() error { return e.err }

// ConnectionTimeout marks err, a timeout waiting for the connected server's
// own answer, as one the breaker counts.
func ConnectionTimeout(err error) error { return &connTimeoutError{err: err} }

// TransportFailure decides what the breaker counts: dial failures, a closed
// or stale connection, a full reconnect buffer and the connected server not
// answering a flush in time count; the caller's context ending, no
// responders, invalid subjects, oversized payloads and anything the server
// refused for the data's sake do not.
//
// Nor does a request's timeout (nats.ErrTimeout, or the deadline of a
// JetStream call): it says that whoever answers the request did not answer
// in time, and that may be a service, a stream leader on another server, or
// the JetStream of a hub behind a leaf node's frozen or slow link, while the
// client's own connection is fine. Whether the connection answers is what
// the breaker is about, and a flush or the supervisor's probe asks it.
func TransportFailure(err error) bool {
	if err == nil {
		return false
	}
	var connTimeout *connTimeoutError
	if errors.As(err, &connTimeout) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errs.ErrInvalidArgument) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrMaxPayload) {
		return false
	}
	for _, t := range transportErrors {
		if errors.Is(err, t) {
			return true
		}
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// NoResponders reports whether a request found nobody to receive it: the
// stream or bucket it was for does not exist, or has no leader at the moment.
// Nothing was done with it.
func NoResponders(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// ErrCodeDuplicateInProcess is the server's answer to a message whose ID
// matches one it is still storing (nats-server's
// JSStreamDuplicateMessageConflict).
const ErrCodeDuplicateInProcess jetstream.ErrorCode = 10158

// DuplicateInProcess reports whether the server answered a resend with
// "duplicate message id is in process": the first copy, under the same ID,
// is still being stored.
func DuplicateInProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == ErrCodeDuplicateInProcess
}

// MaybeSent reports whether a failed JetStream request may nevertheless
// have reached the server and been acted on, because no answer came: a
// timeout, a lost connection, the caller giving up. An answer from the
// server (an API error), no responders (nobody received it) and a request
// refused before it was sent (bad input, a payload over max_payload, the
// breaker, a closed client) say for sure that nothing was done, with one
// exception: "duplicate message id is in process" answers a resend while
// the first copy, under the same ID, is being stored. That copy may land,
// so the outcome is still open (found by the linearizability check,
// reliability/linearizable_kv_test.go).
func MaybeSent(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case DuplicateInProcess(err):
		return true
	case errors.As(err, &apiErr), NoResponders(err),
		errors.Is(err, errs.ErrInvalidArgument), errors.Is(err, errs.ErrCircuitOpen),
		errors.Is(err, errs.ErrClosed), errors.Is(err, errs.ErrNotConnected),
		errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrInvalidMsg), errors.Is(err, nats.ErrBadHeaderMsg),
		errors.Is(err, jetstream.ErrInvalidKey), errors.Is(err, jetstream.ErrInvalidOption),
		errors.Is(err, jetstream.ErrInvalidJSAck):
		return false
	}
	return true
}

// Transient reports whether a request that failed without an answer is worth
// sending again: it timed out, found no responder (JetStream not ready yet
// after a restart), the connection failed, or the supervisor is dialling a
// new one. "Duplicate message id is in process" is one answer that is worth
// it too: a message sent again under the same ID, once the first copy is
// stored, is acknowledged as a duplicate of it. The open breaker and a closed
// client are final: a call fails fast then, rather than retry until its
// budget ends.
func Transient(err error) bool {
	if errors.Is(err, errs.ErrCircuitOpen) || errors.Is(err, errs.ErrClosed) || errors.Is(err, errs.ErrInvalidArgument) {
		return false
	}
	return errors.Is(err, errs.ErrNotConnected) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		DuplicateInProcess(err) || TransportFailure(err)
}

// WrongLastSequence reports whether the server refused a write because the
// subject was not at the expected sequence, by error code (10071, or 10164
// from replicated streams).
func WrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// StreamMissing reports whether err says a stream does not exist, in
// jetstream's words or in those of nats.go's older JetStream API (which
// jetstream's watchers still use).
func StreamMissing(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrStreamNotFound)
}
