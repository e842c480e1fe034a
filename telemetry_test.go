package natsclient_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
)

// observed is a test client wired to a real OpenTelemetry SDK: spans go to
// a recorder, metrics to a manual reader.
type observed struct {
	*natstest.TestClient
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tracer trace.Tracer
}

func newObserved(t *testing.T, opts ...natstest.Option) *observed {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	opts = append(opts, natstest.WithClientOptions(natsclient.WithTracerProvider(tp), natsclient.WithMeterProvider(mp)))
	return &observed{TestClient: natstest.NewTestClient(t, opts...), spans: spans, reader: reader, tracer: tp.Tracer("test")}
}

// span returns the ended span named name, failing the test if there is not
// exactly one.
func (o *observed) span(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d ended spans named %q, want 1 (all: %v)", len(found), name, spanNames(o.spans.Ended()))
	}
	return found[0]
}

// waitSpan waits until a span named name has ended: a consumer span ends
// after the handler returns, which the test cannot otherwise see.
func (o *observed) waitSpan(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	natstest.Eventually(t, waitTimeout, "span "+name+" ended", func() bool {
		for _, s := range o.spans.Ended() {
			if s.Name() == name {
				return true
			}
		}
		return false
	})
	return o.span(t, name)
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	return names
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func wantAttr(t *testing.T, s sdktrace.ReadOnlySpan, key, want string) {
	t.Helper()
	if v, ok := attr(s, key); !ok || v.Emit() != want {
		t.Errorf("span %q: %s = %q (present %v), want %q", s.Name(), key, v.Emit(), ok, want)
	}
}

func wantChild(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.Parent().SpanID() != parent.SpanContext().SpanID() || child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span %q is not a child of %q: parent %v, want %v", child.Name(), parent.Name(), child.Parent().SpanID(), parent.SpanContext().SpanID())
	}
}

// metricSum returns the sum of the counter (or the count of the histogram)
// name over all its series, and whether it was recorded at all.
func (o *observed) metricSum(t *testing.T, name string) (int64, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var total int64
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					total += p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					total += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					total += int64(p.Count)
				}
			default:
				t.Fatalf("metric %s: unexpected data %T", name, m.Data)
			}
			return total, true
		}
	}
	return 0, false
}

