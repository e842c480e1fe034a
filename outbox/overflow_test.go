package outbox_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/c360/natsclient/outbox"

	"github.com/c360/natsclient/testing/natstest"
)

const overflowBudget = 2000

var payload100 = strings.Repeat("p", 100)

func TestOverflowReject(t *testing.T) {
	tc := newEnv(t)
	tc.Server.Stop()
	ob := openOutbox(t, tc.Client, outboxPath(t), outbox.WithMaxBytes(overflowBudget))
	ctx := natstest.Context(t, testTimeout)
	var accepted []sent
	refused := 0
	for i := range 40 {
		data := strconv.Itoa(i) + payload100
		id, err := ob.Publish(ctx, subjectPfx+"a", []byte(data))
		switch {
		case err == nil:
			if refused > 0 {
				t.Fatalf("message %d accepted after a refusal, with nothing drained", i)
			}
			accepted = append(accepted, sent{id: id, data: data})
		case errors.Is(err, outbox.ErrFull):
			refused++
		default:
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	st := ob.Stats()
	if refused == 0 || len(accepted) == 0 || st.Pending != len(accepted) || st.PendingBytes > overflowBudget || st.Dropped != 0 {
		t.Fatalf("%d accepted, %d refused, stats %+v: want some of each, all accepted pending within %d bytes, none dropped",
			len(accepted), refused, st, overflowBudget)
	}
	if _, err := ob.Publish(ctx, subjectPfx+"a", []byte(strings.Repeat("x", overflowBudget))); !errors.Is(err, outbox.ErrFull) {
		t.Errorf("a message larger than the budget: %v, want ErrFull", err)
	}

	tc.Server.Start()
	flush(t, ob)
	checkStream(t, tc.URL, streamName, accepted)
	// Drained, the budget takes messages again.
	if _, err := ob.Publish(ctx, subjectPfx+"a", []byte(payload100)); err != nil {
		t.Errorf("publish after draining: %v", err)
	}
}

func TestOverflowDropOldest(t *testing.T) {
	tc := newEnv(t)
	tc.Server.Stop()
	ob := openOutbox(t, tc.Client, outboxPath(t), outbox.WithMaxBytes(overflowBudget), outbox.WithOverflow(outbox.DropOldest))
	all := publishN(t, ob, subjectPfx+"a", payload100, 40)
	st := ob.Stats()
	kept := st.Pending
	if kept == 0 || kept == len(all) || st.Dropped != uint64(len(all)-kept) || st.PendingBytes > overflowBudget {
		t.Fatalf("stats after 40 publishes: %+v: want some dropped, the rest pending within %d bytes", st, overflowBudget)
	}
	if _, err := ob.Publish(natstest.Context(t, testTimeout), subjectPfx+"a", []byte(strings.Repeat("x", overflowBudget))); !errors.Is(err, outbox.ErrFull) {
		t.Errorf("a message larger than the budget: %v, want ErrFull", err)
	}
	if got := ob.Stats(); got.Pending != kept || got.Dropped != st.Dropped {
		t.Errorf("a refused oversized message changed the queue: %+v, was %+v", got, st)
	}
	tc.Server.Start()
	flush(t, ob)
	checkStream(t, tc.URL, streamName, all[len(all)-kept:])
}
