package reliability_test

import (
	"flag"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// The linearizability checks run for a short while by default (CI runs them
// on both backends); -soak, or NATSCLIENT_SOAK, runs them longer. -seed, or
// NATSCLIENT_SEED, replays a run: the seed chooses every fault, its victim
// and its length, and every client's operations, keys and values (the
// interleaving is the machine's, so a replay repeats the schedule, not the
// timing).
var (
	soakFlag = flag.Duration("soak", 0, "run the linearizability checks for this long in all (default: about 60s; env NATSCLIENT_SOAK)")
	seedFlag = flag.Uint64("seed", 0, "seed of the linearizability checks (default: random, printed; env NATSCLIENT_SEED)")
)

// shortRun is how long the checks run in all without -soak: the KV
// workload two thirds of it, the stream workload one third.
const shortRun = 60 * time.Second

// runBudget is how long the linearizability checks run in all.
func runBudget(t *testing.T) time.Duration {
	t.Helper()
	if *soakFlag > 0 {
		return *soakFlag
	}
	if env := os.Getenv("NATSCLIENT_SOAK"); env != "" {
		d, err := time.ParseDuration(env)
		if err != nil || d <= 0 {
			t.Fatalf("NATSCLIENT_SOAK=%q: want a positive duration such as 10m", env)
		}
		return d
	}
	return shortRun
}

// runSeed returns the run's seed, printed so that a failure can be replayed.
func runSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *seedFlag
	if env := os.Getenv("NATSCLIENT_SEED"); seed == 0 && env != "" {
		var err error
		if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
			t.Fatalf("NATSCLIENT_SEED=%q: want an unsigned integer", env)
		}
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay: go test ./reliability -run '^%s$' -args -seed=%d, with this run's -tags, -soak and -faults)",
		seed, t.Name(), seed)
	return seed
}

// childRand is the random source of one participant (a client, the
// nemesis), derived from the run's seed so that each draws its own sequence.
func childRand(seed uint64, who int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(who)+1))
}
