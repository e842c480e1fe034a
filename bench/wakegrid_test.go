package bench

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// BenchmarkWakeGrid measures why the client ends its reconnect waits on a
// 100 ms grid (backoff.Aligned in internal/backoff, docs/design.md "The rule"): the CPU a
// process spends per failed dial depends on how its dials are spread in
// time, because each wakeup of an idle process costs more than the dial.
// 1000 goroutines, one per client, each dial a listener that resets every
// connection, as a server that is down would, once per round of about two
// seconds:
//
//   - burst: every 2 s plus up to 100 ms, nats.go's default schedule, so
//     that the clients wake together;
//   - spread: uniform over [1, 3] s, so that they wake one at a time;
//   - grid: as spread, each wait then ended on the last 100 ms grid point
//     before it, as the client does.
//
// One op is one dial; cpu-µs/dial is the process's user and system time per
// dial, the figure to compare (the listener runs in this process too, and
// costs all three alike).
func BenchmarkWakeGrid(b *testing.B) {
	for _, mode := range []struct {
		name string
		wait func(origin, now time.Time) time.Duration
	}{
		{"burst", func(_, _ time.Time) time.Duration {
			return 2*time.Second + rand.N(100*time.Millisecond)
		}},
		{"spread", func(_, _ time.Time) time.Duration {
			return time.Second + rand.N(2*time.Second)
		}},
		{"grid", func(origin, now time.Time) time.Duration {
			d := time.Second + rand.N(2*time.Second)
			return d - now.Add(d).Sub(origin)%(100*time.Millisecond)
		}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			const clients = 1000
			addr := resettingListener(b)
			origin := time.Now()
			rounds := max(b.N/clients, 1)
			cpu0, _ := processCPU()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					for range rounds {
						time.Sleep(mode.wait(origin, time.Now()))
						if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
							c.Read(make([]byte, 1))
							c.Close()
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			cpu1, _ := processCPU()
			b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(clients*rounds), "cpu-µs/dial")
		})
	}
}

// resettingListener accepts every connection and resets it at once.
func resettingListener(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}
