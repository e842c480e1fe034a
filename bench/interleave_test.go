package bench

import (
	"testing"
	"time"
)

// interleaved runs the raw and the client side of a pair inside one
// benchmark, in alternating blocks of block ops (raw then client, then client
// then raw, ...), and reports each side's time per op (raw-ns/op,
// client-ns/op) and their ratio (ratio). Each b.N iteration is one op of each
// side.
//
// The sequential pair (…/raw then …/client, 100 ms each) compares two
// stretches of time that another process may load differently: on this
// shared machine single ratios range from 0.3 to 4. Blocks of a fraction of
// a millisecond, alternated, put both sides under the same load, so that
// what is left in the ratio is the client's own cost. The timing is the
// benchmark's own, inside testing.B, and the result goes out through
// b.ReportMetric.
//
// It suits calls that wait for an answer (requests, KV calls). It does not
// suit publishes: a block of them leaves the server a backlog that it reads
// during the other side's block.
func interleaved(raw, client op, block int) func(*testing.B) {
	return func(b *testing.B) {
		var spent [2]time.Duration // raw, client
		sides := [2]op{raw, client}
		first := 0
		if *clientFirst {
			first = 1
		}
		b.ResetTimer()
		for done := 0; done < b.N; done += block {
			n := min(block, b.N-done)
			for k := range 2 {
				side := first ^ k
				start := time.Now()
				for range n {
					if err := sides[side](); err != nil {
						b.Fatal(err)
					}
				}
				spent[side] += time.Since(start)
			}
			first ^= 1
		}
		b.StopTimer()
		b.ReportMetric(float64(spent[0].Nanoseconds())/float64(b.N), "raw-ns/op")
		b.ReportMetric(float64(spent[1].Nanoseconds())/float64(b.N), "client-ns/op")
		b.ReportMetric(float64(spent[1])/float64(spent[0]), "ratio")
	}
}
