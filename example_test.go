package natsclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// exampleServer starts a plain in-process nats-server for the examples and
// returns its URL.
func exampleServer() (url string, stop func()) {
	srv, stop := runExampleServer(&server.Options{})
	return srv.ClientURL(), stop
}

// runExampleServer starts an in-process nats-server on a random local port
// with opts; one with JetStream keeps its store in a temporary directory. The
// examples cannot use natstest, which needs a *testing.T. stop shuts the
// server down and removes its store.
func runExampleServer(opts *server.Options) (srv *server.Server, stop func()) {
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	if opts.JetStream {
		dir, err := os.MkdirTemp("", "natsclient-example-")
		if err != nil {
			log.Fatal(err)
		}
		opts.StoreDir = dir
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		log.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("server not ready")
	}
	return srv, func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		if opts.StoreDir != "" {
			_ = os.RemoveAll(opts.StoreDir)
		}
	}
}

func Example() {
	url, stop := exampleServer()
	defer stop()

	client, err := natsclient.NewClient(url)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer client.Close(ctx)
	if err := client.Connect(ctx); err != nil {
		log.Fatal(err)
	}

	received := make(chan string, 1)
	if _, err := client.Subscribe("greetings.*", func(msg *nats.Msg) {
		received <- msg.Subject + ": " + string(msg.Data)
	}); err != nil {
		log.Fatal(err)
	}
	if err := client.Publish(ctx, "greetings.world", []byte("hello")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-received)
	// Output: greetings.world: hello
}

func ExampleNewClient() {
	client, err := natsclient.NewClient("nats://localhost:4222,nats://localhost:4223",
		natsclient.WithMaxReconnects(-1),
		natsclient.WithReconnectWait(2*time.Second),
		natsclient.WithCircuitBreakerThreshold(10),
		natsclient.WithLogger(log.New(os.Stderr, "", log.LstdFlags)),
		natsclient.WithDisconnectCallback(func(err error) { log.Printf("disconnected: %v", err) }),
		natsclient.WithReconnectCallback(func() { log.Println("reconnected") }),
	)
	fmt.Println(client != nil, err)

	_, err = natsclient.NewClient("nats://localhost:4222", natsclient.WithCircuitBreakerThreshold(0))
	fmt.Println(errors.Is(err, natsclient.ErrInvalidOption))
	fmt.Println(err)
	// Output:
	// true <nil>
	// true
	// natsclient: invalid option: WithCircuitBreakerThreshold: 0 must be at least 1
}

func ExampleSlogLogger() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	_, err := natsclient.NewClient("nats://localhost:4222", natsclient.WithLogger(natsclient.SlogLogger(logger)))
	fmt.Println(err)
	// Output: <nil>
}

func ExampleClient_StateChanges() {
	url, stop := exampleServer()
	defer stop()
	client, err := natsclient.NewClient(url)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer client.Close(context.Background())

	events := client.StateChanges(ctx)
	if err := client.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		fmt.Printf("%s -> %s (breaker %s)\n", ev.From, ev.To, ev.Breaker)
		if ev.To == natsclient.StateConnected {
			break
		}
	}
	// Output:
	// disconnected -> connecting (breaker closed)
	// connecting -> connected (breaker closed)
}

func ExampleClient_Publish_circuitOpen() {
	url, stop := exampleServer()
	client, err := natsclient.NewClient(url,
		natsclient.WithCircuitBreakerThreshold(2),
		natsclient.WithReconnectWait(50*time.Millisecond),
		natsclient.WithMaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer client.Close(ctx)
	events := client.StateChanges(ctx)
	if err := client.Connect(ctx); err != nil {
		log.Fatal(err)
	}

	stop() // the broker goes away
	for ev := range events {
		if ev.Breaker == natsclient.BreakerOpen {
			break
		}
	}
	err = client.Publish(ctx, "telemetry.data", []byte("reading"))
	fmt.Println(errors.Is(err, natsclient.ErrCircuitOpen))
	// Output: true
}
