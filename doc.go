// Package natsclient is a NATS client for services at the edge that must keep
// working through broker restarts, network loss and overload. It wraps
// github.com/nats-io/nats.go and adds a circuit breaker, a connection
// supervisor that never gives up before Close, a context-first API,
// connection-state events on a channel, JetStream and Key-Value helpers with
// an exactly-once compare-and-swap write, and OpenTelemetry instrumentation.
//
//	client, err := natsclient.NewClient("nats://localhost:4222")
//	if err != nil {
//		return err
//	}
//	defer client.Close(ctx) // also when Connect fails
//	if err := client.Connect(ctx); err != nil {
//		return err
//	}
//	err = client.Publish(ctx, "telemetry.data", []byte("reading"))
//
// A list of servers is one comma-separated string. Besides Publish the client
// has PublishMsg (headers), Request, RequestMsg, Flush, Subscribe,
// QueueSubscribe and their MsgFunc variants; a *Subscription has Unsubscribe
// and Drain. State and Stats say where the client stands.
//
// # How it works
//
// Each Client has one supervisor goroutine. It alone dials, owns the
// *nats.Conn, runs the circuit breaker, keeps the registry of subscriptions
// and emits state events; no mutex guards client state. Connect, Close,
// Subscribe and StateChanges send it commands. Publish, Request, Flush and
// the JetStream and Key-Value calls do not: they read an immutable snapshot
// the supervisor publishes through an atomic pointer, with the error a
// blocked call must return already built, so the hot path costs one atomic
// load over nats.go and failing fast allocates nothing. The supervisor's
// phases, the breaker, the reconnect schedule, the exactly-once write, the
// outbox and the edge are explained once, for contributors, in docs/design.md
// in the repository.
//
// # Reconnection
//
// States go Disconnected → Connecting → Connected, then Reconnecting while a
// lost connection is re-established and Connected again, and Closed after
// Close. Closed is final: no event follows it.
//
// Connect dials, and on failure dials again with backoff until it succeeds or
// ctx ends. It returns once the server has answered on the new connection (a
// flush round trip), not merely accepted it, so a server that accepts
// connections and drops each at once opens the breaker instead of causing a
// reconnect loop. Calling Connect on a connected client does nothing. An
// error retrying cannot fix comes back at once, matching ErrPermanent (see
// Security).
//
// When the connection drops, nats.go's own reconnect runs first (it
// resubscribes and buffers publishes through short blips), but at the pace
// the supervisor sets: nats.go asks the supervisor before each round of
// attempts, and every failed round counts against the breaker. nats.go keeps
// the same connection until Close; with WithMaxReconnects(n) it gives it up
// after n attempts, and the supervisor dials a new one with the same backoff
// and subscribes every Subscription again. Nothing a user holds goes stale.
// Until the connection is back, calls fail at once with an error matching
// ErrNotConnected (the state is Reconnecting), or ErrCircuitOpen once the
// breaker has opened: nothing was sent, try again later.
//
// Every wait before a dial is spread at random, so that clients that lost
// their server at the same instant do not come back together: while the
// breaker is closed, between 3/4 and 5/4 of the reconnect wait
// (WithReconnectWait, 2s on average, as nats.go's own); once it is open,
// between half and all of the breaker's interval, which doubles up to
// WithMaxBackoff (6s). With the defaults a client notices a returning server
// within 6s (about 4.5s for nine clients in ten) and dials a server that
// stays down about every 4.5s. Waits of a second or more end on a 100ms grid
// of the process's own, so that the clients of one process wake together and
// their attempts cost about what nats.go's do. A smaller WithMaxBackoff
// notices a returning server sooner, at the price of more dials against one
// that is still down.
//
// Close(ctx) drains subscriptions and pending publishes, waits for that until
// ctx ends, and returns once every goroutine the client started has ended.
// It is idempotent; calls after it return ErrClosed. Called from a message
// handler or a Consume handler, Close returns once the other subscriptions
// have drained; the calling handler's subscription drains, and the
// goroutines end, after the handler returns. Called by the goroutine that
// reads a KV watcher's Updates, it returns too: watchers stop when Close
// begins.
//
// # Circuit breaker
//
// Closed, the breaker lets calls through and counts consecutive transport
// failures. At the threshold (WithCircuitBreakerThreshold, 5) it opens: every
// guarded call fails at once, without allocating or touching the network,
// with a *CircuitOpenError that matches ErrCircuitOpen, wraps the failure
// that opened the breaker, and says in RetryAt when the next probe is due.
// When the open interval is over the supervisor probes by itself
// (half-open): a dial when there is no connection, nats.go's next reconnect
// attempt while it reconnects, a flush round trip on a live connection.
// Success closes the breaker and resets the interval; failure reopens it for
// twice as long, up to WithMaxBackoff. Recovery never waits for a user's
// call.
//
// What counts against the breaker: failed dials and reconnect attempts, a
// lost, stale or closed connection, a full reconnect buffer, the connected
// server not answering a flush within the client's timeout. What never
// counts: the caller's context ending, no responders, a request's timeout
// (Request, JetStream and Key-Value calls, a hub behind a frozen leaf link:
// the connected server may be fine), invalid subjects and nil arguments,
// payloads over max_payload, missing keys, streams or buckets, revision
// conflicts, bad JSON, errors from the caller's update function.
//
// # State events
//
// StateChanges(ctx) gives each subscriber its own buffered channel, closed
// when ctx ends or the client closes. An event reports a change of state, of
// the breaker, or both (From == To when only the breaker moved); a breaker
// change that happens with a state change travels in the same event. The
// snapshot is published before the event is sent, so a subscriber that reads
// an event and then makes a call sees the state the event announced. The
// supervisor never waits for a subscriber: what a subscriber that stopped
// reading has not read is dropped and counted in the next event's Missed,
// so its next read is the present state.
//
// WithDisconnectCallback, WithReconnectCallback and WithClosedCallback run,
// in order, on a goroutine of the client's, never inside the supervisor: a
// callback may call Publish, State or even Close on the same client.
//
// # Context
//
// Every call that may wait takes a ctx and ends when it does: Connect keeps
// dialling until ctx ends, Close drains until ctx ends and then closes at
// once. A ctx without a deadline is bounded by WithTimeout (5s) in Flush,
// Request and each JetStream request; PublishToStream and the KVStore retry
// within ctx (and KVOptions.Timeout). The caller's context ending is never a
// failure of the connection.
//
// Every call that takes a ctx refuses a nil one, before doing anything, with
// an error matching ErrInvalidArgument that says "nil context": the client,
// its Domain views, the stream and bucket handles it returns, KVStore and
// UpdateJSONAs. StateChanges, which returns no error, hands back a channel
// holding one event whose Err is that error, then closed. Close is the one
// exception: a nil ctx stands for context.Background(), so that a deferred
// Close always stops the client's goroutines.
//
// # Errors
//
// Every error wraps its cause with %w: errors.Is matches this package's
// sentinel and the nats.go or jetstream error beneath it
// (errors.Is(err, nats.ErrNoResponders), nats.ErrMaxPayload,
// jetstream.ErrKeyNotFound, ...). Errors are classified by value and by the
// server's error codes, never by their text.
//
//	ErrCircuitOpen           the breaker is open: a *CircuitOpenError wrapping the failure that opened it
//	ErrNotConnected          no connection now (before Connect succeeded, or between connections); nothing was sent
//	ErrClosed                after Close
//	ErrInvalidOption         NewClient, KVOptions or Domain was given a bad value; the message names it
//	ErrInvalidArgument       bad input, refused before anything is sent: an invalid subject (also
//	                         nats.ErrBadSubject), a subject too long for the control line, an invalid key
//	                         or bucket name, a nil context, handler, message or function
//	ErrPermanent             Connect met an error retrying cannot fix (also e.g. nats.ErrAuthorization)
//	ErrUnreachable           a call bound for a hub (a mirror's origin, another domain) found nobody
//	                         answering for it: nothing was received
//	ErrKVKeyNotFound         Get or GetJSON of a missing or deleted key (also jetstream.ErrKeyNotFound)
//	ErrKVRevisionMismatch    a compare-and-swap lost to another writer (also jetstream's
//	                         ErrKeyRevisionMismatch, or ErrKeyExists for Create)
//	ErrKVMaxRetriesExceeded  an update loop ran out of MaxRetries (also ErrKVRevisionMismatch)
//	ErrKVUnknownOutcome      a write's acknowledgement was lost and whether it was stored cannot be
//	                         known; it names the key, the expected revision and the message id
//
// IsKVConflictError and IsKVNotFoundError test for the two KV cases. The
// server counts headers toward max_payload with the data, the injected trace
// context included: a message over it is refused before it is sent, with an
// error giving both sizes and the limit. Some mistakes are refused because
// sending them would cost the connection: a subject whose protocol line (PUB,
// or HPUB for a message with headers) would exceed the server's 4096-byte
// control line (MaxControlLine), or a server URL nats.go could not dial,
// which is NewClient's ErrInvalidOption.
//
// # Security
//
// Give credentials through options, read at start-up from a file or the
// environment: WithUserInfo, WithToken, WithNKeyFile or WithCredentials. A
// password or token in the URL works too; reserved characters in it must then
// be percent-encoded, and NewClient refuses a URL that does not parse without
// repeating it. For TLS, use a tls:// URL or WithTLSConfig (with the CA in
// RootCAs when it is not in the system pool); for mutual TLS add the client's
// certificate to the tls.Config, or with WithClientCert(certFile, keyFile),
// which reads the files again before each dial so that a renewed certificate
// is picked up.
//
// Every URL the client shows (log records, returned errors, StateChange.Err,
// Stats().LastError, the cause inside a CircuitOpenError) has its user info
// masked as net/url does: nats://alice:xxxxx@host, and a token-only
// nats://xxxxx@host. RedactURL does the same for URLs you log yourself.
// Secrets given through options never appear, and the contents of key and
// credentials files are never quoted.
//
// Connect returns at once, after a single dial or none, with an error matching
// ErrPermanent that says why, when: the server refuses the credentials
// (authorization violation, expired or revoked); the server's certificate
// cannot be verified (unknown CA, wrong host name, expired); the server
// refuses the client's certificate under mutual TLS; client and server
// disagree on TLS; or a credentials, key or certificate file of the client's
// own cannot be read or parsed (the error names the file). A client that was
// connected and then meets such a refusal (a rotated password) keeps
// retrying at the breaker's pace, since it never gives up before Close.
//
// # JetStream
//
// Everything JetStream and Key-Value goes through the breaker like Publish.
// The handles the client gives you keep names, not connections, and rebind to
// the current connection when it changed, at the cost of one atomic load and
// compare per call: streams (CreateStream, Stream), buckets
// (CreateKeyValueBucket, KeyValueBucket), KVStores, KVStore.Watch watchers and
// Consume. A binding whose answer does not come within the client's timeout
// is asked again until ctx ends. JetStream() returns the context of the
// connection of the moment; jetstream Consumers and KeyWatchers obtained
// through a handle's own methods belong to the connection they were made on.
// Watchers resume as soon as the client is connected again, from the
// revision after the last they delivered: nothing missed, nothing twice.
//
// PublishToStream waits for the stream's acknowledgement until ctx ends
// (a ctx without a deadline: WithTimeout). Every message carries a
// Nats-Msg-Id, yours (jetstream.WithMsgID) or a random one, and when the
// acknowledgement does not come the same message is sent again, with backoff,
// until ctx ends: the stream stores it once within its duplicate window (2
// minutes by default), and the acknowledgement of a resend has Duplicate
// set. What the server refuses (a failed WithExpectLastSequence, a message
// over the stream's limit) is returned at once. A publish nobody receives is
// for a subject no stream captures (jetstream.ErrNoStreamResponse, within
// about a second), for a stream electing a leader (sent again), or, on a leaf
// node whose JetStream has a domain, for a stream beyond a link that is down
// (ErrUnreachable, within about a second). "No stream captures it" is
// believed only from a JetStream without a domain, the only one in reach:
// give every JetStream joined by leaf links a domain.
//
// Consume binds a durable pull consumer, creating it with explicit
// acknowledgement when it does not exist (create it first through
// Stream(...).CreateOrUpdateConsumer to choose its configuration). A message
// is acknowledged when the handler returns nil; an error naks it for
// redelivery; a handler may ack or nak by itself, and the second
// acknowledgement is then ignored. Panics are not recovered. Consuming
// continues across reconnects and new connections, and since the consumer is
// durable nothing acked is delivered again and nothing unacked is lost. It
// runs until Stop, ctx or Close; Stop returns once the handler has returned
// and every goroutine Consume started has ended, and Done is closed then.
//
// DialConn and DialConnContext dial a separate *nats.Conn with the client's
// servers, credentials and WithNATSOptions (not its callbacks), for work that
// needs settings the shared connection must not have. It is yours to close,
// with no breaker, events or redial; the outbox uses one. DialConnContext
// bounds the dial by ctx, handshake included: a server that accepts and never
// answers holds it until ctx ends, not for the client's timeout.
//
// # Key-Value
//
// CreateKeyValueBucket returns the existing bucket when its configuration
// matches, and otherwise an error matching jetstream.ErrBucketExists.
// NewKVStore(bucket) wraps a bucket handle in a *KVStore: Get, Put, Create,
// Update, Delete, Keys and Watch as jetstream's KeyValue has them, GetJSON and
// PutJSON, and the read-modify-write loops UpdateJSON (a JSON object as a
// map), UpdateJSONAs (a struct; members the struct does not declare are kept)
// and UpdateWithRetry (raw bytes), retried on conflict up to
// KVOptions.MaxRetries with jittered backoff. The update function may run
// several times and must compute from its argument alone; its error is
// returned as it is, with nothing written and no retry; a panic in it is not
// recovered, and nothing is written. A stored JSON null reads as an empty
// object (PutJSON(nil) stores one); any other value that is not a JSON object
// (an array, a string, broken JSON) is an error naming the key, returned
// before the function is called, and the value is left as it is.
// Numbers decode as float64, as encoding/json does: use UpdateJSONAs to keep
// a struct.
// KVOptions are validated, never replaced: a bad one is kept as an error that
// KVStore.Err and every call return.
//
// Every write carries a message id, and a write whose acknowledgement is lost
// is settled by reading back what the bucket holds before the update function
// is ever called again; when that cannot be decided the call returns
// ErrKVUnknownOutcome rather than apply a change twice (see KVStore, "Exactly
// once"). A larger History makes that rarer; look at the key before writing
// again. Put, which is unconditional, resends the same message after a lost
// acknowledgement, and its id keeps the server from storing it twice within
// the bucket's duplicate window (2 minutes, or its TTL if shorter); Delete is
// sent once. Conflicts are recognised by error value and by the server's
// codes 10071 and 10164 (the latter from replicated buckets), never by text.
// Reads and resends that get no answer are tried again within
// KVOptions.Timeout, so a short broker restart is ridden out; a deleted bucket
// is jetstream.ErrBucketNotFound from every call within about a second.
// The bucket's MaxValueSize is the server's to enforce, read fresh whenever
// it refuses, so a store follows a limit raised or lowered after it was
// made. A call that KVOptions.Timeout ended returns an error matching
// context.DeadlineExceeded that names KVOptions.Timeout.
//
// Bucket names and keys are checked as the server checks them
// (ValidateBucketName, ValidateKey), and a key is bounded by the control line:
// at most 4096 − 150 − 2×len(bucket) bytes (3,934 in a bucket named config):
// the longest line sent for a key, a watch's consumer creation, holds the key,
// the bucket's name twice and at most 150 bytes besides. A server configured
// with a smaller max_control_line is not detected. Reads on a replicated bucket are
// direct gets that a replica a revision or two behind may answer; an update
// loop is not fooled by that, but a test that checks a final value on a
// cluster should read it from the stream leader.
//
// # Differences from nats.go
//
// A KVStore behaves as jetstream's KeyValue wherever it offers the same call;
// the package compat runs nats.go's own Key-Value tests against it, and each
// intended difference is marked there:
//
//   - errors are wrapped and name the operation, bucket and key: compare with
//     errors.Is, not ==;
//   - Keys on an empty bucket returns an empty slice and no error, not
//     jetstream.ErrNoKeysFound;
//   - a watcher's Stop is idempotent and returns nil;
//   - a subset of the calls: Create takes no options, Watch one pattern;
//     History, Purge, GetRevision, ListKeys, Status and WatchFiltered are on
//     the bucket handle, which follows the client too;
//   - a read or write that gets no answer is tried again within
//     KVOptions.Timeout, where jetstream returns the first error;
//   - every write carries a Nats-Msg-Id (13 to 18 characters), unless the
//     bucket's MaxValueSize leaves no room for it, and a lost acknowledgement
//     is settled by reading back or reported as ErrKVUnknownOutcome;
//   - a missing bucket is jetstream.ErrBucketNotFound from every call;
//   - keys and watch patterns too long for the control line are refused
//     with ErrInvalidArgument, where jetstream sends them and the server
//     closes the connection; invalid watch patterns also match
//     nats.ErrBadSubject.
//
// # The edge
//
// At a site, services connect to a leaf node whose JetStream runs in a domain
// of its own, linked to a hub in another. WithJetStreamDomain(d) makes the
// client's JetStream and Key-Value calls use domain d; Client.Domain(name)
// returns a view with the same JetStream and Key-Value methods in another
// domain, on the same connection ("" is the connected server's own
// JetStream, without a prefix), whose handles follow new connections too; a
// name with whitespace, '.', '*', '>' or a path separator is ErrInvalidOption.
// A handle of another domain's bucket (from jetstream.NewWithDomain) given to
// Client.NewKVStore is bound by name in the client's own domain, failing with
// jetstream.ErrBucketNotFound naming the domain looked in if it is not there:
// give it to Client.Domain("hub").NewKVStore instead. A
// KVStore writes where nats.go's KeyValue writes for that bucket: a mirror's
// writes go to its origin, and the revision a compare-and-swap expects and the
// read-back after a lost acknowledgement come from the origin's stream leader,
// so UpdateJSON and the exactly-once write hold across the link; Get, Keys and
// Watch read the local mirror.
//
// When the link to the hub is cut the site goes on and the breaker stays
// closed; calls bound for the hub fail within about a second with an error
// matching ErrUnreachable that names the origin bucket or domain (nothing was
// received, so such a write was not stored). A link that hangs instead makes
// those calls end with their ctx or KVOptions.Timeout, and a write then is
// ErrKVUnknownOutcome. Get on the mirror returns the last value it received.
// Domain consumers and watchers resume by themselves once the link is back:
// while they run, a probe asks the domain's JetStream every half second
// whether it answers, and its first answer after none starts them again at
// once (without it, nats.go would notice a lost pull only by its missing
// heartbeats, about 30s with the defaults). See the example of Client.Domain.
//
// # Observability
//
// The client logs, traces and measures through what you give it, and with
// nothing configured does none of it, at no cost on the hot path. It depends
// on the OpenTelemetry API only; the SDK and the exporters are your
// program's.
//
// WithSlog gives structured records with the attributes state, breaker,
// server, attempt and err (bucket and key for KV): Debug for each failed dial
// and each resend of a stream publish; Info for state changes, the breaker
// going half-open and closing, a KV write found stored after a lost
// acknowledgement; Warn for the breaker opening, a KV write without
// acknowledgement, a consumer's errors, nats.go giving a connection up,
// asynchronous errors; Error for a permanent failure. WithLogger gets the same
// records as lines ("natsclient: <message> key=value ..."), and SlogLogger
// adapts a *slog.Logger to it.
//
// WithTracerProvider turns on spans: "send <subject>" producer spans for
// Publish, PublishMsg, Request, RequestMsg, PublishToStream and
// PublishMsgToStream, with the context injected into the message headers;
// "process <subscription subject>" consumer spans around each handler call of
// Subscribe, QueueSubscribe, Consume and their Func variants (SubscribeFunc,
// QueueSubscribeFunc and ConsumeFunc hand the handler a ctx holding the span,
// so a reply or a child span continues the trace); "kv put", "kv create",
// "kv update" and "kv update json" spans with the bucket, the new revision
// and a "cas conflict" event per retried conflict. Keys appear only with
// WithKVKeysInSpans, and KV messages carry no trace headers (headers count
// toward a bucket's value size). Attributes follow the messaging semantic
// conventions (messaging.system "nats", messaging.destination.name, ...); a
// failed call's span has status Error and error.type (circuit_open,
// not_connected, timeout, no_responders, conflict, unknown_outcome, ...,
// never the error's text); a call refused for bad input records nothing.
// WithPropagator replaces the default W3C TraceContext and Baggage; without a
// tracer provider it still carries the caller's context along.
//
// WithMeterProvider creates these instruments once, in NewClient. Subjects are
// never an attribute; error.type is, on failures:
//
//	messaging.client.operation.duration  histogram, s: calls that wait for an answer (Request, RequestMsg, stream publishes)
//	messaging.client.sent.messages       counter: sends attempted, failed ones with error.type
//	messaging.client.consumed.messages   counter: messages handed to a subscription or Consume handler
//	messaging.process.duration           histogram, s: handler calls
//	natsclient.breaker.state             gauge: 0 closed, 1 open, 2 half-open
//	natsclient.breaker.rejections        counter: calls failed fast by the breaker (Stats().BreakerRejections)
//	natsclient.breaker.trips             counter: times the breaker opened
//	natsclient.reconnects                counter: recoveries after a lost connection
//	natsclient.connection.state          gauge: the State value, 0 disconnected ... 4 closed
//	natsclient.kv.cas.conflicts          counter: compare-and-swap writes refused because the key moved on (bucket)
//	natsclient.kv.unknown_outcomes       counter: KV writes that ended in ErrKVUnknownOutcome (bucket)
//
// The outbox adds its own gauges (see package outbox). Prometheus spells the
// names its own way (natsclient_breaker_rejections_total,
// messaging_client_operation_duration_seconds). Wiring an OTLP trace exporter
// and a Prometheus reader from the OpenTelemetry SDK:
//
//	traces, err := otlptracegrpc.New(ctx) // OTEL_EXPORTER_OTLP_ENDPOINT
//	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(traces),
//		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
//	prom, err := prometheus.New() // the default Prometheus registry
//	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(prom))
//	client, err := natsclient.NewClient(url,
//		natsclient.WithTracerProvider(tp), natsclient.WithMeterProvider(mp),
//		natsclient.WithSlog(slog.Default()))
//
// For OTLP metrics, use otlpmetricgrpc.New with sdkmetric.NewPeriodicReader
// instead of the Prometheus reader.
//
// # Testing
//
// Package github.com/c360/natsclient/testing/natstest starts real NATS
// servers for a test (in the test process or in Docker containers, behind a
// fault proxy, as clusters and leaf nodes) and hands back a connected Client.
// Package github.com/c360/natsclient/outbox is the durable store-and-forward
// queue for publishes that must survive an outage and a restart.
package natsclient
