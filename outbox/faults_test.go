package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
)

const (
	faultPublishers   = 4
	faultPerPublisher = 500
)

// Faults while the outbox forwards, on whichever backend NATSTEST_BACKEND
// names (CI runs both): the stream must end up holding exactly what Publish
// accepted, once each, in each publisher's order.
func TestFaultsDuringForwarding(t *testing.T) {
	t.Run("cut every 100ms", func(t *testing.T) {
		tc := newEnv(t)
		want := publishUnderCuts(t, tc)
		checkInterleaved(t, tc.URL, streamName, want)
	})

	t.Run("restart", func(t *testing.T) {
		tc := newEnv(t)
		ob := openOutbox(t, tc.Client, outboxPath(t))
		// A backlog, so that the restart comes while it is being sent: a
		// subscriber straight to the server says when forwarding began.
		tc.Server.Stop()
		first := publishConcurrently(t, ob, faultPublishers, faultPerPublisher/2)
		tc.Server.Start()
		seen := subscribeDirect(t, tc.Server.DirectURL(), 64)
		tc.Server.Latency(5 * time.Millisecond)
		natstest.Await(t, seen, waitTimeout, "the backlog reaching the server", nil)
		tc.Server.Restart()
		tc.Server.Latency(0)
		second := publishConcurrentlyFrom(t, ob, faultPublishers, faultPerPublisher/2, faultPerPublisher/2)
		flush(t, ob)
		t.Logf("stats %+v", ob.Stats())
		checkInterleaved(t, tc.URL, streamName, joinPublishers(first, second))
	})

	t.Run("freeze", func(t *testing.T) {
		tc := newEnv(t)
		ob := openOutbox(t, tc.Client, outboxPath(t), outbox.WithAckTimeout(300*time.Millisecond))
		first := publishConcurrently(t, ob, faultPublishers, faultPerPublisher/2)
		tc.Server.Freeze()
		second := publishConcurrentlyFrom(t, ob, faultPublishers, faultPerPublisher/2, faultPerPublisher/2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := ob.Flush(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("flush while frozen: %v, want the deadline", err)
		}
		tc.Server.Thaw()
		flush(t, ob)
		t.Logf("stats %+v", ob.Stats())
		checkInterleaved(t, tc.URL, streamName, joinPublishers(first, second))
	})
}

// publishUnderCuts publishes from several goroutines, and flushes, while
// every client connection is cut each 100ms; it returns what was published.
func publishUnderCuts(t *testing.T, tc *natstest.TestClient) [][]sent {
	t.Helper()
	ob := openOutbox(t, tc.Client, outboxPath(t))
	stop := make(chan struct{})
	var cutter sync.WaitGroup
	cuts := 0
	cutter.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				tc.Server.CutConnections()
				cuts++
			case <-stop:
				return
			}
		}
	})
	want := publishConcurrently(t, ob, faultPublishers, faultPerPublisher)
	flush(t, ob)
	close(stop)
	cutter.Wait()
	t.Logf("%d cuts; stats %+v", cuts, ob.Stats())
	return want
}

// joinPublishers appends each publisher's later messages to its earlier
// ones; the data already says publisher and index.
func joinPublishers(a, b [][]sent) [][]sent {
	out := make([][]sent, len(a))
	for g := range a {
		out[g] = append(append([]sent(nil), a[g]...), b[g]...)
	}
	return out
}

// subscribeDirect subscribes to every outbox subject on a connection of its
// own straight to the server (past the fault proxy), and returns the
// messages as they reach the server. The connection closes with the test.
func subscribeDirect(t testing.TB, url string, buffer int) <-chan *nats.Msg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	seen := make(chan *nats.Msg, buffer)
	_, err = nc.Subscribe(subjectPfx+">", func(m *nats.Msg) {
		select {
		case seen <- m:
		default: // the test reads only as many as it waits for
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return seen
}
