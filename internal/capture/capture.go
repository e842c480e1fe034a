// Package capture says what "no responders" to a JetStream publish means:
// whether a stream that is reachable refuses the subject for good, or
// whoever would store it cannot be reached at the moment. It is the one
// place the rule lives; natsclient's PublishToStream and the outbox's
// forwarder both act on its Finding.
//
// # The rule
//
// A publish that nobody answered says nothing by itself: no stream captures
// the subject, or the stream that does has no leader at the moment, or it
// lives beyond a leaf node link that is down. So the JetStream of the
// server the publish went to is asked which stream captures the subject
// (STREAM.NAMES with a subject filter). "None" is final only when that
// JetStream is the only one the publish could have reached, and that is
// so when it has no JetStream domain (AccountInfo's Domain is empty):
//
//   - nats-server never lets a non-system account's $JS.API requests cross
//     a leaf node connection, but lets its messages cross: a stream beyond
//     a leaf link captures publishes made on this side. JetStreams joined
//     by leaf connections are told apart by domains, one on each side, as
//     nats-server's documentation recommends. With a domain, then, a
//     stream may live beyond a leaf link (down at the moment, or not):
//     "none here" is not a refusal.
//   - Without a domain, the server's JetStream is taken to be the whole of
//     JetStream in reach: a plain server or cluster, or a leaf that extends
//     its hub's JetStream (shared system account, same empty domain), whose
//     API requests go to the hub's meta leader and get no answer while the
//     link is down. A leaf without JetStream has no API of its own to
//     answer: with the link down nobody answers the question either.
//
// What this misjudges: a server without a domain that a leaf node with
// JetStream of its own connects to (or connects to as a leaf), when the
// stream lives on the other side. nats-server accepts JetStream on both
// sides of a leaf link with no domain on one of them; the client cannot
// see the link. Give every JetStream joined by leaf links a domain.
package capture

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Verdict is what the JetStream in reach says of a subject whose publish met
// no responders.
type Verdict int

const (
	// Unknown: the question itself got no answer in time, or an error of
	// the API. Worth asking again later; nothing is known.
	Unknown Verdict = iota
	// Captured: a stream captures the subject and did not answer the
	// publish (it has no leader at the moment, say). Transient.
	Captured
	// Beyond: no stream captures the subject in the JetStream that
	// answered, but that JetStream has a domain, and a stream beyond a leaf
	// node link may capture it. The publish cannot reach its stream now:
	// wait, don't refuse.
	Beyond
	// Nowhere: no stream captures the subject, said by the only JetStream
	// in reach. A permanent refusal of the message.
	Nowhere
	// NoJetStream: nobody answers JetStream's API on this connection: a
	// server without JetStream, JetStream not yet up after a restart, or a
	// leaf node without JetStream whose link to the hub is down.
	NoJetStream
)

// String names the verdict.
func (v Verdict) String() string {
	switch v {
	case Captured:
		return "captured"
	case Beyond:
		return "beyond"
	case Nowhere:
		return "nowhere"
	case NoJetStream:
		return "no JetStream"
	default:
		return "unknown"
	}
}

// Finding is the verdict and what it rests on.
type Finding struct {
	Verdict Verdict
	Stream  string // Captured: the stream that captures the subject
	Domain  string // Beyond: the domain of the JetStream that answered
	Err     error  // Unknown: what the question met
}

// Lookup asks js, the JetStream API of the server a publish to subject went
// to, what its "no responders" means (see the package comment). It makes
// one request, and a second (AccountInfo) only when no stream captures the
// subject there. ctx bounds both.
func Lookup(ctx context.Context, js jetstream.JetStream, subject string) Finding {
	name, err := js.StreamNameBySubject(ctx, subject)
	switch {
	case err == nil:
		return Finding{Verdict: Captured, Stream: name}
	case silent(err):
		return Finding{Verdict: NoJetStream}
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return Finding{Verdict: Unknown, Err: err}
	}
	info, err := js.AccountInfo(ctx)
	switch {
	case err != nil:
		// It answered a moment ago: a fault of this moment, not a verdict.
		return Finding{Verdict: Unknown, Err: err}
	case info.Domain == "":
		return Finding{Verdict: Nowhere}
	default:
		return Finding{Verdict: Beyond, Domain: info.Domain}
	}
}

// silent reports whether a JetStream API request found nobody to answer it.
func silent(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// Explain says in words why a publish to subject found no responders, for
// an error or a status: "no stream captures subject "h.data" in JetStream
// domain "edge"; one beyond a leaf node link may (is the link down?)".
func (f Finding) Explain(subject string) string {
	switch f.Verdict {
	case Captured:
		return fmt.Sprintf("stream %q captures subject %q but did not answer (no leader at the moment?)", f.Stream, subject)
	case Beyond:
		return fmt.Sprintf("no stream captures subject %q in JetStream domain %q; one beyond a leaf node link may (is the link to the hub down?)", subject, f.Domain)
	case Nowhere:
		return fmt.Sprintf("no stream captures subject %q", subject)
	case NoJetStream:
		return fmt.Sprintf("nobody answers for subject %q, nor JetStream's API (a leaf node whose link to the hub is down, or JetStream not running?)", subject)
	default:
		return fmt.Sprintf("nobody answers for subject %q, and which stream captures it is not known: %v", subject, f.Err)
	}
}
