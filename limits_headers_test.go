package natsclient_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
)

// tracedOption is a tracer provider of the real SDK that samples every span,
// so that every send carries a traceparent header.
func tracedOption(t *testing.T) natstest.Option {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return natstest.WithClientOptions(natsclient.WithTracerProvider(tp), natsclient.WithCircuitBreakerThreshold(1))
}

// cloneHeader copies h: PublishMsgToStream adds its message ID to the
// headers it is given.
func cloneHeader(h nats.Header) nats.Header {
	if h == nil {
		return nil
	}
	out := nats.Header{}
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// keptConnection fails the test if the client lost its connection or counted
// a failure: what a message the server refused would have cost.
func keptConnection(t *testing.T, c *natsclient.Client) {
	t.Helper()
	if err := c.Flush(natstest.Context(t, waitTimeout)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	st := c.Stats()
	if st.Connections != 1 || st.Reconnects != 0 || st.ConsecutiveFailures != 0 || st.BreakerTrips != 0 || st.Breaker != natsclient.BreakerClosed {
		t.Fatalf("the server refused a message the client sent: %+v", st)
	}
}

// traceparentLen is what a traceparent header adds to a message without
// other headers: "NATS/1.0\r\n", "traceparent: <55 characters>\r\n", "\r\n".
const traceparentLen = len("NATS/1.0\r\n") + len("traceparent: ") + 55 + len("\r\n") + len("\r\n")

// The server counts a message's headers toward max_payload with its data,
// the trace context injected with tracing on included. A message over it is
// refused before it is sent, with an error naming the limit and the
// headers, and costs neither the connection nor a breaker failure (the
// breaker here opens at the first one).
func TestHeadersCountTowardMaxPayload(t *testing.T) {
	const limit = 1024
	tc := natstest.NewTestClient(t, natstest.WithJetStream(), tracedOption(t),
		natstest.WithServerOptions(func(o *server.Options) { o.MaxPayload = limit }))
	c, ctx := tc.Client, natstest.Context(t, waitTimeout)
	if _, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "BIG", Subjects: []string{"big.>"}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan *nats.Msg, 1)
	if _, err := c.Subscribe("fits", func(m *nats.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	// Data and trace headers exactly at the limit: sent and received.
	if err := c.Publish(ctx, "fits", make([]byte, limit-traceparentLen)); err != nil {
		t.Fatalf("Publish of %d bytes with a %d-byte traceparent, max_payload %d: %v", limit-traceparentLen, traceparentLen, limit, err)
	}
	if m := natstest.Receive(t, got, waitTimeout, "the message at the limit"); m.Header.Get("traceparent") == "" {
		t.Fatal("the message at the limit came without its traceparent")
	}
	header := nats.Header{"Pad": []string{strings.Repeat("h", 200)}}
	over := map[string]error{
		"Publish, one byte over with the traceparent": c.Publish(ctx, "big.a", make([]byte, limit-traceparentLen+1)),
		"Publish, data alone at the limit":            c.Publish(ctx, "big.a", make([]byte, limit)),
		"PublishMsg":                                  c.PublishMsg(ctx, &nats.Msg{Subject: "big.a", Data: make([]byte, limit-100), Header: header}),
	}
	_, over["RequestMsg"] = c.RequestMsg(ctx, &nats.Msg{Subject: "big.a", Data: make([]byte, limit-100), Header: header})
	_, over["Request"] = c.Request(ctx, "big.a", make([]byte, limit-50))
	_, over["PublishToStream"] = c.PublishToStream(ctx, "big.a", make([]byte, limit-50))
	_, over["PublishMsgToStream"] = c.PublishMsgToStream(ctx, &nats.Msg{Subject: "big.a", Data: make([]byte, limit-100), Header: header})
	for name, err := range over {
		if !errors.Is(err, nats.ErrMaxPayload) {
			t.Errorf("%s = %v, want nats.ErrMaxPayload", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(limit)) || !strings.Contains(msg, "headers") {
			t.Errorf("%s = %v: does not name the %d-byte limit and the headers", name, err, limit)
		}
	}
	keptConnection(t, c)
	if n := c.Stats().BreakerRejections; n != 0 {
		t.Fatalf("BreakerRejections = %d", n)
	}
}

// A message with headers goes as HPUB, whose line carries the header size
// and the total size: the control-line check counts them, for headers of
// the caller's, injected trace context and JetStream's own. Over a sweep of
// subject lengths around the limit and header sizes of up to six digits,
// every message the client sends is taken by a real server (max_control_line
// 4096, its default) without losing the connection, and the rest are
// refused before sending, naming the limit.
func TestHeaderLinesFitTheServerControlLine(t *testing.T) {
	headers := map[string]nats.Header{
		"no headers":           nil,
		"a small header":       {"K": []string{"v"}},
		"a 20000-byte header":  {"Pad": []string{strings.Repeat("h", 20000)}},
		"a 200000-byte header": {"Pad": []string{strings.Repeat("h", 200000)}},
	}
	for _, traced := range []bool{false, true} {
		t.Run(fmt.Sprintf("traced=%v", traced), func(t *testing.T) {
			opts := []natstest.Option{natstest.WithJetStream(), natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1))}
			if traced {
				opts = append(opts, tracedOption(t))
			}
			tc := natstest.NewTestClient(t, opts...)
			c, ctx := tc.Client, natstest.Context(t, waitTimeout)
			if _, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "LONG", Subjects: []string{"s.>"}}); err != nil {
				t.Fatal(err)
			}
			sent, refused := 0, 0
			check := func(what string, n int, err error) {
				t.Helper()
				switch {
				case err == nil || errors.Is(err, nats.ErrNoResponders):
					sent++
				case errors.Is(err, natsclient.ErrInvalidArgument) && strings.Contains(err.Error(), "4096") && strings.Contains(err.Error(), "control-line"):
					refused++
				default:
					t.Fatalf("%s, subject of %d bytes: %v", what, n, err)
				}
			}
			for name, h := range headers {
				for n := 4030; n <= 4100; n++ {
					subject := "s." + longSubject(n-2)
					check("PublishMsg with "+name, n, c.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h}))
					_, err := c.RequestMsg(ctx, &nats.Msg{Subject: subject, Header: h})
					check("RequestMsg with "+name, n, err)
					if h == nil {
						check("Publish", n, c.Publish(ctx, subject, []byte("x")))
					}
					if n%5 == 0 && len(h) == 0 || n%5 == 0 && len(h["Pad"]) > 0 && len(h["Pad"][0]) == 20000 {
						_, err := c.PublishMsgToStream(ctx, &nats.Msg{Subject: subject, Header: cloneHeader(h)})
						check("PublishMsgToStream with "+name, n, err)
					}
				}
			}
			keptConnection(t, c)
			if sent == 0 || refused == 0 {
				t.Fatalf("%d sent, %d refused: the sweep does not cross the limit", sent, refused)
			}
		})
	}
}

