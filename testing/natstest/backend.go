package natstest

import (
	"testing"
)

// Backend is where a Server runs.
type Backend string

// The backends.
const (
	// Embedded runs nats-server in the test process.
	Embedded Backend = "embedded"
)

func resolveBackend(t testing.TB, cfg config) Backend {
	return Embedded
}

// newBackend makes the backend of one server; tls reports whether clients
// must speak TLS to it.
func newBackend(t testing.TB, kind Backend, spec serverSpec) (backend, bool) {
	e := newEmbedded(t, spec)
	return e, e.opts.TLSConfig != nil
}