func TestTracePublishToSubscribeHandler(t *testing.T) {
	o := newObserved(t)
	ctx := natstest.Context(t, waitTimeout)
	handled := make(chan trace.SpanContext, 1)
	if _, err := o.Client.SubscribeFunc("orders.*", func(ctx context.Context, m *nats.Msg) {
		handled <- trace.SpanContextFromContext(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	// A plain nats.go subscriber sees the trace context in the headers.
	raw, err := nats.Connect(o.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rawSub, err := raw.SubscribeSync("orders.*")
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}

	rootCtx, root := o.tracer.Start(ctx, "root")
	if err := o.Client.Publish(rootCtx, "orders.new", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	root.End()
	inHandler := natstest.Receive(t, handled, waitTimeout, "handled message")
	if inHandler.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("handler's trace %v, want the publisher's %v", inHandler.TraceID(), root.SpanContext().TraceID())
	}
	m, err := rawSub.NextMsg(waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if tp := m.Header.Get("traceparent"); len(tp) < 36 || tp[3:35] != root.SpanContext().TraceID().String() {
		t.Fatalf("plain subscriber's traceparent = %q, want trace id %v", tp, root.SpanContext().TraceID())
	}

	send := o.span(t, "send orders.new")
	process := o.waitSpan(t, "process orders.*")
	rootSpan := o.span(t, "root")
	wantChild(t, send, rootSpan)
	wantChild(t, process, send)
	if send.SpanKind() != trace.SpanKindProducer || process.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("kinds: send %v, process %v", send.SpanKind(), process.SpanKind())
	}
	if inHandler.SpanID() != process.SpanContext().SpanID() {
		t.Errorf("handler's ctx holds span %v, want the process span %v", inHandler.SpanID(), process.SpanContext().SpanID())
	}
	wantAttr(t, send, "messaging.system", "nats")
	wantAttr(t, send, "messaging.destination.name", "orders.new")
	wantAttr(t, send, "messaging.operation.type", "send")
	wantAttr(t, send, "messaging.message.body.size", "5")
	wantAttr(t, process, "messaging.destination.name", "orders.new")
	wantAttr(t, process, "messaging.destination.template", "orders.*")
	wantAttr(t, process, "messaging.operation.type", "process")

	if n, _ := o.metricSum(t, "messaging.client.sent.messages"); n != 1 {
		t.Errorf("sent.messages = %d, want 1", n)
	}
	if n, _ := o.metricSum(t, "messaging.client.consumed.messages"); n != 1 {
		t.Errorf("consumed.messages = %d, want 1", n)
	}
	if n, _ := o.metricSum(t, "messaging.client.operation.duration"); n != 0 {
		t.Errorf("operation.duration count = %d, want 0: a publish is not timed", n)
	}
	if n, _ := o.metricSum(t, "messaging.process.duration"); n != 1 {
		t.Errorf("process.duration count = %d, want 1", n)
	}
}

func TestTraceRequestToReplyToHandler(t *testing.T) {
	o := newObserved(t)
	ctx := natstest.Context(t, waitTimeout)
	if _, err := o.Client.QueueSubscribeFunc("svc.echo", "workers", func(ctx context.Context, m *nats.Msg) {
		// The reply, sent with the handler's ctx, continues the trace.
		_ = o.Client.Publish(ctx, m.Reply, m.Data)
	}); err != nil {
		t.Fatal(err)
	}
	req := &nats.Msg{Subject: "svc.echo", Data: []byte("ping"), Header: nats.Header{"X-App": []string{"kept"}}}
	reply, err := o.Client.RequestMsg(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply.Data) != "ping" || req.Header.Get("X-App") != "kept" {
		t.Fatalf("reply %q, request headers %v", reply.Data, req.Header)
	}
	send := o.span(t, "send svc.echo")
	process := o.waitSpan(t, "process svc.echo")
	wantChild(t, process, send)
	wantAttr(t, process, "messaging.consumer.group.name", "workers")
	var replySend sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == "send "+reply.Subject {
			replySend = s
		}
	}
	if replySend == nil {
		t.Fatalf("no span for the reply (spans: %v)", spanNames(o.spans.Ended()))
	}
	wantChild(t, replySend, process)
	if send.EndTime().Before(replySend.StartTime()) {
		t.Error("the request's span ended before the reply was sent")
	}
	// The request is timed; the reply, a publish, is only counted.
	if n, _ := o.metricSum(t, "messaging.client.operation.duration"); n != 1 {
		t.Errorf("operation.duration count = %d, want 1", n)
	}
	if n, _ := o.metricSum(t, "messaging.client.sent.messages"); n != 2 {
		t.Errorf("sent.messages = %d, want 2 (request and reply)", n)
	}
}

func TestTraceJetStreamPublishToConsume(t *testing.T) {
	o := newObserved(t, natstest.WithJetStream())
	ctx := natstest.Context(t, waitTimeout)
	if _, err := o.Client.CreateStream(ctx, jetstream.StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}}); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		sc   trace.SpanContext
		data string
	}
	got := make(chan seen, 4)
	cons, err := o.Client.ConsumeFunc(ctx, "JOBS", "worker", func(ctx context.Context, msg jetstream.Msg) error {
		got <- seen{trace.SpanContextFromContext(ctx), string(msg.Data())}
		if string(msg.Data()) == "bad" {
			msg.Term() // do not redeliver: the test wants one process span
			return errors.New("refused by the handler")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Stop()
	rootCtx, root := o.tracer.Start(ctx, "root")
	if _, err := o.Client.PublishToStream(rootCtx, "jobs.run", []byte("good")); err != nil {
		t.Fatal(err)
	}
	root.End()
	if s := natstest.Receive(t, got, waitTimeout, "consumed message"); s.sc.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("Consume handler's trace %v, want %v", s.sc.TraceID(), root.SpanContext().TraceID())
	}
	send := o.span(t, "send jobs.run")
	// Named by the stream and consumer, not by the subject (ids without
	// bound); the subject is an attribute.
	process := o.waitSpan(t, "process JOBS worker")
	wantChild(t, process, send)
	wantAttr(t, process, "messaging.destination.name", "jobs.run")
	wantAttr(t, process, "messaging.consumer.group.name", "worker")
	if _, ok := attr(send, "messaging.message.id"); !ok {
		t.Error("stream publish span has no messaging.message.id")
	}
	if process.Status().Code == codes.Error {
		t.Error("a handled message's span is marked as an error")
	}

	// A handler's error marks its span.
	msg := &nats.Msg{Subject: "jobs.bad", Data: []byte("bad"), Header: nats.Header{}}
	if _, err := o.Client.PublishMsgToStream(ctx, msg); err != nil {
		t.Fatal(err)
	}
	natstest.Receive(t, got, waitTimeout, "refused message")
	var failed sdktrace.ReadOnlySpan
	natstest.Eventually(t, waitTimeout, "the refused message's span", func() bool {
		for _, s := range o.spans.Ended() {
			if v, _ := attr(s, "messaging.destination.name"); s.Name() == "process JOBS worker" && v.AsString() == "jobs.bad" {
				failed = s
				return true
			}
		}
		return false
	})
	if failed.Status().Code != codes.Error {
		t.Errorf("span of a refused message: status %v, want Error", failed.Status())
	}
	wantAttr(t, failed, "error.type", "_OTHER")
}

func TestTelemetryBreakerRejectionsCountedWhileServerDown(t *testing.T) {
	logs := &recordLog{}
	o := newObserved(t, natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(2), natsclient.WithSlog(slog.New(logs))))
	ctx := natstest.Context(t, waitTimeout)
	events := o.Client.StateChanges(ctx)
	o.Server.Stop()
	natstest.Await(t, events, waitTimeout, "breaker open", natstest.BreakerIs(natsclient.BreakerOpen))

	const refused = 7
	for i := 0; i < refused; i++ {
		if err := o.Client.Publish(ctx, "a", []byte("x")); !errors.Is(err, natsclient.ErrCircuitOpen) {
			// The breaker may have gone half-open for its probe; that
			// refuses calls too. Anything else is not what is tested.
			t.Fatalf("Publish while the server is down = %v, want ErrCircuitOpen", err)
		}
	}
	if got := o.Client.Stats().BreakerRejections; got != refused {
		t.Errorf("Stats().BreakerRejections = %d, want %d", got, refused)
	}
	if n, ok := o.metricSum(t, "natsclient.breaker.rejections"); !ok || n != refused {
		t.Errorf("natsclient.breaker.rejections = %d (recorded %v), want %d", n, ok, refused)
	}
	if n, _ := o.metricSum(t, "natsclient.breaker.trips"); n < 1 {
		t.Errorf("natsclient.breaker.trips = %d, want at least 1", n)
	}
	if n, _ := o.metricSum(t, "messaging.client.sent.messages"); n != refused {
		t.Errorf("sent.messages (attempted) = %d, want %d", n, refused)
	}
	// A refused call is an error span.
	sends := 0
	for _, s := range o.spans.Ended() {
		if s.Name() != "send a" {
			continue
		}
		sends++
		if s.Status().Code != codes.Error {
			t.Errorf("refused publish: span status %v, want Error", s.Status())
		}
		wantAttr(t, s, "error.type", "circuit_open")
	}
	if sends != refused {
		t.Errorf("%d send spans, want %d", sends, refused)
	}
	if r, ok := logs.find("circuit breaker open"); !ok || r.Level != slog.LevelWarn || r.attrs["breaker"] != "open" || r.attrs["err"] == "" {
		t.Errorf("breaker-open log record = %+v (found %v), want Warn with breaker=open and err", r, ok)
	}
	if r, ok := logs.find("state changed"); !ok || r.Level != slog.LevelInfo || r.attrs["state"] == "" {
		t.Errorf("state-change log record = %+v (found %v), want Info with state", r, ok)
	}
}

