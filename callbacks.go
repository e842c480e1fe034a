package natsclient

import "sync/atomic"

// notifier runs user callbacks (disconnected, reconnected, closed) one at a
// time, in order, on a goroutine of its own, outside the supervisor, so that
// a callback may call back into the client, even Close. The supervisor
// queues them and hands them over one by one from its loop (next, taken),
// so it never waits for a callback; the last batch goes over as the loop
// ends (finish).
type notifier struct {
	// queue holds the callbacks not yet handed over, in order. Only the
	// supervisor's loop touches it.
	queue []func()
	in    chan func()
	// final has room for the one batch finish sends.
	final chan []func()
	// done is closed when the goroutine has run the last callback.
	done chan struct{}
	// inCallback is set while a callback runs, so that Close called from
	// inside one does not wait for done: the goroutine is its caller.
	inCallback atomic.Bool
}

func newNotifier() *notifier {
	return &notifier{in: make(chan func()), final: make(chan []func(), 1), done: make(chan struct{})}
}

// run runs callbacks until the last batch has run.
func (n *notifier) run() {
	defer close(n.done)
	for {
		select {
		case fn := <-n.in:
			n.call(fn)
		case rest := <-n.final:
			for _, fn := range rest {
				n.call(fn)
			}
			return
		}
	}
}

func (n *notifier) call(fn func()) {
	n.inCallback.Store(true)
	defer n.inCallback.Store(false)
	fn()
}

// add queues fn, when it is set.
func (n *notifier) add(fn func()) {
	if fn != nil {
		n.queue = append(n.queue, fn)
	}
}

// next is the channel and the callback for the loop's send case: a nil
// channel, which turns the case off, when nothing is queued.
func (n *notifier) next() (chan<- func(), func()) {
	if len(n.queue) == 0 {
		return nil, nil
	}
	return n.in, n.queue[0]
}

// taken drops the callback the goroutine took.
func (n *notifier) taken() {
	n.queue[0] = nil
	n.queue = n.queue[1:]
}

// finish hands what is queued to the goroutine, and last after it, and
// returns at once: the goroutine runs them and ends.
func (n *notifier) finish(last func()) {
	n.add(last)
	n.final <- n.queue
	n.queue = nil
}
