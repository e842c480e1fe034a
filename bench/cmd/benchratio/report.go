package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// row is one line of the table: what it measures, the target, and how the
// results decide it.
type row struct {
	label  string
	target string
	eval   func(r results) cells
}

// cells are a row's measured columns; ok is nil for a number reported
// without a target.
type cells struct {
	raw, client, ratio string
	ok                 *bool
	missing            bool
}

// rows is the table, in its order.
var rows = []row{
	ratioRow("Publish 16 B", "Core/Publish/16B", 1.10, true),
	ratioRow("Publish 1 KiB", "Core/Publish/1KiB", 1.10, true),
	ratioRow("Publish 16 B, RunParallel", "Core/PublishParallel/16B", 1.10, true),
	ratioRow("Publish 1 KiB, RunParallel", "Core/PublishParallel/1KiB", 1.10, true),
	ratioRow("PublishMsg, two headers", "Core/PublishMsg/2headers", 1.10, false),
	ratioRow("Request, responder (ctx without deadline)", "Core/Request/16B", 1.05, false),
	ratioRow("Request, responder (ctx with deadline)", "Core/RequestCtx/16B", 1.05, false),
	absRow("Publish while the breaker is open", "BreakerOpen/Publish/client", 100, 0),
	absRow("Request while the breaker is open", "BreakerOpen/Request/client", 100, 0),
	infoRow("Publish 16 B, tracer sampling nothing", "Telemetry/Publish16B/NeverSample"),
	infoRow("Publish 16 B, tracer sampling everything", "Telemetry/Publish16B/AlwaysSample"),
	ratioRow("Publish 16 B, metrics on", "Telemetry/Publish16B/Metrics", 1.10, false),
	ratioRow("KVStore.Get vs jetstream Get", "KV/Get", 1.05, false),
	ratioRow("KVStore.Put vs jetstream Put", "KV/Put", 1.05, false),
	ratioRow("KVStore.Update vs jetstream Update", "KV/Update", 1.05, false),
	infoRow("KVStore.Put vs a jetstream publish with the same Nats-Msg-Id", "KV/PutMsgID"),
	infoRow("KVStore.Update vs a jetstream publish with the same Nats-Msg-Id and expected revision", "KV/UpdateMsgID"),
	ratioRow("UpdateJSON, one key, one writer, vs a hand-written loop", "KV/UpdateJSON/1writer", 1.10, false),
	contendedRow(),
	fanoutRow(),
	resubscribeRow(),
	reconnectRow(),
	extraRow("idle goroutines of a connected client", "Footprint/Goroutines", "goroutines", "%.0f"),
	extraRow("heap bytes per subscription (5,000 subscriptions)", "Footprint/Subscription", "B/sub", "%.0f"),
	extraRow("goroutines per subscription", "Footprint/Subscription", "goroutines/sub", "%.2f"),
}

