package natsclient

import (
	"context"
	"fmt"
	"sync"
)

// activity counts the goroutines of a client that run outside the
// supervisor and that Close waits for: followers (Consume, watchers) and
// Consume handlers while they run. The connection's drain does not wait for
// a handler whose Consume was stopped while it ran (jetstream unsubscribes
// rather than drains), so Close has to.
//
// Not a sync.WaitGroup: a handler may begin (add from zero) while Close
// waits, which a WaitGroup forbids.
type activity struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n falls to 0; nil while n is 0
}

func (a *activity) add() {
	a.mu.Lock()
	if a.n == 0 {
		a.idle = make(chan struct{})
	}
	a.n++
	a.mu.Unlock()
}

func (a *activity) done() {
	a.mu.Lock()
	if a.n--; a.n == 0 {
		close(a.idle)
		a.idle = nil
	}
	a.mu.Unlock()
}

// wait returns once nothing is counted, or with an error when ctx ends
// first.
func (a *activity) wait(ctx context.Context) error {
	for {
		a.mu.Lock()
		idle := a.idle
		a.mu.Unlock()
		if idle == nil {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("natsclient: close: a Consume handler or watcher has not returned: %w", context.Cause(ctx))
		}
	}
}
