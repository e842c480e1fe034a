// Command natsclient-demo shows natsclient riding out a broker outage.
//
// It starts an embedded nats-server (or uses -server URL), connects,
// publishes and subscribes, then stops the server and prints, as a timeline,
// the state events, the circuit breaker opening and publishes failing fast,
// the server returning, the breaker closing, and the subscription receiving
// again. Publishes made through an outbox during the outage are stored on
// disk and arrive in a stream, in order, after the server returns (with
// -server, when that server has JetStream). It exits 0 when the whole story
// happened, 1 otherwise.
//
// With -edge it shows an edge site instead (see edge.go): a leaf node and
// its hub, the link between them cut and restored.
//
//	go run ./cmd/natsclient-demo
//	go run ./cmd/natsclient-demo -server nats://localhost:4222   # you stop and start the server
//	go run ./cmd/natsclient-demo -edge
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func main() {
	serverURL := flag.String("server", "", "use this NATS server instead of an embedded one; you stop and restart it when asked")
	wait := flag.Duration("wait", 20*time.Second, "how long to wait for each step of the story")
	edge := flag.Bool("edge", false, "show an edge site instead: a leaf node working through a cut link to its hub (embedded servers only)")
	flag.Parse()

	d := &demo{start: time.Now(), wait: *wait, out: os.Stdout}
	if *edge {
		if *serverURL != "" {
			fmt.Fprintln(os.Stderr, "natsclient-demo: -edge starts its own hub and leaf servers; it cannot be used with -server")
			os.Exit(2)
		}
		if err := d.runEdge(); err != nil {
			d.say("error", "%v", err)
			os.Exit(1)
		}
		d.say("done", "the site worked through the cut hub link, and caught up when it returned")
		return
	}
	if err := d.run(*serverURL); err != nil {
		d.say("error", "%v", err)
		os.Exit(1)
	}
	d.say("done", "the client rode out the outage by itself")
}

type demo struct {
	start  time.Time
	wait   time.Duration
	server *embedded // nil with -server
	out    io.Writer
}

// say prints one line of the timeline.
func (d *demo) say(what, format string, args ...any) {
	fmt.Fprintf(d.out, "%+8.3fs  %-9s %s\n", time.Since(d.start).Seconds(), what, fmt.Sprintf(format, args...))
}

