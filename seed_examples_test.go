package natsclient_test

// The product brief's examples, kept as they are written there so that the
// compiler checks they still hold (only the module path differs). Functions
// without an Output comment are compiled, not run: these dial localhost:4222
// and the resilient publisher loops forever.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func seedBasicExample() error {
	// Create and connect to NATS
	client, err := natsclient.NewClient("nats://localhost:4222")
	if err != nil {
		return err
	}

	ctx := context.Background()
	err = client.Connect(ctx)
	if err != nil {
		return err
	}
	defer client.Close(ctx)

	// Publish a message
	err = client.Publish(ctx, "subject.name", []byte("message data"))

	// Subscribe to messages
	sub, err := client.Subscribe("subject.*", func(msg *nats.Msg) {
		// Handle message
		fmt.Printf("Received: %s\n", string(msg.Data))
	})
	_ = sub
	return err
}

func seedAdvancedExample(ctx context.Context) error {
	// Create client with options
	client, err := natsclient.NewClient("nats://localhost:4222",
		natsclient.WithMaxReconnects(-1), // Infinite reconnects
		natsclient.WithReconnectWait(2*time.Second),
		natsclient.WithCircuitBreakerThreshold(10),
		natsclient.WithDisconnectCallback(func(err error) {
			log.Printf("Disconnected: %v", err)
		}),
		natsclient.WithReconnectCallback(func() {
			log.Println("Reconnected successfully")
		}),
	)

	// JetStream operations
	js, err := client.JetStream()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"events.>"},
	})
	_ = stream

	// Key-Value store with CAS
	bucket, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{
		Bucket: "config",
	})

	kvStore := client.NewKVStore(bucket)
	err = kvStore.UpdateJSON(ctx, "service.config", func(config map[string]any) error {
		config["enabled"] = true
		return nil
	})
	return err
}

func seedErrorDetection(err error) {
	// Check specific errors
	if errors.Is(err, natsclient.ErrCircuitOpen) {
		// Wait for circuit to close
	}

	// KV conflict detection
	if errors.Is(err, natsclient.ErrKVRevisionMismatch) {
		// Handle concurrent update
	}

	// Helper functions for NATS errors
	if natsclient.IsKVNotFoundError(err) {
		// Key doesn't exist
	}
}

func seedResilientPublisher() {
	client, err := natsclient.NewClient("nats://localhost:4222",
		natsclient.WithMaxReconnects(-1),
		natsclient.WithLogger(log.Default()),
	)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	if err := client.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	// Publish with automatic reconnection handling
	for {
		err := client.Publish(ctx, "telemetry.data", []byte("sensor reading"))
		if err != nil {
			if errors.Is(err, natsclient.ErrCircuitOpen) {
				log.Println("Circuit open, waiting...")
				time.Sleep(5 * time.Second)
				continue
			}
			log.Printf("Publish error: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// The brief's callbacks, options and testing snippets, run for real.
func TestSeedTestingExample(t *testing.T) {
	// Create test client with real NATS via testcontainers
	testClient := natstest.NewTestClient(t,
		natstest.WithJetStream(),
		natstest.WithKV(),
	)
	defer testClient.Close()

	client := testClient.Client
	ctx := testContext(t)

	// Manage service configuration with optimistic locking
	bucket, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{
		Bucket:  "config",
		History: 5,
	})
	if err != nil {
		t.Fatal(err)
	}

	kvStore := client.NewKVStore(bucket)

	// Atomic configuration update with retry
	err = kvStore.UpdateJSON(ctx, "services.processor", func(config map[string]any) error {
		// This function may be called multiple times on conflict
		config["workers"] = 10
		config["timeout"] = "30s"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Workers int
		Timeout string
	}
	if _, err := kvStore.GetJSON(ctx, "services.processor", &got); err != nil || got.Workers != 10 || got.Timeout != "30s" {
		t.Fatalf("stored config = %+v, %v", got, err)
	}
}

// Referenced so that vet and the compiler keep checking the snippets above.
var _ = []any{seedBasicExample, seedAdvancedExample, seedErrorDetection, seedResilientPublisher}
