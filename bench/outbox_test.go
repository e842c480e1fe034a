package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"
)

// The outbox's benchmarks. Its two sides are not raw nats.go against the
// client but what the outbox stands on against the outbox:
//
//   - forward: draining a backlog into a stream, against a raw jetstream
//     PublishAsync loop with the same window on the same server (target
//     ≥ 0.8× its rate);
//   - enqueue: 64 concurrent publishers, durable on return, against bbolt's
//     own Batch storing records of the same size in the same file system,
//     with the same batch delay (target ≥ 0.7× its rate), with the p50 and
//     p99 of one call;
//   - drain memory: the heap while backlogs of two sizes drain; flat means
//     the larger backlog does not raise it.
//
// Their server runs in a child process (-server-process, the default), as a
// hub does for an edge outbox: see server_process_test.go for why it matters
// here and not for the core's pairs.

const (
	forwardBacklog = 100_000
	forwardPayload = 128
	forwardWindow  = outbox.DefaultMaxInFlight
	enqueueWorkers = 64
	forwardStream  = "FWD"
	forwardSubject = "fwd.data"
)

// stallWait lets a raw PublishAsync wait for its window as long as it takes,
// as the outbox's forwarder does, rather than fail after jetstream's default
// 200ms on a loaded machine.
var stallWait = jetstream.WithStallWait(waitTimeout)

// outboxBatchDelay is the outbox's own bbolt batch delay (store.go), given to
// the raw side so that both commit alike.
const outboxBatchDelay = time.Millisecond

func newForwardServer(b *testing.B) (urlServer, jetstream.JetStream) {
	return newForwardServerLimited(b, 0)
}

// newForwardServerLimited is newForwardServer with the stream limited to
// maxBytes, discarding its oldest messages beyond it, and a duplicate window
// of a second (0: no limit, the default window).
func newForwardServerLimited(b *testing.B, maxBytes int64) (urlServer, jetstream.JetStream) {
	b.Helper()
	srv := jetStreamServer(b)
	nc := dialRaw(b, srv.URL())
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(forwardWindow))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: forwardStream, Subjects: []string{"fwd.>"}}
	if maxBytes > 0 {
		cfg.MaxBytes, cfg.Duplicates = maxBytes, time.Second
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		b.Fatalf("create stream: %v", err)
	}
	return srv, js
}

func purge(b *testing.B, js jetstream.JetStream) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := js.Stream(ctx, forwardStream)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOutboxForward drains a backlog of 100,000 messages of 128 bytes.
// One op is one message; msgs/s is the rate.
func BenchmarkOutboxForward(b *testing.B) {
	srv, js := newForwardServer(b)
	data := make([]byte, forwardPayload)
	// The raw side carries a message id too, unique to each run, so that
	// the server's duplicate tracking, which the outbox's exactly once
	// relies on, costs both sides alike.
	runs := 0
	raw := func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			purge(b, js)
			runs++
			prefix := "raw-" + strconv.Itoa(runs) + "-"
			b.StartTimer()
			stop := sectionProfile(b, "raw")
			start := time.Now()
			for i := range forwardBacklog {
				if _, err := js.PublishAsync(forwardSubject, data, stallWait, jetstream.WithMsgID(prefix+strconv.Itoa(i))); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(waitTimeout):
				b.Fatal("raw: acks did not complete")
			}
			stop()
			b.ReportMetric(forwardBacklog/time.Since(start).Seconds(), "msgs/s")
		}
	}
	client := func(b *testing.B) {
		for i := range b.N {
			b.StopTimer()
			c, ob := backlogged(b, srv, js, "outbox-"+strconv.Itoa(i)+".db", forwardBacklog, data)
			b.StartTimer()
			stop := sectionProfile(b, "client")
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			if err := c.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			if err := ob.Flush(ctx); err != nil {
				b.Fatalf("flush: %v (stats %+v)", err, ob.Stats())
			}
			stop()
			b.ReportMetric(forwardBacklog/time.Since(start).Seconds(), "msgs/s")
			b.StopTimer()
			cancel()
			closeAll(b, ob, c)
			b.StartTimer()
		}
	}
	runPair(b, raw, client)
}