// The message that showed the fault: with a 20000-byte header and no data
// the HPUB line is 4085+20 bytes, over the server's limit; the check that
// counted the header size at the width of the data's (one digit) let it
// through and the server closed the connection. The client now refuses it,
// and a plain nats.go connection shows that the server does refuse it.
func TestHeaderSizeOverTheControlLineIsRefused(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)))
	c, ctx := tc.Client, natstest.Context(t, waitTimeout)
	msg := func() *nats.Msg {
		return &nats.Msg{Subject: longSubject(4085), Header: nats.Header{"Pad": []string{strings.Repeat("h", 20000)}}}
	}
	err := c.PublishMsg(ctx, msg())
	if !errors.Is(err, natsclient.ErrInvalidArgument) || !strings.Contains(err.Error(), "HPUB") || !strings.Contains(err.Error(), "4096") {
		t.Fatalf("PublishMsg = %v, want ErrInvalidArgument naming the HPUB line and the 4096-byte limit", err)
	}
	keptConnection(t, c)

	closed := make(chan struct{})
	nc, err := nats.Connect(tc.URL, nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.PublishMsg(msg()); err != nil {
		t.Fatalf("nats.go PublishMsg: %v", err)
	}
	_ = nc.Flush()
	natstest.Receive(t, closed, waitTimeout, "the server closing the plain connection")
	if err := nc.LastError(); err == nil || !strings.Contains(err.Error(), "maximum control line exceeded") {
		t.Fatalf("the plain connection ended with %v, want the server's maximum control line error", err)
	}
}
