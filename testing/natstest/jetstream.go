package natstest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream returns jetstream on a plain nats.go connection to url, closed
// when the test ends: a view of the server beside the client under test, to
// set up streams or check what they hold without going through the client.
func JetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("natstest: connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream on %s: %v", url, err)
	}
	return js
}

// StreamMsgs reads every message stream holds, in stream order, through an
// ordered consumer of js: a test's final look at what a stream received. It
// reads as many messages as the stream held when it began, and fails the
// test if ctx ends first.
func StreamMsgs(t testing.TB, ctx context.Context, js jetstream.JetStream, stream string) []*nats.Msg {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("natstest: stream %s: %v", stream, err)
	}
	total := int(s.CachedInfo().State.Msgs)
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("natstest: ordered consumer of %s: %v", stream, err)
	}
	var out []*nats.Msg
	for len(out) < total {
		batch, err := cons.Fetch(min(total-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("natstest: fetch from %s: %v", stream, err)
		}
		for m := range batch.Messages() {
			out = append(out, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("natstest: fetch from %s: %v", stream, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("natstest: read %d of the %d messages of %s: %v", len(out), total, stream, ctx.Err())
		}
	}
	return out
}
