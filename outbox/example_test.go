package outbox_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// exampleServer starts an in-process nats-server with JetStream for the
// example, which cannot use natstest (it needs a *testing.T).
func exampleServer(storeDir string) (url string, stop func()) {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: storeDir,
	})
	if err != nil {
		log.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("server not ready")
	}
	port := srv.Addr().(*net.TCPAddr).Port
	return "nats://127.0.0.1:" + strconv.Itoa(port), func() { srv.Shutdown(); srv.WaitForShutdown() }
}

// An outbox stores each message on disk before Publish returns and forwards
// the queue to its stream while the client is connected; Flush waits until
// everything published so far is acknowledged.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "outbox-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	url, stop := exampleServer(filepath.Join(dir, "jetstream"))
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := natsclient.NewClient(url)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)
	if err := client.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := client.CreateStream(ctx, jetstream.StreamConfig{Name: "TELEMETRY", Subjects: []string{"telemetry.>"}}); err != nil {
		log.Fatal(err)
	}

	ob, err := outbox.Open(client, filepath.Join(dir, "outbox.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer ob.Close(ctx)

	for _, reading := range []string{"21.5", "21.7", "21.6"} {
		if _, err := ob.Publish(ctx, "telemetry.site1.temp", []byte(reading)); err != nil {
			log.Fatal(err) // not stored: ErrFull, a bad subject, or the disk failed
		}
	}
	if err := ob.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	st := ob.Stats()
	fmt.Printf("forwarded %d, pending %d\n", st.Forwarded, st.Pending)
	// Output: forwarded 3, pending 0
}
