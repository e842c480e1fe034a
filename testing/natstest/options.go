package natstest

import (
	"github.com/c360/natsclient"
	"github.com/nats-io/nats-server/v2/server"
)

// Option configures a Server or TestClient.
type Option func(*config)

type config struct {
	backend       Backend // "" when not chosen: NATSTEST_BACKEND, else Auto
	image         string  // "" when not chosen: NATSTEST_IMAGE, else built
	jetStream     bool
	domain        string // JetStream domain; "" for none
	leafNodes     bool   // the server accepts leaf node connections
	clientOptions []natsclient.Option
	serverOptions []func(*server.Options)
}

func newConfig(opts []Option) config {
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg
}

// WithJetStream enables JetStream on the server, with its store in
// t.TempDir().
func WithJetStream() Option {
	return func(c *config) { c.jetStream = true }
}

// WithKV enables what Key-Value buckets need, which is JetStream.
func WithKV() Option {
	return func(c *config) { c.jetStream = true }
}

// WithClientOptions adds options for the TestClient's natsclient.Client,
// applied after the harness's own fast test defaults.
func WithClientOptions(opts ...natsclient.Option) Option {
	return func(c *config) { c.clientOptions = append(c.clientOptions, opts...) }
}

// WithServerOptions lets fn change the server's options (authorization, TLS,
// limits such as MaxPayload) before it starts.
func WithServerOptions(fn func(*server.Options)) Option {
	return func(c *config) { c.serverOptions = append(c.serverOptions, fn) }
}

// WithBackend chooses where the server runs: Embedded, Container or Auto.
// Without it, the environment variable NATSTEST_BACKEND decides ("embedded",
// "container" or "auto"), and Auto is the default (see defaultBackend).
func WithBackend(b Backend) Option {
	return func(c *config) { c.backend = b }
}

// WithImage sets the container image the Container backend runs, instead of
// NATSTEST_IMAGE or the image the harness builds itself. The image must have
// nats-server as its entrypoint (as the official nats images do). It is never
// pulled here if present; a missing image is pulled by Docker, which needs a
// registry.
func WithImage(image string) Option {
	return func(c *config) { c.image = image }
}

// WithJetStreamDomain enables JetStream in the JetStream domain named
// domain, as an edge deployment gives the hub and each leaf a domain of
// their own (jetstream { domain: ... } in a server configuration).
func WithJetStreamDomain(domain string) Option {
	return func(c *config) { c.jetStream, c.domain = true, domain }
}

// WithLeafNodes makes the server accept leaf node connections, so that
// NewLeaf can connect leaves to it (or, given to NewCluster, to every member).
func WithLeafNodes() Option {
	return func(c *config) { c.leafNodes = true }
}
