package reliability_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// Issue 12: the stream workload, checked the way Jepsen checked NATS
// 2.12.1. Publishers send numbered messages, each with its own message ID,
// one after another, to an R3 stream while the nemesis runs; then one
// reader reads the whole stream back from its leader. Every acknowledged
// message must be there exactly once, at the sequence its acknowledgement
// gave; nothing may be there that was never sent; each publisher's
// acknowledged messages must keep their order. A publish that ended in an
// error may or may not be stored (PublishToStream resends the same ID until
// its context ends); such messages are counted, each once, stored or not.
func TestLinearizableStream(t *testing.T) {
	const (
		publishers = 3
		stream     = "JEP"
	)
	seed := runSeed(t)
	budget := runBudget(t) / 3
	cl := natstest.NewCluster(t, 3)
	admin := newLinClient(t, cl)
	if err := cl.Place(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), natstest.PlaceAttempt)
		defer cancel()
		_, err := admin.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"jep.>"}, Replicas: 3})
		return err
	}); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	pubs := make([]*streamPublisher, publishers)
	for i := range pubs {
		pubs[i] = &streamPublisher{id: i, c: newLinClient(t, cl), r: childRand(seed, i+1), acked: map[int]uint64{}, unknown: map[int]bool{}}
		pubs[i].usable = newUsableWaiter(t, pubs[i].c)
		wg.Go(func() { pubs[i].run(stop) })
	}
	n := newNemesis(t, cl, childRand(seed, 0), stream)
	n.run(time.Now().Add(budget))
	close(stop)
	wg.Wait()

	stored := readStream(t, admin, stream)
	violations, unknownStored := streamViolations(pubs, stored)
	var sent, acked, unknown int
	for _, p := range pubs {
		sent += p.next
		acked += len(p.acked)
		unknown += len(p.unknown)
	}
	t.Logf("messages sent: %d, acknowledged: %d, unknown outcome: %d (%.2f%%, %d of them stored), in the stream: %d; faults: %s",
		sent, acked, unknown, 100*float64(unknown)/float64(max(sent, 1)), unknownStored, len(stored), n.report())
	if acked < 50 {
		t.Fatalf("only %d messages acknowledged: the workload made too little progress to prove anything", acked)
	}
	for _, v := range violations {
		t.Error(v)
	}
}

// streamViolations checks what the stream holds (message ID by sequence)
// against what the publishers sent, and counts the messages of unknown
// outcome that were stored.
func streamViolations(pubs []*streamPublisher, stored map[uint64]string) (violations []string, unknownStored int) {
	seen := map[string][]uint64{} // message ID → the sequences it is stored at
	for seq, id := range stored {
		seen[id] = append(seen[id], seq)
	}
	for id, at := range seen {
		slices.Sort(at)
		if !sentBy(pubs, id) { // an ID no publisher used, or none at all
			violations = append(violations, fmt.Sprintf("%q stored at %v was never sent", id, at))
		}
	}
	for _, p := range pubs {
		last := uint64(0)
		for k := range p.next {
			id := msgID(p.id, k)
			at := seen[id]
			if len(at) > 1 {
				violations = append(violations, fmt.Sprintf("%s stored %d times, at %v", id, len(at), at))
			}
			if p.unknown[k] && len(at) > 0 {
				unknownStored++
			}
			ack, ok := p.acked[k]
			if !ok {
				continue
			}
			switch {
			case len(at) == 0:
				violations = append(violations, fmt.Sprintf("%s acknowledged at sequence %d is missing: the server lost an acknowledged message", id, ack))
			case at[0] != ack:
				violations = append(violations, fmt.Sprintf("%s acknowledged at sequence %d is stored at %d", id, ack, at[0]))
			case ack <= last:
				violations = append(violations, fmt.Sprintf("%s acknowledged at sequence %d, before the publisher's previous acknowledged message (%d)", id, ack, last))
			}
			last = max(last, ack)
		}
	}
	slices.Sort(violations)
	return violations, unknownStored
}

