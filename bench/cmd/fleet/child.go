package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats.go"
)

// A kind is one way of making a fleet's clients. Each runs in a process of
// its own, so that its CPU time, heap and goroutines are its own.
type kind struct {
	name string
	doc  string
	// connect makes one connected client with one subscription and calls
	// reconnected each time the client has its connection back.
	connect func(url, subject string, reconnected func()) (closer, error)
}

type closer func()

var kinds = []kind{
	{
		name: "nats",
		doc:  "raw nats.go: default wait and jitter, unlimited reconnects",
		connect: func(url, subject string, reconnected func()) (closer, error) {
			nc, err := nats.Connect(url, nats.MaxReconnects(-1),
				nats.ReconnectHandler(func(*nats.Conn) { reconnected() }))
			if err != nil {
				return nil, err
			}
			if _, err := nc.Subscribe(subject, func(*nats.Msg) {}); err != nil {
				nc.Close()
				return nil, err
			}
			return nc.Close, nil
		},
	},
	{
		name:    "natsclient",
		doc:     "natsclient with its defaults",
		connect: natsclientKind(),
	},
	{
		name:    "natsclient-fast",
		doc:     "natsclient, WithReconnectWait(200ms), WithMaxBackoff(5s)",
		connect: natsclientKind(natsclient.WithReconnectWait(200*time.Millisecond), natsclient.WithMaxBackoff(5*time.Second)),
	},
}

func natsclientKind(opts ...natsclient.Option) func(url, subject string, reconnected func()) (closer, error) {
	return func(url, subject string, reconnected func()) (closer, error) {
		c, err := natsclient.NewClient(url, append(opts[:len(opts):len(opts)], natsclient.WithReconnectCallback(reconnected))...)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		closeClient := func() { c.Close(context.Background()) }
		if err := c.Connect(ctx); err != nil {
			closeClient()
			return nil, err
		}
		if _, err := c.Subscribe(subject, func(*nats.Msg) {}); err != nil {
			closeClient()
			return nil, err
		}
		return closeClient, nil
	}
}

func kindNamed(name string) (kind, bool) {
	for _, k := range kinds {
		if k.name == name {
			return k, true
		}
	}
	return kind{}, false
}

// runChild is a child process: it connects n clients of one kind to url,
// says "ready" with its footprint per client, reports every reconnect as
// "up <unix nanoseconds>" on stdout, and closes its clients when its stdin
// ends.
func runChild(name string, n int, url string) error {
	k, ok := kindNamed(name)
	if !ok {
		return fmt.Errorf("unknown kind %q", name)
	}
	out := bufio.NewWriter(os.Stdout)
	ups := make(chan time.Time, 4*n)
	reconnected := func() { ups <- time.Now() }

	heap0, g0 := footprint()
	closers := make([]closer, 0, n)
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for i := range n {
		c, err := connectPatiently(k, url, fmt.Sprintf("fleet.%s.%d", name, i), reconnected)
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		closers = append(closers, c)
	}
	heap1, g1 := footprint()
	fmt.Fprintf(out, "ready %d %.2f\n", (int64(heap1)-int64(heap0))/int64(n), float64(g1-g0)/float64(n))
	out.Flush()

	outageOnly := false
	if path := os.Getenv("FLEET_CPUPROFILE"); path != "" {
		outageOnly = os.Getenv("FLEET_CPUPROFILE_OUTAGE") != ""
		// A profile from the moment every client is connected: the
		// outage and the return, not the fleet's first connections; with
		// FLEET_CPUPROFILE_OUTAGE set, the outage alone (it stops at the
		// first reconnect). For finding what a failed dial costs:
		// FLEET_CPUPROFILE=/tmp/x FLEET_CPUPROFILE_OUTAGE=1 go run ./bench/cmd/fleet -n 3000 -outage 5s ...
		f, err := os.Create(path + "." + name)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	stdinDone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinDone)
	}()
	for {
		select {
		case at := <-ups:
			if outageOnly {
				pprof.StopCPUProfile() // the first reconnect ends the outage
			}
			fmt.Fprintf(out, "up %d\n", at.UnixNano())
			if len(ups) == 0 {
				out.Flush()
			}
		case <-stdinDone:
			out.Flush()
			return nil
		}
	}
}

// connectPatiently tries a few times: a thousand first connections on a
// loaded machine can meet a dial timeout, and the first connection is not
// what is measured.
func connectPatiently(k kind, url, subject string, reconnected func()) (closer, error) {
	var err error
	for range 5 {
		var c closer
		if c, err = k.connect(url, subject, reconnected); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// footprint is the live heap after a collection, and the goroutine count.
func footprint() (heap uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

// kindNames lists the kinds for -kinds' help.
func kindNames() string {
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "\n  %-16s %s", k.name, k.doc)
	}
	return b.String()
}
