package natsclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/c360/natsclient/internal/classify"
	"github.com/nats-io/nats.go/jetstream"
)

// Where a bucket's writes go.
//
// A bucket may be a mirror of another (on a leaf node, a mirror of the
// hub's bucket, in the hub's domain or behind an external API prefix), and a
// client may reach a bucket through a domain's API prefix. nats.go's
// KeyValue writes such a bucket at its origin: the mirror's source, under
// the source's prefix (see mapStreamToKVS in nats.go's jetstream/kv.go). A
// KVStore does the same, and decides a write where it is decided: the
// revision a compare-and-swap expects and the read-back after a lost
// acknowledgement come from the origin stream, never from a mirror that may
// lag. Plain reads (Get, Keys, Watch) stay with the local bucket.

// ErrUnreachable matches the error of a call that needed a JetStream domain,
// an origin bucket or a stream nobody answers for: on a leaf node whose link
// to the hub is down, say (PublishToStream to a stream on the hub, a KV
// write through the leaf's mirror, any call in the hub's domain). Nothing
// was received, so a write that fails with it was not stored. It is not a
// failure of the client's connection and never counts against the breaker.
var ErrUnreachable = errors.New("natsclient: JetStream domain or origin bucket cannot be reached")

type unreachableError struct {
	what  string // "origin bucket \"cfg\" (API prefix $JS.hub.API)"
	cause error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("natsclient: %s cannot be reached: nobody answers for it (%v); on a leaf node, its link to the hub may be down",
		e.what, e.cause)
}

// Is makes the error match ErrUnreachable. It deliberately does not unwrap
// to its cause: "no responders" would make it look worth retrying.
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// kvOrigin is where a bound bucket's writes are decided.
type kvOrigin struct {
	bucket    string              // the origin bucket's name
	stream    string              // its stream, KV_<bucket>
	putPrefix string              // subject prefix of writes: [api prefix]$KV.<bucket>.
	js        jetstream.JetStream // the JetStream API the origin answers on
	remote    bool                // the origin is not the local bucket
	prefixed  bool                // the bucket is reached through a domain or API prefix
	home      string              // for errors: the bucket and its domain
	where     string              // for errors: the origin bucket and its domain
	// bound is the origin stream, opened on first use: a mirror's reads must
	// work while its origin cannot be reached.
	bound atomic.Pointer[originStream]
}

type originStream struct{ st jetstream.Stream }

// findOrigin works out where writes to the bucket name, bound on js to its
// stream st, go, as nats.go's KeyValue does.
func findOrigin(js jetstream.JetStream, name string, st jetstream.Stream) (*kvOrigin, error) {
	prefix := apiPrefix(js) // a domain or an import: writes carry it too
	o := &kvOrigin{bucket: name, stream: kvStreamName(name), js: js, putPrefix: prefix + "$KV." + name + "."}
	o.where = fmt.Sprintf("bucket %q", name)
	if dom := js.Options().Domain; dom != "" {
		o.where += fmt.Sprintf(" in JetStream domain %q", dom)
	}
	o.home, o.prefixed = o.where, prefix != ""
	m := st.CachedInfo().Config.Mirror
	if m == nil {
		o.bound.Store(&originStream{st: st})
		return o, nil
	}
	o.remote = true
	o.stream = m.Name
	o.bucket = strings.TrimPrefix(m.Name, "KV_")
	o.putPrefix = prefix + "$KV." + o.bucket + "."
	o.where = fmt.Sprintf("origin bucket %q of mirror %q", o.bucket, name)
	if m.External != nil && m.External.APIPrefix != "" {
		ext := m.External.APIPrefix
		var err error
		if o.js, err = jetstream.NewWithAPIPrefix(js.Conn(), ext); err != nil {
			return nil, fmt.Errorf("mirror %q: origin API prefix %q: %w", name, ext, err)
		}
		o.putPrefix = ext + ".$KV." + o.bucket + "."
		o.where += fmt.Sprintf(" (API prefix %s", ext)
		if dom, ok := strings.CutPrefix(ext, "$JS."); ok && strings.HasSuffix(dom, ".API") {
			o.where += fmt.Sprintf(", JetStream domain %q", strings.TrimSuffix(dom, ".API"))
		}
		o.where += ")"
	}
	return o, nil
}

