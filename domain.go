package natsclient

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/c360/natsclient/internal/classify"
	"github.com/c360/natsclient/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream domains.
//
// A leaf node at the edge runs JetStream in a domain of its own, and reaches
// the hub's JetStream through the hub's domain: the same API under the prefix
// $JS.<domain>.API. WithJetStreamDomain picks the domain of a client's own
// JetStream calls; Client.Domain gives a view of another one on the same
// client. Both rest on one rule: the supervisor's snapshot carries the
// default JetStream context of the current connection, and a domain derives
// its own from it, once per connection, so that its handles follow the
// client to each new connection exactly as the default ones do.

// jsDomain turns the client's snapshots into snapshots whose JetStream
// context speaks to one domain.
type jsDomain struct {
	root    *Client
	name    string // "" is the default domain: no prefix
	derived atomic.Pointer[derivedSnap]
	// link tells followers in a named domain when its JetStream answers
	// again (domain_link.go).
	link domainLink
}

// derivedSnap is the last snapshot derived, and the one it came from.
type derivedSnap struct {
	src, out *snapshot
}

// current is Client.current for a client or view bound to a domain.
func (d *jsDomain) current() (*snapshot, error) {
	s := d.root.snap.Load()
	if s.blocked != nil {
		return nil, d.root.refused(s)
	}
	prev := d.derived.Load()
	if prev != nil && prev.src == s {
		return prev.out, nil
	}
	out := *s
	switch {
	case s.js == nil:
		// No connection to speak to: keep it so (jsSnapshot says so).
	case prev != nil && prev.out.gen == s.gen && prev.out.js != nil:
		out.js = prev.out.js // same connection, only its state moved on
	case d.name == "":
		out.js = s.js
	default:
		js, err := jetstream.NewWithDomain(s.conn, d.name)
		if err != nil {
			return nil, fmt.Errorf("natsclient: jetstream domain %q: %w", d.name, err)
		}
		out.js = js
	}
	d.derived.Store(&derivedSnap{src: s, out: &out})
	return &out, nil
}

// unreachable is asked when a JetStream call in a named domain met no
// responders: when the domain's JetStream API does not answer either, nobody
// can be reached there (a leaf node whose link to the hub is down), and it
// returns the *unreachableError to end the call with; nil otherwise, and for
// the default domain, where "no responders" keeps its usual meanings.
func (d *jsDomain) unreachable(ctx context.Context, s *snapshot, err error) error {
	if d == nil || d.name == "" || !classify.NoResponders(err) {
		return nil
	}
	_, aerr := s.js.AccountInfo(ctx)
	if classify.NoResponders(aerr) || errors.Is(aerr, jetstream.ErrJetStreamNotEnabled) {
		return &unreachableError{what: fmt.Sprintf("JetStream domain %q", d.name), cause: err}
	}
	return nil
}

// label is what an error of a call in the domain adds to say where it went:
// ` in JetStream domain "hub"`; "" for the default domain.
func (d *jsDomain) label() string {
	if d == nil || d.name == "" {
		return ""
	}
	return fmt.Sprintf(" in JetStream domain %q", d.name)
}

// validateDomain refuses what the server would not take as a domain name.
func validateDomain(what, name string) error {
	if err := wire.ValidateStreamName("JetStream domain", name); err != nil {
		return invalidOption(what, "%v", err)
	}
	return nil
}

// WithJetStreamDomain makes the client's JetStream and Key-Value calls
// (JetStream, streams, PublishToStream, Consume, buckets, KV stores) use the
// JetStream of domain, as a leaf node's services name their site's domain.
// An empty name, or one with whitespace, '.', '*', '>' or a path separator,
// is an error matching ErrInvalidOption.
func WithJetStreamDomain(domain string) Option {
	return func(o *options) error {
		if err := validateDomain("WithJetStreamDomain", domain); err != nil {
			return err
		}
		o.jsDomain = domain
		return nil
	}
}

// Domain is a view of a client's JetStream in one JetStream domain: an edge
// service on a leaf node uses its site's domain through the client, and the
// hub's through client.Domain("hub"), on the same connection. Its methods
// behave as the client's methods of the same name, through the client's
// connection, breaker and options; the handles they return follow the
// client to each new connection. A Domain has no lifecycle of its own: it
// works while its client is connected and fails as the client's calls do.
type Domain struct {
	name string
	view *Client // shares the client's supervisor; only its JetStream calls are used
}

// Domain returns a view of the JetStream of domain on this client's
// connection. "" is the default JetStream of the server the client is
// connected to (no domain prefix), whatever WithJetStreamDomain says. A name
// the server would refuse is an error matching ErrInvalidOption.
func (c *Client) Domain(domain string) (*Domain, error) {
	if domain != "" {
		if err := validateDomain("Domain", domain); err != nil {
			return nil, err
		}
	}
	root := c
	if c.root != nil {
		root = c.root
	}
	view := &Client{opts: root.opts, sup: root.sup, root: root, tel: root.tel}
	view.opts.jsDomain = domain
	view.domain = &jsDomain{root: root, name: domain}
	return &Domain{name: domain, view: view}, nil
}

// Name returns the domain's name ("" for the default JetStream).
func (d *Domain) Name() string { return d.name }

// JetStream is Client.JetStream in this domain.
func (d *Domain) JetStream() (jetstream.JetStream, error) { return d.view.JetStream() }

// CreateStream is Client.CreateStream in this domain.
func (d *Domain) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return d.view.CreateStream(ctx, cfg)
}

// Stream is Client.Stream in this domain.
func (d *Domain) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	return d.view.Stream(ctx, name)
}

// DeleteStream is Client.DeleteStream in this domain.
func (d *Domain) DeleteStream(ctx context.Context, name string) error {
	return d.view.DeleteStream(ctx, name)
}

// PublishToStream is Client.PublishToStream to a stream of this domain.
func (d *Domain) PublishToStream(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return d.view.PublishToStream(ctx, subject, data, opts...)
}

// Consume is Client.Consume on a stream of this domain.
func (d *Domain) Consume(ctx context.Context, stream, consumer string, handler func(jetstream.Msg) error) (*Consumption, error) {
	return d.view.Consume(ctx, stream, consumer, handler)
}

// CreateKeyValueBucket is Client.CreateKeyValueBucket in this domain.
func (d *Domain) CreateKeyValueBucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return d.view.CreateKeyValueBucket(ctx, cfg)
}

// KeyValueBucket is Client.KeyValueBucket in this domain.
func (d *Domain) KeyValueBucket(ctx context.Context, name string) (jetstream.KeyValue, error) {
	return d.view.KeyValueBucket(ctx, name)
}

// DeleteKeyValueBucket is Client.DeleteKeyValueBucket in this domain.
func (d *Domain) DeleteKeyValueBucket(ctx context.Context, name string) error {
	return d.view.DeleteKeyValueBucket(ctx, name)
}

// NewKVStore is Client.NewKVStore for a bucket of this domain.
func (d *Domain) NewKVStore(bucket jetstream.KeyValue, opts ...func(*KVOptions)) *KVStore {
	return d.view.NewKVStore(bucket, opts...)
}
