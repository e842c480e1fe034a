package outbox_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
)

// After Close, Stats reports what the file holds, not zeros: the pending
// messages are still there, and the next Open sends them. Publish calls that
// race Close are in the figures exactly when they returned an id.
func TestStatsAfterCloseReportTheFile(t *testing.T) {
	// A client that never connects: nothing is forwarded, and Stats says
	// why.
	client, err := natsclient.NewClient("nats://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	path := outboxPath(t)
	ob, err := outbox.Open(client, path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := natstest.Context(t, testTimeout)
	var stored atomic.Int64
	for range 200 {
		if _, err := ob.Publish(ctx, "out.x", []byte("pending")); err != nil {
			t.Fatal(err)
		}
		stored.Add(1)
	}
	if st := ob.Stats(); st.Waiting == "" {
		t.Errorf("stats %+v: want Waiting to say that the client is not connected", st)
	}

	// Publishers racing Close.
	var wg sync.WaitGroup
	started := make(chan struct{}, 4)
	for range 4 {
		wg.Go(func() {
			started <- struct{}{}
			for {
				_, err := ob.Publish(ctx, "out.x", []byte("racing"))
				if errors.Is(err, outbox.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("publish racing Close: %v", err)
					return
				}
				stored.Add(1)
			}
		})
	}
	for range 4 {
		<-started
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ob.Close(cctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	want := int(stored.Load())
	st := ob.Stats()
	if st.Pending != want || st.PendingBytes == 0 || st.Oldest.IsZero() {
		t.Errorf("stats after Close %+v; want %d pending (every Publish that returned an id), their bytes and the oldest's time", st, want)
	}

	reopened := openOutbox(t, client, path)
	if got := reopened.Stats(); got.Pending != want || got.PendingBytes != st.PendingBytes || !got.Oldest.Equal(st.Oldest) {
		t.Errorf("the file holds %d messages (%d bytes, oldest %v); Stats after Close said %d (%d bytes, oldest %v)",
			got.Pending, got.PendingBytes, got.Oldest, st.Pending, st.PendingBytes, st.Oldest)
	}
}
