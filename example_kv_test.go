package natsclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// exampleJetStreamClient starts an in-process nats-server with JetStream and
// returns a client connected to it.
func exampleJetStreamClient() (*natsclient.Client, func()) {
	srv, stop := runExampleServer(&server.Options{JetStream: true})
	client, err := natsclient.NewClient(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Connect(context.Background()); err != nil {
		log.Fatal(err)
	}
	return client, func() {
		_ = client.Close(context.Background())
		stop()
	}
}

// Configuration management: an atomic read-modify-write of a JSON object,
// retried on conflict with other writers.
func ExampleKVStore_UpdateJSON() {
	client, stop := exampleJetStreamClient()
	defer stop()
	ctx := context.Background()

	bucket, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{
		Bucket:  "config",
		History: 5,
		// Replicas: 3, on a three-node cluster
	})
	if err != nil {
		log.Fatal(err)
	}
	kvStore := client.NewKVStore(bucket)

	// Atomic configuration update with retry. A missing key is an empty
	// object.
	err = kvStore.UpdateJSON(ctx, "services.processor", func(config map[string]any) error {
		// This function may be called multiple times on conflict.
		config["workers"] = 10
		config["timeout"] = "30s"
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	// An error from the function is returned as it is; nothing is written.
	errPaused := errors.New("processor is paused")
	err = kvStore.UpdateJSON(ctx, "services.processor", func(config map[string]any) error {
		return errPaused
	})
	fmt.Println(errors.Is(err, errPaused))

	entry, err := kvStore.Get(ctx, "services.processor")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(entry.Value()))
	// Output:
	// true
	// {"timeout":"30s","workers":10}
}

// Typed values: UpdateJSONAs decodes into a struct, not a map.
func ExampleUpdateJSONAs() {
	client, stop := exampleJetStreamClient()
	defer stop()
	ctx := context.Background()

	bucket, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "limits"})
	if err != nil {
		log.Fatal(err)
	}
	kvStore := client.NewKVStore(bucket, func(o *natsclient.KVOptions) {
		o.MaxRetries = 10 // a busy key: retry more than the default 3 times
	})

	type Limits struct {
		Workers int      `json:"workers"`
		Queues  []string `json:"queues"`
	}
	for _, queue := range []string{"orders", "invoices"} {
		_, err := natsclient.UpdateJSONAs(ctx, kvStore, "processor", func(l *Limits) error {
			l.Workers += 2
			l.Queues = append(l.Queues, queue)
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	var l Limits
	if _, err := kvStore.GetJSON(ctx, "processor", &l); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d workers for %v\n", l.Workers, l.Queues)
	// Output: 4 workers for [orders invoices]
}

// Errors match both natsclient's sentinels and jetstream's.
func ExampleIsKVConflictError() {
	client, stop := exampleJetStreamClient()
	defer stop()
	ctx := context.Background()

	bucket, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "flags"})
	if err != nil {
		log.Fatal(err)
	}
	kvStore := client.NewKVStore(bucket)
	rev, err := kvStore.Create(ctx, "feature.dark-mode", []byte("on"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = kvStore.Create(ctx, "feature.dark-mode", []byte("off"))
	fmt.Println(natsclient.IsKVConflictError(err), errors.Is(err, jetstream.ErrKeyExists))

	_, err = kvStore.Update(ctx, "feature.dark-mode", []byte("off"), rev+100)
	fmt.Println(errors.Is(err, natsclient.ErrKVRevisionMismatch), errors.Is(err, jetstream.ErrKeyRevisionMismatch))

	_, err = kvStore.Get(ctx, "feature.missing")
	fmt.Println(natsclient.IsKVNotFoundError(err), errors.Is(err, jetstream.ErrKeyNotFound))
	// Output:
	// true true
	// true true
	// true true
}

// Consume a durable consumer: what the handler accepts is acknowledged, what
// it refuses is delivered again.
func ExampleClient_Consume() {
	client, stop := exampleJetStreamClient()
	defer stop()
	ctx := context.Background()

	if _, err := client.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		log.Fatal(err)
	}
	if _, err := client.PublishToStream(ctx, "orders.new", []byte("order 1")); err != nil {
		log.Fatal(err)
	}
	done := make(chan string)
	attempts := 0
	consumption, err := client.Consume(ctx, "ORDERS", "billing", func(msg jetstream.Msg) error {
		attempts++
		if attempts == 1 {
			return errors.New("database busy") // nak: delivered again
		}
		done <- fmt.Sprintf("%s billed after %d attempts", msg.Data(), attempts)
		return nil // ack
	})
	if err != nil {
		log.Fatal(err)
	}
	defer consumption.Stop()
	fmt.Println(<-done)
	// Output: order 1 billed after 2 attempts
}
