package bench

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The benchmarks only run with -bench. These tests run in the normal
// `go test ./...` and check, once per pair, that both sides do what the
// benchmark claims to measure: the message arrives with its payload and
// headers, the reply comes back, the open breaker refuses the call.

func TestPairsDeliver(t *testing.T) {
	for _, p := range corePairs {
		t.Run(p.name, func(t *testing.T) {
			r := newRig(t, false)
			watcher := dialRaw(t, r.url)
			msgs := make(chan *nats.Msg, 4)
			if _, err := watcher.ChanSubscribe(p.subject, msgs); err != nil {
				t.Fatal(err)
			}
			if err := watcher.Flush(); err != nil {
				t.Fatal(err)
			}
			raw, client := p.ops(t, r, p)
			for side, o := range map[string]op{"raw": raw, "client": client} {
				if err := o(); err != nil {
					t.Fatalf("%s side: %v", side, err)
				}
				m := natstest.Receive(t, msgs, waitTimeout, side+" message on "+p.subject)
				if len(m.Data) != p.size {
					t.Errorf("%s side: payload of %d bytes, want %d", side, len(m.Data), p.size)
				}
				if p.headers {
					for k := range benchHeaders {
						if got, want := m.Header.Get(k), benchHeaders.Get(k); got != want {
							t.Errorf("%s side: header %s = %q, want %q", side, k, got, want)
						}
					}
				}
			}
		})
	}
}

func TestBreakerOpenFailsFast(t *testing.T) {
	c := openBreaker(t)
	for name, o := range breakerOpenOps(t, c) {
		if err := o(); err != nil {
			t.Errorf("%s while the breaker is open: %v", name, err)
		}
	}
	// The benchmark's target is no allocation; check it here too, where a
	// regression fails the normal test run.
	publish := breakerOpenOps(t, c)["Publish"]
	if n := testing.AllocsPerRun(100, func() { _ = publish() }); n != 0 {
		t.Errorf("Publish while the breaker is open: %v allocs/op, want 0", n)
	}
}

func TestKVPairsWork(t *testing.T) {
	for _, p := range kvPairs {
		t.Run(p.name, func(t *testing.T) {
			r := newKVRig(t)
			raw, client := p.ops(t, r)
			before := map[string]uint64{rawKey: lastRevision(t, r, rawKey), clientKey: lastRevision(t, r, clientKey)}
			for key, o := range map[string]op{rawKey: raw, clientKey: client} {
				if err := o(); err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				if p.name != "Get" && lastRevision(t, r, key) <= before[key] {
					t.Errorf("%s: %s did not write (revision %d before and after)", p.name, key, before[key])
				}
			}
			if p.name == "UpdateJSON/1writer" {
				for _, key := range []string{rawKey, clientKey} {
					if n := counter(t, r, key); n != 1 {
						t.Errorf("%s: n = %v after one increment, want 1", key, n)
					}
				}
			}
		})
	}
}

// lastRevision is the key's latest revision, 0 when it has none.
func lastRevision(t *testing.T, r *kvRig, key string) uint64 {
	t.Helper()
	e, err := r.raw.Get(context.Background(), key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return e.Revision()
}

// counter decodes the key's value and returns its "n".
func counter(t *testing.T, r *kvRig, key string) float64 {
	t.Helper()
	e, err := r.raw.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	var m map[string]any
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		t.Fatalf("decode %s: %v", key, err)
	}
	n, _ := m["n"].(float64)
	return n
}

// The restart measurements run once each, small, and must report what the
// benchmarks report; each also fails by itself when what it measures goes
// wrong (a missed event, a subscriber not holding the present, a
// subscription that does not receive again, a client that did not dial).
func TestRestartMeasurementsWork(t *testing.T) {
	check := func(t *testing.T, m *meter, units ...string) {
		t.Helper()
		for _, u := range units {
			if v, ok := m.metrics[u]; !ok || v <= 0 {
				t.Errorf("%s = %v (reported: %t), want a positive measurement", u, v, ok)
			}
		}
	}
	t.Run("StateFanout", func(t *testing.T) {
		m := testMeter(t, 1)
		stateFanout(m, 10)
		check(t, m, "ns/event")
	})
	t.Run("Reconnect", func(t *testing.T) {
		m := testMeter(t, 1)
		reconnect(m)
		check(t, m, "raw-ms", "client-ms")
	})
	subjects := resubscribeSubjects(50)
	t.Run("Resubscribe/raw", func(t *testing.T) {
		m := testMeter(t, 1)
		rawResubscribe(m, subjects)
		check(t, m, "ms/connected", "ms/receiving")
	})
	t.Run("Resubscribe/client", func(t *testing.T) {
		m := testMeter(t, 2)
		clientResubscribe(m, subjects)
		check(t, m, "ms/connected", "ms/receiving")
	})
}
