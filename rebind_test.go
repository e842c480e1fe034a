package natsclient

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// Opening a handle only looks things up, so an attempt whose answer does not
// come is made again within the caller's ctx: a JetStream API request the
// server dropped under load left a cluster test's KeyValueBucket waiting two
// minutes for the one answer (CI). open stands in for jetstream's lookup, so
// that the first answer can be lost on purpose; the client and its
// connection are real.
func TestRebindAsksAgainWhenAnAnswerDoesNotCome(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	c, err := NewClient(srv.ClientURL(), WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}

	var calls atomic.Int32
	r := &rebinder[int]{c: c, open: func(actx context.Context, _ jetstream.JetStream) (int, error) {
		if calls.Add(1) == 1 {
			<-actx.Done() // the first answer never comes
			return 0, actx.Err()
		}
		return 42, nil
	}}
	_, v, err := r.bind(ctx)
	if err != nil || v != 42 || calls.Load() != 2 {
		t.Fatalf("bind = %d, %v after %d attempts, want 42 from the second", v, err, calls.Load())
	}

	// A lookup that is answered with an error is not asked again, and the
	// caller's ctx still bounds the whole.
	calls.Store(0)
	c2 := &rebinder[int]{c: c, open: func(context.Context, jetstream.JetStream) (int, error) {
		calls.Add(1)
		return 0, jetstream.ErrBucketNotFound
	}}
	if _, _, err := c2.bind(ctx); !errors.Is(err, jetstream.ErrBucketNotFound) || calls.Load() != 1 {
		t.Fatalf("bind = %v after %d attempts, want ErrBucketNotFound from one", err, calls.Load())
	}
	short, cancelShort := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	never := &rebinder[int]{c: c, open: func(actx context.Context, _ jetstream.JetStream) (int, error) {
		<-actx.Done()
		return 0, actx.Err()
	}}
	if _, _, err := never.bind(short); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("bind that is never answered = %v after %v, want DeadlineExceeded by the caller's 700ms", err, time.Since(start))
	}
}
