package outbox_test

import (
	"sync"
	"testing"
	"time"

	"github.com/c360/natsclient/outbox"
)

// orderCuts is how many times TestOrderAcrossCuts cuts the connection while
// the outbox forwards.
const orderCuts = 30

// Strict order with the client's default options (nats.go's reconnect buffer
// on). The cuts are aimed at the moment the forwarder writes: each one
// follows a message reaching the server, with latency on the link so that
// the messages written just before a cut are still in flight and lost with
// it. A publish that raced the cut into a reconnect buffer would be stored
// on the next connection ahead of them, and the stream would show it.
func TestOrderAcrossCuts(t *testing.T) {
	tc := newEnv(t)
	// A wide window and a backlog keep the forwarder writing when the cut
	// comes.
	ob := openOutbox(t, tc.Client, outboxPath(t), outbox.WithMaxInFlight(2048))
	tc.Server.Stop()
	want := publishConcurrently(t, ob, faultPublishers, 5*faultPerPublisher)
	tc.Server.Start()
	seen := subscribeDirect(t, tc.Server.DirectURL(), 1)
	tc.Server.Latency(time.Millisecond)

	stop := make(chan struct{})
	var cutter sync.WaitGroup
	cuts := 0
	cutter.Go(func() {
		for cuts < orderCuts {
			select {
			case <-seen:
				tc.Server.CutConnections()
				cuts++
			case <-stop:
				return
			}
		}
	})
	flush(t, ob)
	close(stop)
	cutter.Wait()
	tc.Server.Latency(0)
	t.Logf("%d cuts; stats %+v", cuts, ob.Stats())
	checkInterleaved(t, tc.URL, streamName, want)
}