func TestTelemetryNothingRecordedForBadInput(t *testing.T) {
	o := newObserved(t, natstest.WithJetStream())
	ctx := natstest.Context(t, waitTimeout)
	calls := map[string]error{
		"Publish bad subject":         o.Client.Publish(ctx, "a b", nil),
		"PublishMsg nil":              o.Client.PublishMsg(ctx, nil),
		"PublishMsg bad reply":        o.Client.PublishMsg(ctx, &nats.Msg{Subject: "a", Reply: "b c"}),
		"Publish nil ctx":             o.Client.Publish(nil, "a", nil), //nolint:staticcheck // the mistake under test
		"RequestMsg nil":              func() error { _, err := o.Client.RequestMsg(ctx, nil); return err }(),
		"Request bad subject":         func() error { _, err := o.Client.Request(ctx, "a..b", nil); return err }(),
		"PublishToStream bad subject": func() error { _, err := o.Client.PublishToStream(ctx, "", nil); return err }(),
		"PublishMsgToStream nil":      func() error { _, err := o.Client.PublishMsgToStream(ctx, nil); return err }(),
		// Without trace headers the first two would fit the control line; with
		// them they are HPUB lines too long for it.
		"Publish over the control line with trace headers": o.Client.Publish(ctx, longSubject(4080), nil),
		"Request over the control line with trace headers": func() error {
			_, err := o.Client.Request(ctx, longSubject(4040), nil)
			return err
		}(),
		"PublishToStream over the control line": func() error {
			_, err := o.Client.PublishToStream(ctx, longSubject(4050), nil)
			return err
		}(),
		"SubscribeFunc nil handler": func() error { _, err := o.Client.SubscribeFunc("a", nil); return err }(),
		"SubscribeFunc bad subject": func() error { _, err := o.Client.SubscribeFunc("a b", func(context.Context, *nats.Msg) {}); return err }(),
		"QueueSubscribeFunc bad queue": func() error {
			_, err := o.Client.QueueSubscribeFunc("a", "q q", func(context.Context, *nats.Msg) {})
			return err
		}(),
	}
	for name, err := range calls {
		if !errors.Is(err, natsclient.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if spans := o.spans.Ended(); len(spans) != 0 {
		t.Errorf("spans recorded for refused calls: %v", spanNames(spans))
	}
	for _, name := range []string{"messaging.client.sent.messages", "messaging.client.operation.duration"} {
		if n, ok := o.metricSum(t, name); ok && n != 0 {
			t.Errorf("%s = %d after only refused calls", name, n)
		}
	}
	if got := o.Client.Stats().BreakerRejections; got != 0 {
		t.Errorf("BreakerRejections = %d after bad input", got)
	}
}

func TestTelemetryKVWriteSpansAndConflicts(t *testing.T) {
	o := newObserved(t, natstest.WithJetStream())
	ctx := natstest.Context(t, waitTimeout)
	bucket, err := o.Client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "cfg"})
	if err != nil {
		t.Fatal(err)
	}
	kv := o.Client.NewKVStore(bucket)
	rev, err := kv.Put(ctx, "site-1", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	put := o.span(t, "kv put")
	wantAttr(t, put, "bucket", "cfg")
	if _, ok := attr(put, "key"); ok {
		t.Error("kv span records the key without WithKVKeysInSpans")
	}
	if _, err := kv.Update(ctx, "site-1", []byte("b"), rev+100); !errors.Is(err, natsclient.ErrKVRevisionMismatch) {
		t.Fatalf("Update at a wrong revision = %v", err)
	}
	update := o.span(t, "kv update")
	if update.Status().Code != codes.Error {
		t.Errorf("failed update: span status %v", update.Status())
	}
	wantAttr(t, update, "error.type", "conflict")
	if n, _ := o.metricSum(t, "natsclient.kv.cas.conflicts"); n != 1 {
		t.Errorf("natsclient.kv.cas.conflicts = %d, want 1", n)
	}
}

// recordLog is a slog.Handler keeping every record with its attributes as
// text.
type recordLog struct {
	mu      sync.Mutex
	records []logRecord
}

type logRecord struct {
	Level slog.Level
	Msg   string
	attrs map[string]string
}

func (l *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *recordLog) WithGroup(string) slog.Handler            { return l }

func (l *recordLog) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, rec)
	return nil
}

