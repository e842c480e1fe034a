package natsclient

import (
	"context"
	"sync"
	"time"
)

// The hub link.
//
// A client of a leaf node reaches the hub's domain through the leaf's link
// to the hub. When that link drops and returns, the client's own connection
// never moved, so no state change tells its consumers and watchers in the
// hub's domain that what they had there is gone: the hub dropped the pull
// request of a Consume and the push consumer of a watcher with the link,
// and nats.go notices only by missed heartbeats (about 30 s for a Consume
// with jetstream's defaults). So while followers run in a named domain, the
// domain's link is watched: its JetStream is asked for the account's info
// every linkProbeInterval, and when it answers after it did not (no
// responders, a timeout), each follower starts a new session at once.

const (
	// linkProbeInterval is how often a domain with followers asks whether
	// its JetStream answers: the link's return is noticed within it. Each
	// probe is one small JetStream API request to the domain, only while a
	// Consume or watcher runs there.
	linkProbeInterval = 500 * time.Millisecond
	// linkProbeTimeout bounds one probe; a probe that gets no answer in it
	// counts as the domain unreachable (a frozen link).
	linkProbeTimeout = time.Second
)

// domainLink tells the followers of one domain when its JetStream answers
// again. Its probe goroutine runs while at least one follower listens.
type domainLink struct {
	mu        sync.Mutex
	listeners map[chan struct{}]struct{}
	stopProbe context.CancelFunc
	probeDone chan struct{}
}

// listen returns a channel that receives a value (buffered, never blocking
// the probe) each time the domain's JetStream answers after it did not, and
// the function that stops listening; the last listener to stop ends the
// probe and waits for it.
func (l *domainLink) listen(d *jsDomain) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	if l.listeners == nil {
		l.listeners = make(map[chan struct{}]struct{})
	}
	l.listeners[ch] = struct{}{}
	if len(l.listeners) == 1 {
		ctx, cancel := context.WithCancel(context.Background())
		l.stopProbe, l.probeDone = cancel, make(chan struct{})
		go l.probe(ctx, d, l.probeDone)
	}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.listeners, ch)
		var stop context.CancelFunc
		var done chan struct{}
		if len(l.listeners) == 0 {
			stop, done = l.stopProbe, l.probeDone
			l.stopProbe, l.probeDone = nil, nil
		}
		l.mu.Unlock()
		if stop != nil {
			stop()
			<-done
		}
	}
}

// probe asks the domain's JetStream for the account's info until ctx ends,
// and tells the listeners when it answers after a probe that got no answer.
// Probes are made only while the client is connected, and a result is
// ignored when the client's connection changed during it: the client's own
// state changes tell followers about that.
func (l *domainLink) probe(ctx context.Context, d *jsDomain, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(linkProbeInterval)
	defer tick.Stop()
	unreachable := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s, err := d.current()
		if err != nil || s.js == nil || s.state != StateConnected {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, linkProbeTimeout)
		_, err = s.js.AccountInfo(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if now := d.root.snap.Load(); now.gen != s.gen || now.state != StateConnected {
			continue
		}
		switch {
		case err != nil:
			unreachable = true
		case unreachable:
			unreachable = false
			l.tell()
		}
	}
}

// tell wakes every listener.
func (l *domainLink) tell() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.listeners {
		select {
		case ch <- struct{}{}:
		default: // already told, not yet read
		}
	}
}
