// Command benchratio runs the benchmarks of package bench, interleaved and
// several times, and prints one table: the client against raw nats.go, as
// ratios and allocations, with each target met or missed.
//
// Run it from the module root:
//
//	go run ./bench/cmd/benchratio
//
// It builds the bench test binary once, then runs every benchmark in each of
// -rounds rounds. Within a round the raw and the client side of a pair run
// one right after the other, and the order flips each round, so that drift of
// a shared machine falls on both sides alike. A ratio is computed per round,
// from neighbouring measurements, and the table shows the median of those
// ratios with their range. The timing itself is testing.B's; this program
// only schedules runs and reads their output.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

func main() {
	rounds := flag.Int("rounds", 5, "how many times the benchmark binary runs every benchmark")
	repeats := flag.Int("repeats", 4, "how many raw/client pairs of each call benchmark a round runs, alternating the order")
	benchtime := flag.String("benchtime", "100ms", "-benchtime of the call benchmarks")
	slowtime := flag.String("slowtime", "8x", "-benchtime of the reconnect, fan-out and footprint benchmarks")
	only := flag.String("bench", "", "run only the benchmarks matching this regexp (as go test -bench)")
	keep := flag.String("out", "", "also write each round's raw go test output to this directory")
	flag.Parse()

	if err := run(*rounds, *repeats, *benchtime, *slowtime, *only, *keep, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(2)
	}
}

// groups are the benchmark sets and the -benchtime each runs with: calls take
// nanoseconds to microseconds and run for a time; restarts and fan-outs take
// milliseconds and run a fixed number of times.
type group struct {
	pattern string
	slow    bool
}

var groups = []group{
	{pattern: "^Benchmark(Core|BreakerOpen|KV|Telemetry)$"},
	{pattern: "^Benchmark(StateFanout|Reconnect|Resubscribe|Footprint)$", slow: true},
}

func run(rounds, repeats int, benchtime, slowtime, only, keep string, out io.Writer) error {
	if rounds < 1 {
		return fmt.Errorf("-rounds %d: need at least 1", rounds)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "benchratio")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bench.test")
	build := exec.Command("go", "test", "-c", "-o", bin, "./bench")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the bench test binary: %w", err)
	}
	if keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			return err
		}
	}

	loadBefore := loadAverage()
	res := results{}
	for round := range rounds {
		for _, g := range groups {
			bt, rep := benchtime, repeats
			if g.slow {
				bt, rep = slowtime, 1
			}
			args := []string{
				"-test.run=^$", "-test.bench=" + g.pattern, "-test.benchmem",
				"-test.count=1", "-test.benchtime=" + bt, "-test.timeout=30m",
				fmt.Sprintf("-clientfirst=%t", round%2 == 1),
				fmt.Sprintf("-repeats=%d", rep),
			}
			if only != "" {
				args[1] = "-test.bench=" + only
				if g.slow {
					continue // the filter already covers every group
				}
			}
			fmt.Fprintf(os.Stderr, "round %d/%d: %s\n", round+1, rounds, strings.Join(args, " "))
			cmd := exec.Command(bin, args...)
			cmd.Dir = filepath.Join(root, "bench")
			var buf bytes.Buffer
			cmd.Stdout, cmd.Stderr = &buf, os.Stderr
			runErr := cmd.Run()
			if keep != "" {
				name := fmt.Sprintf("round%d-%t.txt", round+1, g.slow)
				if err := os.WriteFile(filepath.Join(keep, name), buf.Bytes(), 0o644); err != nil {
					return err
				}
			}
			if runErr != nil {
				os.Stderr.Write(buf.Bytes())
				return fmt.Errorf("round %d: %w", round+1, runErr)
			}
			res.parse(&buf, round)
		}
	}
	fmt.Fprintf(out, "Machine: %d CPUs; load average %s before the run and %s after (1, 5, 15 minutes).\n\n",
		runtime.NumCPU(), loadBefore, loadAverage())
	fmt.Fprintf(out, "%d rounds of %d alternating raw/client pairs at -benchtime %s (calls); %d rounds at %s (restarts, fan-out, footprint).\n\n",
		rounds, repeats, benchtime, rounds, slowtime)
	if !report(out, res) {
		os.Exit(1)
	}
	return nil
}

func moduleRoot() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	path := strings.TrimSpace(string(gomod))
	if path == "" || path == os.DevNull {
		return "", fmt.Errorf("not inside a Go module: run from the natsclient checkout")
	}
	return filepath.Dir(path), nil
}

// results maps a benchmark name (without "Benchmark", the -GOMAXPROCS
// suffix and the #NN of a repetition) to its metrics, one map per sample.
// A sample is keyed by round*1000 + repetition, so that the raw and the
// client side of one repetition share a key.
type results map[string]map[int]map[string]float64

var (
	procSuffix = regexp.MustCompile(`-\d+$`)
	repetition = regexp.MustCompile(`#(\d+)$`)
)

// parse reads `go test -bench` output lines such as
// "BenchmarkCore/Publish/16B/raw-2  1000000  321.1 ns/op  14 B/op  0 allocs/op".
func (r results) parse(in io.Reader, round int) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		sample := round * 1000
		if m := repetition.FindStringSubmatch(name); m != nil {
			n, _ := strconv.Atoi(m[1])
			sample += n
			name = strings.TrimSuffix(name, m[0])
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			m[f[i+1]] = v
		}
		if r[name] == nil {
			r[name] = map[int]map[string]float64{}
		}
		r[name][sample] = m
	}
}

// loadAverage is the machine's load average, to say how busy it was: on a
// shared machine it is the main source of noise.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