func (l *recordLog) find(msg string) (logRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.Msg == msg {
			return r, true
		}
	}
	return logRecord{}, false
}

func TestRequestMsgAndPublishMsgToStreamCarryHeadersWithoutTelemetry(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithJetStream())
	ctx := natstest.Context(t, waitTimeout)
	if _, err := tc.Client.Subscribe("svc.hdr", func(m *nats.Msg) { _ = m.Respond([]byte(m.Header.Get("X-Tenant"))) }); err != nil {
		t.Fatal(err)
	}
	reply, err := tc.Client.RequestMsg(ctx, &nats.Msg{Subject: "svc.hdr", Header: nats.Header{"X-Tenant": []string{"acme"}}})
	if err != nil || string(reply.Data) != "acme" {
		t.Fatalf("RequestMsg: reply %v, err %v; want the header echoed", reply, err)
	}
	if _, err := tc.Client.CreateStream(ctx, jetstream.StreamConfig{Name: "HDR", Subjects: []string{"hdr.>"}}); err != nil {
		t.Fatal(err)
	}
	// The caller's own message ID is kept: sending the message twice stores it once.
	for i := 0; i < 2; i++ {
		msg := &nats.Msg{Subject: "hdr.a", Data: []byte("x"), Header: nats.Header{jetstream.MsgIDHeader: []string{"order-42"}}}
		ack, err := tc.Client.PublishMsgToStream(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Sequence != 1 || ack.Duplicate != (i == 1) {
			t.Fatalf("send %d: ack %+v, want sequence 1, duplicate on the second", i+1, ack)
		}
	}
}
