package bench

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
				m := receive(t, msgs, side+" message on "+p.subject)
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
	for name, o := range breakerOpenOps(c) {
		if err := o(); err != nil {
			t.Errorf("%s while the breaker is open: %v", name, err)
		}
	}
	// The benchmark's target is no allocation; check it here too, where a
	// regression fails the normal test run.
	publish := breakerOpenOps(c)["Publish"]
	if n := testing.AllocsPerRun(100, func() { _ = publish() }); n != 0 {
		t.Errorf("Publish while the breaker is open: %v allocs/op, want 0", n)
	}
}

// receive waits for one value on ch.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("no %s within %v", what, waitTimeout)
	}
	var zero T
	return zero
}
