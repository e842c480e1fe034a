// Package natsclient is a NATS client for services at the edge that must keep
// working through broker restarts, network loss and overload. It wraps
// github.com/nats-io/nats.go and adds a circuit breaker, a connection
// supervisor that never gives up before Close, a context-first API,
// connection-state events on a channel, and JetStream and Key-Value helpers.
//
//	client, err := natsclient.NewClient("nats://localhost:4222")
//	if err != nil {
//		return err
//	}
//	defer client.Close(ctx)
//	if err := client.Connect(ctx); err != nil {
//		return err
//	}
//	err = client.Publish(ctx, "telemetry.data", []byte("reading"))
//
// # Supervisor
//
// Each Client has one supervisor goroutine. It alone dials, owns the
// *nats.Conn, runs the circuit breaker, keeps the registry of subscriptions
// and emits state events; no mutex guards client state. Connect, Close,
// Subscribe and StateChanges send it commands. Publish, Request and Flush do
// not: they read an immutable snapshot the supervisor publishes through an
// atomic pointer, so the hot path costs one atomic load over nats.go.
//
// # Connection lifecycle
//
// States go Disconnected → Connecting → Connected, then Reconnecting while a
// lost connection is re-established and Connected again, and Closed after
// Close; Closed is final. A connection counts as Connected once the server
// has answered on it, so a server that drops every new connection opens the
// breaker rather than causing a reconnect loop. Connect dials with backoff
// until ctx ends; a permanent error (bad credentials, a TLS failure) is
// returned at once and matches ErrPermanent. Once connected, nats.go's own
// reconnect runs, at the pace the supervisor sets; when nats.go gives a
// connection up (with WithMaxReconnects(n), after n attempts) the supervisor
// dials a new one and subscribes every Subscription again, so handles never
// go stale. Until the connection is back, calls fail at once with
// ErrNotConnected.
//
// # Circuit breaker
//
// The breaker counts consecutive transport failures: failed dials and
// reconnect attempts, lost connections, a full reconnect buffer, flush
// timeouts. At the threshold (WithCircuitBreakerThreshold, default 5) it
// opens, and every guarded call fails at once with an error matching
// ErrCircuitOpen that also wraps the failure that opened it. After an
// interval that starts at the reconnect wait and doubles with each reopening
// (capped by WithMaxBackoff; jitter draws each between half and all of it),
// the supervisor itself probes the server (half-open): success closes the
// breaker, failure reopens it. The caller's mistakes never count: a cancelled
// context, no responders, an invalid subject, an oversized payload.
//
// # State events
//
// StateChanges gives each subscriber its own buffered channel. The supervisor
// never waits for a subscriber: when one falls behind, what it has not read is
// dropped and counted in the next event's Missed field, so its next read is
// the present state.
//
// # Callbacks
//
// WithDisconnectCallback, WithReconnectCallback and WithClosedCallback run on
// a goroutine of their own, in order, never inside the supervisor: a callback
// may call Publish, State or even Close on the same client.
//
// # Errors
//
// Errors wrap their causes with %w, so errors.Is matches both this package's
// sentinels (ErrCircuitOpen, ErrNotConnected, ErrClosed, ErrInvalidOption,
// ErrInvalidArgument, ErrPermanent) and nats.go's (nats.ErrNoResponders,
// nats.ErrMaxPayload, nats.ErrAuthorization, ...).
//
// # JetStream and Key-Value
//
// CreateStream, PublishToStream, Consume, CreateKeyValueBucket and NewKVStore
// go through the same breaker. The handles they return keep names, not
// connections, and rebind when the supervisor dials a new connection.
// Consumers and watchers resume on their own: a watcher as soon as the client
// is connected again, from the revision after the last it delivered; through
// a Domain also when the domain's link (a leaf node's to its hub) returns,
// noticed within half a second by a probe that runs while they do. A
// KVStore's UpdateJSON, UpdateJSONAs and UpdateWithRetry are read, modify,
// compare-and-swap loops retried on conflict; each write carries a message ID,
// and after a lost acknowledgement the store reads back whether the write was
// stored before it calls the update function again, returning
// ErrKVUnknownOutcome when that cannot be known rather than applying a change
// twice.
//
// # Observability
//
// WithSlog logs structured records at meaningful levels. WithTracerProvider,
// WithMeterProvider and WithPropagator turn on OpenTelemetry: producer spans
// for sends with the W3C trace context in the message headers, consumer
// spans around handlers (SubscribeFunc, QueueSubscribeFunc and ConsumeFunc
// hand the handler a ctx that holds it), KV write spans, and the metrics
// listed in the README. The package uses the OpenTelemetry API only; with no
// provider configured it records nothing and costs nothing on the hot path.
//
// # Testing
//
// Package github.com/c360/natsclient/testing/natstest starts a real NATS
// server for a test and hands back a connected Client.
package natsclient
