package natsclient

import (
	"errors"
	"fmt"

	"github.com/c360/natsclient/internal/classify"
	"github.com/nats-io/nats.go/jetstream"
)

// Key-Value errors. Each error a KVStore returns wraps the jetstream error
// beneath it as well, so that errors.Is matches both ours and nats.go's:
//
//	errors.Is(err, natsclient.ErrKVKeyNotFound)    // and jetstream.ErrKeyNotFound
//	errors.Is(err, natsclient.ErrKVRevisionMismatch) // and jetstream.ErrKeyRevisionMismatch (Update)
//	                                                 // or jetstream.ErrKeyExists (Create)
var (
	// ErrKVKeyNotFound is matched when a key does not exist or was deleted.
	ErrKVKeyNotFound = errors.New("natsclient: kv: key not found")
	// ErrKVRevisionMismatch is matched when a compare-and-swap write lost to
	// another writer: the key was no longer at the expected revision (Update)
	// or already existed (Create).
	ErrKVRevisionMismatch = errors.New("natsclient: kv: revision mismatch (concurrent update)")
	// ErrKVMaxRetriesExceeded is matched when an update loop ran out of
	// retries; such an error also matches ErrKVRevisionMismatch and says how
	// many attempts were made.
	ErrKVMaxRetriesExceeded = errors.New("natsclient: kv: max retries exceeded")
	// ErrKVUnknownOutcome is matched when a write's acknowledgement was lost
	// and it cannot be known whether the server stored it: the store could
	// not reach the server in time to read the answer back, or the message
	// that would say so is gone (a bucket with History 1 overwrote it). The
	// update function was not called again; the caller must look before
	// writing again. The error names the key, the revision the write expected
	// and its message ID (the Nats-Msg-Id header it would carry).
	ErrKVUnknownOutcome = errors.New("natsclient: kv: outcome of write unknown (acknowledgement lost)")
)

// IsKVNotFoundError reports whether err says that a key does not exist: it
// matches ErrKVKeyNotFound, jetstream.ErrKeyNotFound or
// jetstream.ErrKeyDeleted.
func IsKVNotFoundError(err error) bool {
	return err != nil && (errors.Is(err, ErrKVKeyNotFound) || errors.Is(err, jetstream.ErrKeyNotFound) ||
		errors.Is(err, jetstream.ErrKeyDeleted))
}

// IsKVConflictError reports whether err is a lost compare-and-swap: our
// ErrKVRevisionMismatch, jetstream.ErrKeyRevisionMismatch, jetstream.ErrKeyExists,
// or a JetStream API error with the "wrong last sequence" codes 10071 or
// 10164 (the latter from replicated buckets). It never looks at message text.
func IsKVConflictError(err error) bool {
	return err != nil && (errors.Is(err, ErrKVRevisionMismatch) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.Is(err, jetstream.ErrKeyExists) || classify.WrongLastSequence(err))
}

// kvError is the error of a KVStore call: it names the operation, bucket and
// key, and matches both a natsclient sentinel (when there is one) and the
// cause beneath it.
type kvError struct {
	op, bucket, key string
	sentinels       []error // ours, named in the message
	err             error
}

func (e *kvError) Error() string {
	where := e.bucket
	if e.key != "" {
		where += "/" + e.key
	}
	msg := "natsclient: kv " + e.op + " " + where + ": "
	for _, s := range e.sentinels {
		msg += sentinelText(s) + ": "
	}
	return msg + e.err.Error()
}

func (e *kvError) Unwrap() []error {
	return append(append(make([]error, 0, len(e.sentinels)+1), e.sentinels...), e.err)
}

// sentinelText is a sentinel's message without the "natsclient: kv: "
// prefix, which the kvError already carries.
func sentinelText(err error) string {
	const prefix = "natsclient: kv: "
	s := err.Error()
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):]
	}
	return s
}

// shortKey is a key as an error names it: a key too long to be valid is cut
// to its first 64 bytes, so the message stays readable.
func shortKey(key string) string {
	if len(key) <= 64 {
		return key
	}
	return fmt.Sprintf("%s...(%d bytes)", key[:64], len(key))
}

// maxRetriesError is returned when an update loop ran out of retries.
func (kv *KVStore) maxRetriesError(op, key string, attempts int, last error) error {
	var inner *kvError
	if errors.As(last, &inner) {
		last = inner.err
	}
	return &kvError{op: op, bucket: kv.bucket.name, key: key,
		sentinels: []error{ErrKVMaxRetriesExceeded, ErrKVRevisionMismatch},
		err: fmt.Errorf("gave up after %d attempts (MaxRetries %d), each lost to a concurrent writer: %w",
			attempts, kv.opts.MaxRetries, last)}
}

// classify wraps the error of one KV call with its sentinel. Conflicts on
// creates match jetstream.ErrKeyExists, on updates
// jetstream.ErrKeyRevisionMismatch, whichever of the codes 10071 and 10164
// the server used.
func (kv *KVStore) classify(op, key string, create bool, err error) error {
	var already *kvError
	if errors.As(err, &already) {
		return err
	}
	e := &kvError{op: op, bucket: kv.bucket.name, key: key, err: err}
	switch {
	case classify.StreamMissing(err) && !errors.Is(err, jetstream.ErrBucketNotFound):
		// The stream behind the bucket is gone: say so in the bucket's terms.
		e.err = fmt.Errorf("%w (%w)", jetstream.ErrBucketNotFound, err)
	case classify.WrongLastSequence(err):
		e.sentinels = []error{ErrKVRevisionMismatch}
		if create && errors.Is(err, jetstream.ErrKeyExists) {
			e.err = fmt.Errorf("%w: key exists", err) // code 10071 matches already; nats.go's words
		} else if create {
			e.err = fmt.Errorf("%w: %w", err, jetstream.ErrKeyExists)
		} else if !create && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			e.err = fmt.Errorf("%w: %w", err, jetstream.ErrKeyRevisionMismatch)
		}
	case IsKVConflictError(err):
		e.sentinels = []error{ErrKVRevisionMismatch}
	case IsKVNotFoundError(err):
		e.sentinels = []error{ErrKVKeyNotFound}
	}
	return e
}
