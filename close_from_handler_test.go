package natsclient_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
)

// closeReturns fails the test unless result (Close's error, sent by the
// goroutine that called it) comes, nil, within the wait deadline, and checks
// the client is closed for good.
func closeReturns(t *testing.T, c *natsclient.Client, result <-chan error, from string) {
	t.Helper()
	if err := natstest.Receive(t, result, waitTimeout, "the return of Close called from "+from); err != nil {
		t.Fatalf("Close from %s = %v", from, err)
	}
	if st := c.State(); st != natsclient.StateClosed {
		t.Fatalf("State after Close from %s = %v", from, st)
	}
	if err := c.Close(natstest.Context(t, waitTimeout)); err != nil {
		t.Fatalf("Close again after Close from %s = %v", from, err)
	}
}

// Close called from a Consume handler returns, although the connection's
// drain waits for the consumer's deliveries, the calling handler's among
// them; the client's goroutines end once the handler has returned (goleak
// checks). Before, the drain waited for the handler that waited for it.
func TestCloseFromConsumeHandler(t *testing.T) {
	for _, withCtx := range []bool{false, true} {
		name := "Consume"
		if withCtx {
			name = "ConsumeFunc"
		}
		t.Run(name, func(t *testing.T) {
			tc := natstest.NewTestClient(t, natstest.WithJetStream())
			c, ctx := tc.Client, natstest.Context(t, waitTimeout)
			if _, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}}); err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				if _, err := c.PublishToStream(ctx, "jobs.run", []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			result := make(chan error, 1)
			closeOnce := func() error {
				select {
				case result <- c.Close(context.Background()):
				default: // a later message, delivered while closing
				}
				return nil
			}
			var err error
			if withCtx {
				_, err = c.ConsumeFunc(ctx, "JOBS", "worker", func(context.Context, jetstream.Msg) error { return closeOnce() })
			} else {
				_, err = c.Consume(ctx, "JOBS", "worker", func(jetstream.Msg) error { return closeOnce() })
			}
			if err != nil {
				t.Fatal(err)
			}
			closeReturns(t, c, result, "a "+name+" handler")
		})
	}
}

// Close called by the goroutine that reads a KV watcher's updates returns,
// also with more entries pending than the watcher buffers: the watch's
// subscription, which the drain waits for, is blocked handing on entries
// that nobody reads while Close runs. It is tried with the KVStore's
// watcher and with the bucket's own watch methods.
func TestCloseFromKVWatchReader(t *testing.T) {
	watches := map[string]func(jetstream.KeyValue, *natsclient.KVStore, context.Context) (jetstream.KeyWatcher, error){
		"KVStore.Watch": func(_ jetstream.KeyValue, kv *natsclient.KVStore, ctx context.Context) (jetstream.KeyWatcher, error) {
			return kv.Watch(ctx, ">")
		},
		"bucket Watch": func(b jetstream.KeyValue, _ *natsclient.KVStore, ctx context.Context) (jetstream.KeyWatcher, error) {
			return b.Watch(ctx, ">")
		},
		"bucket WatchAll": func(b jetstream.KeyValue, _ *natsclient.KVStore, ctx context.Context) (jetstream.KeyWatcher, error) {
			return b.WatchAll(ctx)
		},
		"bucket WatchFiltered": func(b jetstream.KeyValue, _ *natsclient.KVStore, ctx context.Context) (jetstream.KeyWatcher, error) {
			return b.WatchFiltered(ctx, []string{"k.>"})
		},
	}
	for name, watch := range watches {
		for _, keys := range []int{3, 1000} {
			t.Run(fmt.Sprintf("%s/%d keys", name, keys), func(t *testing.T) {
				tc := natstest.NewTestClient(t, natstest.WithKV())
				c, ctx := tc.Client, natstest.Context(t, waitTimeout)
				bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "watched"})
				for i := range keys {
					if _, err := bucket.Put(ctx, fmt.Sprintf("k.%d", i), []byte("v")); err != nil {
						t.Fatal(err)
					}
				}
				// The watch lives past Close: only Close may end it.
				w, err := watch(bucket, kv, context.Background())
				if err != nil {
					t.Fatal(err)
				}
				defer w.Stop()
				if keys > cap(w.Updates()) {
					// Close only once the watcher's buffer is full and its
					// subscription blocked with more: the case that hung.
					natstest.Eventually(t, waitTimeout, "the watcher's buffer full", func() bool { return len(w.Updates()) == cap(w.Updates()) })
				}
				result := make(chan error, 1)
				go func() {
					for range w.Updates() {
						result <- c.Close(context.Background())
						return
					}
				}()
				closeReturns(t, c, result, "a "+name+" reader")
			})
		}
	}
}

// Close returns only once a Consume handler that was running has returned:
// Close's promise is that every goroutine the client started has ended. The
// Consume's ctx ends while its handler runs, so that jetstream unsubscribes
// and the connection's drain no longer waits for the handler; the handler
// is held until the client's connection is gone (the server counts no
// client), when Close has nothing else left to wait for, and the order in
// which the handler and Close then finish is what is checked. Before, Close
// returned with the handler still running.
func TestCloseWaitsForARunningConsumeHandler(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithJetStream())
	c, ctx := tc.Client, natstest.Context(t, waitTimeout)
	if _, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishToStream(ctx, "jobs.run", []byte("held")); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	order := make(chan string, 2)
	var once sync.Once
	consumeCtx, endConsume := context.WithCancel(ctx)
	defer endConsume()
	if _, err := c.Consume(consumeCtx, "JOBS", "worker", func(jetstream.Msg) error {
		once.Do(func() {
			close(entered)
			<-release
			order <- "handler returned"
		})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	natstest.Receive(t, entered, waitTimeout, "the handler's start")
	subs := tc.Server.Varz().Subscriptions
	endConsume()
	natstest.Eventually(t, waitTimeout, "the consumer's subscription gone", func() bool { return tc.Server.Varz().Subscriptions < subs })
	closed := make(chan error, 1)
	go func() {
		err := c.Close(context.Background())
		order <- "Close returned"
		closed <- err
	}()
	natstest.Eventually(t, waitTimeout, "the server without the client's connection", func() bool { return tc.Server.NumClients() == 0 })
	close(release)
	if first := natstest.Receive(t, order, waitTimeout, "the handler's or Close's end"); first != "handler returned" {
		t.Fatalf("%s first, while the Consume handler was still running", first)
	}
	if err := natstest.Receive(t, closed, waitTimeout, "Close's return"); err != nil {
		t.Fatalf("Close = %v", err)
	}
}