// apiPrefix is the prefix js puts before API subjects when it is not the
// default one, with its final dot, as nats.go computes it; "" for the
// default. (JetStreamOptions.APIPrefix is empty for a domain's context.)
func apiPrefix(js jetstream.JetStream) string {
	opts := js.Options()
	switch {
	case opts.Domain != "":
		return "$JS." + opts.Domain + ".API."
	case opts.APIPrefix == "", opts.APIPrefix == jetstream.DefaultAPIPrefix:
		return ""
	case strings.HasSuffix(opts.APIPrefix, "."):
		return opts.APIPrefix
	}
	return opts.APIPrefix + "."
}

// subject is the subject key's messages have in the origin stream.
func (o *kvOrigin) subject(key string) string { return "$KV." + o.bucket + "." + key }

// originStream returns the origin stream, opening it on first use. A remote
// origin nobody answers for is an *unreachableError.
func (o *kvOrigin) originStream(ctx context.Context) (jetstream.Stream, error) {
	if b := o.bound.Load(); b != nil {
		return b.st, nil
	}
	st, err := o.js.Stream(ctx, o.stream)
	if err != nil {
		return nil, o.unreachable(err)
	}
	// Direct gets of the origin's stream may be answered by its mirrors
	// (MirrorDirect), which lag: the revision a write expects must be the
	// origin's own, so ask its leader through the JetStream API. The info
	// is this handle's alone until it is stored below.
	st.CachedInfo().Config.AllowDirect = false
	o.bound.Store(&originStream{st: st})
	return st, nil
}

// unreachable turns "nobody answered" from a remote origin into an
// *unreachableError; other errors pass as they are.
func (o *kvOrigin) unreachable(err error) error {
	if o.remote && (classify.NoResponders(err) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)) {
		return &unreachableError{what: o.where, cause: err}
	}
	return err
}

// lastMsg reads key's latest message at the origin; nil when it has none.
func (o *kvOrigin) lastMsg(ctx context.Context, key string) (*jetstream.RawStreamMsg, error) {
	st, err := o.originStream(ctx)
	if err != nil {
		return nil, err
	}
	m, err := st.GetLastMsgForSubject(ctx, o.subject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	return m, o.unreachable(err)
}

// msgAfter reads the first message on key's subject at or after seq, at the
// origin; nil when there is none.
func (o *kvOrigin) msgAfter(ctx context.Context, key string, seq uint64) (*jetstream.RawStreamMsg, error) {
	st, err := o.originStream(ctx)
	if err != nil {
		return nil, err
	}
	m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(o.subject(key)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	return m, o.unreachable(err)
}

// check asks, after a write to a remote origin met no responders, whether
// the origin can be reached at all: an *unreachableError when nobody answers
// for it, nil when it answers (the write may be tried again).
func (o *kvOrigin) check(ctx context.Context, err error) error {
	if !o.remote || !classify.NoResponders(err) {
		return nil
	}
	if _, serr := o.js.Stream(ctx, o.stream); serr != nil {
		if errors.Is(serr, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%s: %w (%w)", o.where, jetstream.ErrBucketNotFound, err)
		}
		return o.unreachable(serr)
	}
	return nil
}

// inDomain names the JetStream domain a missing bucket was looked for in,
// since a handle of another domain's bucket is rebound by name in the
// client's (see NewKVStore); "" for other errors.
func inDomain(js jetstream.JetStream, err error) string {
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return ""
	}
	dom := js.Options().Domain
	if dom == "" {
		return " (looked for in the connected server's own JetStream; a bucket of another domain needs Client.Domain(name).NewKVStore)"
	}
	return fmt.Sprintf(" (looked for in JetStream domain %q; a bucket of another domain needs Client.Domain(name).NewKVStore)", dom)
}

// homeUnreachable is bucketGone's answer for a bucket reached through a
// domain or API prefix, when asking for its stream met nobody either: the
// domain cannot be reached. nil otherwise.
func (o *kvOrigin) homeUnreachable(err, serr error) error {
	if o.prefixed && (classify.NoResponders(serr) || errors.Is(serr, jetstream.ErrJetStreamNotEnabled)) {
		return &unreachableError{what: o.home, cause: err}
	}
	return nil
}