func (d *demo) run(serverURL string) error {
	if serverURL == "" {
		storeDir, err := os.MkdirTemp("", "natsclient-demo-js-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(storeDir)
		srv, err := startEmbedded(0, storeDir)
		if err != nil {
			return err
		}
		defer srv.stop()
		d.server = srv
		serverURL = srv.url()
		d.say("server", "embedded nats-server listening on %s", serverURL)
	} else {
		// The URL may carry a password or token: show it as the client does.
		d.say("server", "using %s", natsclient.RedactURL(serverURL))
	}

	client, err := natsclient.NewClient(serverURL,
		natsclient.WithName("natsclient-demo"),
		natsclient.WithReconnectWait(100*time.Millisecond),
		natsclient.WithMaxBackoff(time.Second),
		natsclient.WithCircuitBreakerThreshold(3),
		natsclient.WithMaxReconnects(-1),
		natsclient.WithReconnectCallback(func() { d.say("callback", "reconnected") }),
		natsclient.WithDisconnectCallback(func(err error) { d.say("callback", "disconnected: %v", err) }),
	)
	if err != nil {
		return err
	}
	ctx := context.Background()
	defer client.Close(ctx)

	// The timeline printer reads state events; the story waits on them too.
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	events := make(chan natsclient.StateChange, 64)
	printed := make(chan struct{})
	changes := client.StateChanges(watchCtx)
	go func() {
		defer close(printed)
		for ev := range changes {
			d.printEvent(ev)
			events <- ev
		}
	}()
	defer func() { stopWatching(); <-printed }()

	connectCtx, cancel := context.WithTimeout(ctx, d.wait)
	defer cancel()
	if err := client.Connect(connectCtx); err != nil {
		return fmt.Errorf("connect: %w", err)
	}

	received := make(chan string, 16)
	if _, err := client.Subscribe("demo.telemetry", func(m *nats.Msg) { received <- string(m.Data) }); err != nil {
		return err
	}
	if err := d.publishAndReceive(ctx, client, received, "reading 1"); err != nil {
		return err
	}
	ob, err := d.openOutbox(ctx, client)
	if err != nil {
		return err
	}
	defer ob.close(ctx)

	d.say("outage", "stopping the server")
	if d.server != nil {
		d.server.stop()
	} else {
		d.say("you", "stop your NATS server now (waiting up to %v)", d.wait)
	}
	if _, err := d.waitFor(events, "breaker open", func(ev natsclient.StateChange) bool {
		return ev.Breaker == natsclient.BreakerOpen
	}); err != nil {
		return err
	}
	for i := range 3 {
		t0 := time.Now()
		err := client.Publish(ctx, "demo.telemetry", []byte("lost"))
		took := time.Since(t0)
		if !errors.Is(err, natsclient.ErrCircuitOpen) {
			return fmt.Errorf("publish %d while the breaker is open: got %v, want ErrCircuitOpen", i+1, err)
		}
		d.say("publish", "failed fast in %v: %v", took, err)
	}
	if err := d.queue(ctx, ob); err != nil {
		return err
	}

	if d.server != nil {
		d.say("recovery", "starting the server again on the same port")
		if err := d.server.restart(); err != nil {
			return err
		}
	} else {
		d.say("you", "start your NATS server again (waiting up to %v)", d.wait)
	}
	if _, err := d.waitFor(events, "connected with the breaker closed", func(ev natsclient.StateChange) bool {
		return ev.To == natsclient.StateConnected && ev.Breaker == natsclient.BreakerClosed
	}); err != nil {
		return err
	}
	if err := d.publishAndReceive(ctx, client, received, "reading 2"); err != nil {
		return err
	}
	if err := d.delivered(ctx, client, ob); err != nil {
		return err
	}
	st := client.Stats()
	d.say("stats", "reconnects=%d connections=%d breaker trips=%d out=%d msgs in=%d msgs",
		st.Reconnects, st.Connections, st.BreakerTrips, st.OutMsgs, st.InMsgs)
	return nil
}

func (d *demo) printEvent(ev natsclient.StateChange) {
	line := fmt.Sprintf("%s -> %s, breaker %s", ev.From, ev.To, ev.Breaker)
	if ev.From == ev.To {
		line = fmt.Sprintf("breaker %s (still %s)", ev.Breaker, ev.To)
	}
	if ev.Err != nil {
		line += fmt.Sprintf(" (%v)", ev.Err)
	}
	d.say("state", "%s", line)
}

func (d *demo) publishAndReceive(ctx context.Context, c *natsclient.Client, received <-chan string, payload string) error {
	if err := c.Publish(ctx, "demo.telemetry", []byte(payload)); err != nil {
		return fmt.Errorf("publish %q: %w", payload, err)
	}
	d.say("publish", "%q", payload)
	deadline := time.After(d.wait)
	for {
		select {
		case got := <-received:
			if got == payload {
				d.say("receive", "%q", got)
				return nil
			}
		case <-deadline:
			return fmt.Errorf("subscription did not receive %q within %v", payload, d.wait)
		}
	}
}

func (d *demo) waitFor(events <-chan natsclient.StateChange, what string, match func(natsclient.StateChange) bool) (natsclient.StateChange, error) {
	deadline := time.After(d.wait)
	for {
		select {
		case ev := <-events:
			if match(ev) {
				return ev, nil
			}
		case <-deadline:
			return natsclient.StateChange{}, fmt.Errorf("no %s within %v", what, d.wait)
		}
	}
}

// embedded is an in-process nats-server that can be stopped and started
// again on the same port, with its JetStream store kept across the restart.
type embedded struct {
	port     int
	storeDir string
	srv      *server.Server
}

func startEmbedded(port int, storeDir string) (*embedded, error) {
	if port == 0 {
		port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: storeDir})
	if err != nil {
		return nil, fmt.Errorf("embedded server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded server not ready within 10s")
	}
	return &embedded{port: srv.Addr().(*net.TCPAddr).Port, storeDir: storeDir, srv: srv}, nil
}

func (e *embedded) url() string { return "nats://127.0.0.1:" + strconv.Itoa(e.port) }

func (e *embedded) stop() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		e.srv = nil
	}
}

func (e *embedded) restart() error {
	e.stop()
	next, err := startEmbedded(e.port, e.storeDir)
	if err != nil {
		return err
	}
	e.srv = next.srv
	return nil
}