func report(w io.Writer, res results) bool {
	fmt.Fprintln(w, "| measurement | raw nats.go (median) | natsclient (median) | client/raw: median [min–max] (samples); the verdict's in bold | target | result |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	met, total, allOK := 0, 0, true
	for _, r := range rows {
		c := r.eval(res)
		result := "reported"
		switch {
		case c.missing:
			result, c.raw, c.client, c.ratio = "not run", "", "", ""
			allOK = false
			total++
		case c.ok == nil:
		case *c.ok:
			result = "PASS"
			met++
			total++
		default:
			result = "**FAIL**"
			allOK = false
			total++
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.label, c.raw, c.client, c.ratio, r.target, result)
	}
	fmt.Fprintf(w, "\n%d of %d targets met.\n", met, total)
	return allOK
}

// series returns metric unit of benchmark name, one value per round that
// has it, in round order.
func (r results) series(name, unit string) []float64 {
	byRound := r[name]
	keys := make([]int, 0, len(byRound))
	for k := range byRound {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []float64
	for _, k := range keys {
		if v, ok := byRound[k][unit]; ok {
			out = append(out, v)
		}
	}
	return out
}

// ratios returns client/raw of unit for each round where both sides ran.
func (r results) ratios(pair, unit string) []float64 {
	raw, client := r[pair+"/raw"], r[pair+"/client"]
	var out []float64
	for round, cm := range client {
		rm, ok := raw[round]
		if !ok || rm[unit] == 0 {
			continue
		}
		out = append(out, cm[unit]/rm[unit])
	}
	slices.Sort(out)
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(v []float64) string {
	return fmt.Sprintf("%.3f [%.3f–%.3f] (%d)", median(v), slices.Min(v), slices.Max(v), len(v))
}

func ns(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1f µs", v/1e3)
	}
	return fmt.Sprintf("%.1f ns", v)
}

func allocs(v float64) string {
	return fmt.Sprintf("%.0f allocs", v)
}

func verdict(b bool) *bool { return &b }

// ratioRow: client/raw ns/op at most max and, with noMoreAllocs, no more
// allocations per op than raw. Where the pair also ran interleaved (calls
// that wait for an answer), the verdict is on the interleaved ratios, whose
// two sides ran under the same load; otherwise on the sequential pairs.
func ratioRow(label, pair string, max float64, noMoreAllocs bool) row {
	target := fmt.Sprintf("≤ %.2f", max)
	if noMoreAllocs {
		target += "; allocs ≤ raw"
	}
	return row{label: label + " (" + pair + ")", target: target, eval: func(res results) cells {
		ratios := res.ratios(pair, "ns/op")
		if len(ratios) == 0 {
			return cells{missing: true}
		}
		rawA := median(res.series(pair+"/raw", "allocs/op"))
		cliA := median(res.series(pair+"/client", "allocs/op"))
		rawT, cliT := res.series(pair+"/raw", "ns/op"), res.series(pair+"/client", "ns/op")
		decide := ratios
		ratio := "sequential " + spread(ratios)
		if inter := res.series(pair+"/interleaved", "ratio"); len(inter) > 0 {
			decide = inter
			ratio = "**interleaved " + spread(inter) + "**; " + ratio
		} else {
			ratio = "**" + ratio + "**"
		}
		ratio += fmt.Sprintf("; best-of %.3f", slices.Min(cliT)/slices.Min(rawT))
		if cpu := res.ratios(pair, "cpu-ns/op"); len(cpu) > 0 {
			ratio += fmt.Sprintf("; CPU time %.3f", median(cpu))
		}
		ok := median(decide) <= max
		if noMoreAllocs {
			ok = ok && cliA <= rawA
		}
		return cells{
			raw:    ns(median(rawT)) + ", " + allocs(rawA),
			client: ns(median(cliT)) + ", " + allocs(cliA),
			ratio:  ratio,
			ok:     verdict(ok),
		}
	}}
}

// absRow: a client-only call with an absolute bound on time and allocations.
func absRow(label, name string, maxNs, maxAllocs float64) row {
	target := fmt.Sprintf("≤ %.0f ns; %.0f allocs", maxNs, maxAllocs)
	return row{label: label + " (" + name + ")", target: target, eval: func(res results) cells {
		t := res.series(name, "ns/op")
		if len(t) == 0 {
			return cells{missing: true}
		}
		a := median(res.series(name, "allocs/op"))
		return cells{
			raw:    "—",
			client: fmt.Sprintf("%s [%s–%s], %s", ns(median(t)), ns(slices.Min(t)), ns(slices.Max(t)), allocs(a)),
			ratio:  "—",
			ok:     verdict(median(t) <= maxNs && a <= maxAllocs),
		}
	}}
}

// metric formats the median of one metric, or "?" when it is missing.
func metric(res results, name, unit, format string) (float64, string) {
	s := res.series(name, unit)
	if len(s) == 0 {
		return math.NaN(), "?"
	}
	m := median(s)
	return m, fmt.Sprintf(format+" %s", m, unit)
}

func fanoutRow() row {
	return row{
		label:  "StateChanges fan-out: one event to 1,000 subscribers that never read (StateFanout)",
		target: "cost per event reported; the supervisor never waits",
		eval: func(res results) cells {
			one, oneS := metric(res, "StateFanout/1/client", "ns/event", "%.0f")
			many, manyS := metric(res, "StateFanout/1000/client", "ns/event", "%.0f")
			if math.IsNaN(one) || math.IsNaN(many) {
				return cells{missing: true}
			}
			// The benchmark fails if a subscriber that does not read holds
			// anything but the present, or if the reading one misses an event.
			return cells{
				raw:    "—",
				client: fmt.Sprintf("1 subscriber: %s; 1,000: %s (%.0f ns per subscriber)", oneS, manyS, (many-one)/999),
				ratio:  "—",
			}
		},
	}
}

func resubscribeRow() row {
	return row{
		label:  "re-establishing 10,000 subscriptions, from the server accepting again (Resubscribe)",
		target: "time reported; every subscription receives again",
		eval: func(res results) cells {
			var parts [2]string
			for i, side := range []string{"raw", "client"} {
				name := "Resubscribe/10000/" + side
				up, _ := metric(res, name, "ms/connected", "%.1f")
				recv, _ := metric(res, name, "ms/receiving", "%.1f")
				if math.IsNaN(up) || math.IsNaN(recv) {
					return cells{missing: true}
				}
				parts[i] = fmt.Sprintf("connected in %.1f ms, all receiving in %.1f ms", up, recv)
			}
			return cells{
				raw:    parts[0] + " (nats.go's reconnect)",
				client: parts[1] + " (a new connection)",
				ratio:  "—",
			}
		},
	}
}

func reconnectRow() row {
	return row{
		label:  "reconnect latency after a server restart: accepting again → Connected (Reconnect)",
		target: "≤ 5 ms slower than nats.go",
		eval: func(res results) cells {
			raw, _ := metric(res, "Reconnect/both", "raw-ms", "%.2f")
			cli, _ := metric(res, "Reconnect/both", "client-ms", "%.2f")
			extra := res.series("Reconnect/both", "extra-ms")
			if math.IsNaN(raw) || math.IsNaN(cli) || len(extra) == 0 {
				return cells{missing: true}
			}
			return cells{
				raw:    fmt.Sprintf("%.2f ms", raw),
				client: fmt.Sprintf("%.2f ms", cli),
				ratio:  fmt.Sprintf("client − raw: %.2f ms [%.2f–%.2f]", median(extra), slices.Min(extra), slices.Max(extra)),
				ok:     verdict(median(extra) <= 5),
			}
		},
	}
}

// extraRow reports what the client adds beyond nats.go's own.
func extraRow(label, pair, unit, format string) row {
	return row{label: label + " (" + pair + ")", target: "reported: client − raw", eval: func(res results) cells {
		raw, rawS := metric(res, pair+"/raw", unit, format)
		cli, cliS := metric(res, pair+"/client", unit, format)
		if math.IsNaN(raw) || math.IsNaN(cli) {
			return cells{missing: true}
		}
		return cells{raw: rawS, client: cliS, ratio: strings.TrimSpace(fmt.Sprintf("client − raw: "+format+" %s", cli-raw, unit))}
	}}
}

// contendedRow: 8 writers on one key, successful updates per second of the
// client at least 0.9 times the hand-written loop's.
func contendedRow() row {
	const pair = "KV/UpdateJSON/8writers"
	return row{
		label:  "UpdateJSON, 8 writers on one key, vs a hand-written loop with the same retry budget (" + pair + ")",
		target: "updates/s ≥ 0.90× raw; conflicts per update reported",
		eval: func(res results) cells {
			ratios := res.ratios(pair, "updates/s")
			if len(ratios) == 0 {
				return cells{missing: true}
			}
			side := func(s string) string {
				r := res.series(pair+"/"+s, "updates/s")
				c := res.series(pair+"/"+s, "conflicts/update")
				e := res.series(pair+"/"+s, "exhausted/call")
				return fmt.Sprintf("%.0f updates/s, %.2f conflicts/update, %.1f%% out of retries", median(r), median(c), 100*median(e))
			}
			return cells{raw: side("raw"), client: side("client"), ratio: spread(ratios), ok: verdict(median(ratios) >= 0.9)}
		},
	}
}

// infoRow is a ratio reported without a target.
func infoRow(label, pair string) row {
	r := ratioRow(label, pair, math.Inf(1), false)
	r.target = "reported: the wrapper alone"
	eval := r.eval
	r.eval = func(res results) cells {
		c := eval(res)
		c.ok = nil
		return c
	}
	return r
}