// streamPublisher sends numbered messages one after another and remembers how
// each ended.
type streamPublisher struct {
	id      int
	c       *natsclient.Client
	r       *rand.Rand
	usable  *usableWaiter
	next    int            // messages sent: 0 … next-1
	acked   map[int]uint64 // message number → acknowledged sequence
	unknown map[int]bool   // message numbers whose publish failed
}

func msgID(publisher, k int) string { return fmt.Sprintf("p%d-%d", publisher, k) }

func (p *streamPublisher) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		k := p.next
		p.next++
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+p.r.IntN(5))*time.Second)
		ack, err := p.c.PublishToStream(ctx, "jep."+strconv.Itoa(p.id), []byte(strconv.Itoa(k)), jetstream.WithMsgID(msgID(p.id, k)))
		cancel()
		if err == nil {
			p.acked[k] = ack.Sequence
			continue
		}
		p.unknown[k] = true
		if !p.usable.wait() {
			return
		}
	}
}

// sentBy reports whether id is a message one of pubs sent.
func sentBy(pubs []*streamPublisher, id string) bool {
	var p, k int
	if _, err := fmt.Sscanf(id, "p%d-%d", &p, &k); err != nil || msgID(p, k) != id {
		return false
	}
	return p >= 0 && p < len(pubs) && k >= 0 && k < pubs[p].next
}

// readStream reads every message of stream back from its leader, sequence
// by sequence up to the last one the leader reports, with readBackWorkers
// readers at once, and returns each sequence's message ID. A cluster that
// has just healed may still answer "no responders" or time out for a
// moment, and an ordered consumer proved fragile then (it lost its consumer
// again and again); reading by sequence retries only the message that
// failed, for up to readBackWait.
func readStream(t *testing.T, c *natsclient.Client, name string) map[uint64]string {
	t.Helper()
	var st jetstream.Stream
	err := retryRead(func(ctx context.Context) (err error) {
		st, err = c.Stream(ctx, name)
		return err
	})
	if err != nil {
		t.Fatalf("read stream %s back: stream info: %v", name, err)
	}
	last := st.CachedInfo().State.LastSeq
	var (
		mu      sync.Mutex
		stored  = map[uint64]string{}
		failure error
		seqs    = make(chan uint64)
		wg      sync.WaitGroup
	)
	for range readBackWorkers {
		wg.Go(func() {
			for seq := range seqs {
				var m *jetstream.RawStreamMsg
				err := retryRead(func(ctx context.Context) (err error) {
					m, err = st.GetMsg(ctx, seq) // the stream has no direct gets: its leader answers
					if errors.Is(err, jetstream.ErrMsgNotFound) {
						m, err = nil, nil // nothing was stored at seq
					}
					return err
				})
				mu.Lock()
				switch {
				case err != nil:
					failure = cmp.Or(failure, fmt.Errorf("message %d of %d: %w", seq, last, err))
				case m != nil:
					stored[seq] = m.Header.Get(jetstream.MsgIDHeader)
				}
				mu.Unlock()
			}
		})
	}
	for seq := uint64(1); seq <= last; seq++ {
		seqs <- seq
	}
	close(seqs)
	wg.Wait()
	if failure != nil {
		t.Fatalf("read stream %s back: %v", name, failure)
	}
	return stored
}

// Reading a stream back: readers at once, and how long one read may keep
// failing before the test gives up.
const (
	readBackWorkers = 8
	readBackWait    = time.Minute
)

// retryRead calls read, each time with a deadline of its own, until it
// succeeds or readBackWait has passed.
func retryRead(read func(ctx context.Context) error) error {
	deadline := time.Now().Add(readBackWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := read(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (still failing after %v)", err, readBackWait)
		}
		time.Sleep(50 * time.Millisecond) // a pause between retries, not a wait for an event
	}
}