// backlogged empties the stream, stores n messages in a new outbox file
// named name, and opens it with a client that is not yet connected: the
// forwarding starts with the client's Connect.
func backlogged(b *testing.B, srv urlServer, js jetstream.JetStream, name string, n int, data []byte) (*natsclient.Client, *outbox.Outbox) {
	b.Helper()
	purge(b, js)
	path := filepath.Join(b.TempDir(), name)
	fillBacklog(b, path, n, data)
	c, err := natsclient.NewClient(srv.URL(), clientOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	ob, err := outbox.Open(c, path, outbox.WithMaxBytes(1<<34))
	if err != nil {
		b.Fatal(err)
	}
	return c, ob
}

// fillBacklog stores n messages in the outbox at path, with no server to
// forward them to: the client is never connected.
func fillBacklog(b *testing.B, path string, n int, data []byte) {
	b.Helper()
	c, err := natsclient.NewClient("nats://127.0.0.1:1")
	if err != nil {
		b.Fatal(err)
	}
	ob, err := outbox.Open(c, path, outbox.WithMaxBytes(1<<34))
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	per := n / enqueueWorkers
	for w := range enqueueWorkers {
		count := per
		if w == 0 {
			count += n % enqueueWorkers
		}
		wg.Go(func() {
			for range count {
				if _, err := ob.Publish(context.Background(), forwardSubject, data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	closeAll(b, ob, c)
}

func closeAll(b *testing.B, ob *outbox.Outbox, c *natsclient.Client) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ob.Close(ctx); err != nil {
		b.Error(err)
	}
	if err := c.Close(ctx); err != nil {
		b.Error(err)
	}
}

// BenchmarkOutboxEnqueue: 64 goroutines, each call durable on return. One op
// is one message stored; p50-µs and p99-µs are the latency of one call.
func BenchmarkOutboxEnqueue(b *testing.B) {
	data := make([]byte, forwardPayload)
	// The raw side stores values as large as the outbox's records of this
	// payload: the payload, subject, id and framing.
	recordSize := len(data) + len(forwardSubject) + 40
	raw := func(b *testing.B) {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.MaxBatchDelay = outboxBatchDelay
		value := make([]byte, recordSize)
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("q")); return err }); err != nil {
			b.Fatal(err)
		}
		runEnqueue(b, func() error {
			return db.Batch(func(tx *bolt.Tx) error {
				q := tx.Bucket([]byte("q"))
				seq, err := q.NextSequence()
				if err != nil {
					return err
				}
				return q.Put(strconv.AppendUint(nil, seq, 10), value)
			})
		})
	}
	client := func(b *testing.B) {
		c, err := natsclient.NewClient("nats://127.0.0.1:1")
		if err != nil {
			b.Fatal(err)
		}
		ob, err := outbox.Open(c, filepath.Join(b.TempDir(), "outbox.db"), outbox.WithMaxBytes(1<<34))
		if err != nil {
			b.Fatal(err)
		}
		defer closeAll(b, ob, c)
		runEnqueue(b, func() error {
			_, err := ob.Publish(context.Background(), forwardSubject, data)
			return err
		})
	}
	runPair(b, raw, client)
}

// runEnqueue runs store b.N times across enqueueWorkers goroutines and
// reports the rate and the latency percentiles of one call.
func runEnqueue(b *testing.B, store func() error) {
	b.ReportAllocs()
	var (
		mu    sync.Mutex
		lats  []time.Duration
		total = b.N
		next  = make(chan struct{}, total)
	)
	for range total {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range enqueueWorkers {
		wg.Go(func() {
			var mine []time.Duration
			for range next {
				t0 := time.Now()
				if err := store(); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lats)
	if len(lats) > 0 {
		b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkOutboxDrainMemory drains backlogs of 1 KiB messages of two sizes
// and reports the peak of the live heap while each drains, as live-heap-MB
// (less the live heap before the drain): every 200ms a sampler collects
// garbage and reads what is left, so that the figure is what the process
// holds, not how far the collector let garbage grow. The raw side, a
// PublishAsync loop of the same messages with ids, is the baseline: the
// outbox's own memory is the difference. With -server-process=false the
// server's heap is in both figures, so its stream is limited to 8 MiB and
// its duplicate window to a second.
//
// -drain-mb sets the backlogs: 128 MB by default, and the 1 GB as
// -drain-mb=128,1024 (a minute or two of enqueueing, and a gigabyte of
// disk for the outbox's file).
func BenchmarkOutboxDrainMemory(b *testing.B) {
	data := make([]byte, 1024)
	for _, mb := range drainSizes(b) {
		n := mb << 10
		b.Run(fmt.Sprintf("backlog=%dMB", mb), func(b *testing.B) {
			srv, js := newForwardServerLimited(b, 8<<20)
			raw := func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					purge(b, js)
					b.StartTimer()
					measureDrain(b, n, func(ctx context.Context) error {
						prefix := "raw-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
						for i := range n {
							if _, err := js.PublishAsync(forwardSubject, data, jetstream.WithMsgID(prefix+strconv.Itoa(i)), stallWait); err != nil {
								return err
							}
						}
						select {
						case <-js.PublishAsyncComplete():
							return nil
						case <-ctx.Done():
							return ctx.Err()
						}
					})
				}
			}
			client := func(b *testing.B) {
				for i := range b.N {
					b.StopTimer()
					c, ob := backlogged(b, srv, js, "drain-"+strconv.Itoa(i)+".db", n, data)
					b.StartTimer()
					measureDrain(b, n, func(ctx context.Context) error {
						if err := c.Connect(ctx); err != nil {
							return err
						}
						return ob.Flush(ctx)
					})
					b.StopTimer()
					closeAll(b, ob, c)
					b.StartTimer()
				}
			}
			runPair(b, raw, client)
		})
	}
}

// peakProfile writes the live heap to $BENCH_HEAPPROFILE, when set, each
// time the drain's live heap reaches a new peak: what the last one holds is
// what the peak was made of.
func peakProfile(b *testing.B) {
	path := os.Getenv("BENCH_HEAPPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		b.Error(err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Error(err)
	}
}

// sectionProfile profiles the CPU from now until the returned func is
// called, when $BENCH_CPUPROFILE is set, into that path with side and a
// count appended: the timed part of one side, without the backlog's
// enqueueing that a whole-run -test.cpuprofile mixes in.
func sectionProfile(b *testing.B, side string) (stop func()) {
	prefix := os.Getenv("BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	profiles++
	f, err := os.Create(fmt.Sprintf("%s.%s.%d", prefix, side, profiles))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

var profiles int

// A backlog much under 128 MB drains before the first sample.
var drainMB = flag.String("drain-mb", "128", "BenchmarkOutboxDrainMemory's backlogs in MB, comma-separated")

// drainSizes parses -drain-mb.
func drainSizes(b *testing.B) []int {
	var sizes []int
	for _, f := range strings.Split(*drainMB, ",") {
		mb, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || mb <= 0 {
			b.Fatalf("-drain-mb: %q is not a positive number of megabytes", f)
		}
		sizes = append(sizes, mb)
	}
	return sizes
}

// measureDrain runs drain, sampling the live heap, and reports its peak
// above the starting point and the rate of n messages.
func measureDrain(b *testing.B, n int, drain func(context.Context) error) {
	b.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	peak := base
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak {
					peak = ms.HeapAlloc
					peakProfile(b)
				}
			case <-done:
				return
			}
		}
	}()
	start := time.Now()
	// A gigabyte takes minutes on a slow disk: the bound grows with n.
	ctx, cancel := context.WithTimeout(context.Background(), 5*waitTimeout+time.Duration(n)*time.Millisecond/4)
	defer cancel()
	err := drain(ctx)
	elapsed := time.Since(start)
	close(done)
	<-sampled
	if err != nil {
		b.Fatalf("drain: %v", err)
	}
	b.ReportMetric(float64(peak-base)/(1<<20), "live-heap-MB")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
}
