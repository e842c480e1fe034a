package reliability_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient/testing/natstest"
)

// nemesis injects one fault at a time into a cluster, at random, from the
// test's goroutine (natstest's faults fail the test from there). Each fault
// lasts a random while and is then healed; between faults the cluster gets
// a random while to recover. One fault at a time keeps a majority of the
// three members able to work, so the workload makes progress; safety is
// what is checked, and it must hold whatever the faults.
type nemesis struct {
	t      *testing.T
	cl     *natstest.Cluster
	r      *rand.Rand
	stream string         // the stream whose leader step-downs are asked for
	counts map[string]int // faults injected, by kind
	failed map[string]int // faults the cluster refused (a step-down with no leader)
	kinds  []string       // the kinds it picks from
}

// The kinds of fault, by the names -faults takes.
const (
	faultKill          = "kill"           // SIGKILL (containers) or abrupt shutdown, then restart
	faultFreeze        = "freeze"         // client links hang both ways, then thaw
	faultFreezeReplies = "freeze-replies" // server→client held: acknowledgements lost, then thaw
	faultCut           = "cut"            // client links reset
	faultPartition     = "partition"      // one member's routes cut off from the other two, then healed
	faultStepDown      = "stepdown"       // the stream's leader asked to step down
)

var faultKinds = []string{faultKill, faultFreeze, faultFreezeReplies, faultCut, faultPartition, faultStepDown}

// faultsFlag narrows the nemesis to some kinds of fault, for a run aimed at
// one failure (the broken build is caught fastest by lost acknowledgements).
var faultsFlag = flag.String("faults", "", "comma-separated kinds of fault the nemesis injects (default: all of "+
	strings.Join(faultKinds, ",")+"; env NATSCLIENT_FAULTS)")

func newNemesis(t *testing.T, cl *natstest.Cluster, r *rand.Rand, stream string) *nemesis {
	t.Helper()
	n := &nemesis{t: t, cl: cl, r: r, stream: stream, counts: map[string]int{}, failed: map[string]int{}, kinds: faultKinds}
	list := *faultsFlag
	if list == "" {
		list = os.Getenv("NATSCLIENT_FAULTS")
	}
	if list != "" {
		n.kinds = strings.Split(list, ",")
		for _, k := range n.kinds {
			if !slices.Contains(faultKinds, k) {
				t.Fatalf("-faults: unknown kind of fault %q: want some of %s", k, strings.Join(faultKinds, ","))
			}
		}
		t.Logf("nemesis: only %s", list)
	}
	return n
}

// between returns a random duration in [lo, hi).
func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.r.Int64N(int64(hi-lo)))
}

// run injects faults until the deadline, then heals everything.
func (n *nemesis) run(until time.Time) {
	n.t.Helper()
	for time.Now().Before(until) {
		// The pause is the schedule itself, not a wait for an event.
		time.Sleep(n.between(500*time.Millisecond, 2*time.Second))
		n.inject(n.kinds[n.r.IntN(len(n.kinds))])
	}
	n.healAll()
}

// inject applies one fault of kind to a random member and heals it after a
// random while.
func (n *nemesis) inject(kind string) {
	n.t.Helper()
	i := n.r.IntN(n.cl.Size())
	s := n.cl.Server(i)
	hold := n.between(500*time.Millisecond, 4*time.Second)
	n.counts[kind]++
	switch kind {
	case faultKill:
		s.Kill()
		time.Sleep(hold)
		s.Start()
	case faultFreeze:
		s.Freeze()
		time.Sleep(hold)
		s.Thaw()
	case faultFreezeReplies:
		s.FreezeReplies()
		time.Sleep(hold)
		s.Thaw()
	case faultCut:
		s.CutConnections()
	case faultPartition:
		n.cl.Isolate(i)
		time.Sleep(hold)
		n.cl.Heal()
	case faultStepDown:
		if err := n.cl.StepDownStream(n.stream); err != nil {
			n.failed[kind]++
		}
	}
}

// healAll ends every fault and waits for the stream to have a leader.
func (n *nemesis) healAll() {
	n.t.Helper()
	n.cl.Heal()
	for i := range n.cl.Size() {
		n.cl.Server(i).Thaw()
		n.cl.Server(i).Start()
	}
	n.cl.WaitForStreamLeader("$G", n.stream)
}

// report lists the faults injected, by kind.
func (n *nemesis) report() string {
	var lines []string
	for _, k := range faultKinds {
		line := fmt.Sprintf("%s: %d", k, n.counts[k])
		if f := n.failed[k]; f > 0 {
			line += fmt.Sprintf(" (%d refused by the cluster)", f)
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return strings.Join(lines, "; ")
}
