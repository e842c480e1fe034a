// Package natstest gives tests a real NATS server and a connected
// natsclient.Client, cleaned up with t.Cleanup, in the manner of
// net/http/httptest.
//
//	func TestOrders(t *testing.T) {
//		tc := natstest.NewTestClient(t, natstest.WithJetStream())
//		err := tc.Client.Publish(context.Background(), "orders.new", []byte("{}"))
//		...
//	}
//
// The server is nats-server itself.
//
// # Backends
//
// Embedded runs it in the test process, on a random port, with its JetStream
// store in t.TempDir(). Container runs it in Docker through testcontainers-go,
// from NATSTEST_IMAGE, WithImage, or an image the harness builds offline from
// the nats-server version in go.mod (natstest/nats-server:<version>, FROM
// scratch, built once per machine). WithBackend chooses, else the variable
// NATSTEST_BACKEND ("embedded", "container", "auto"); without a Docker engine
// Container skips the test, saying so, and Auto falls back to Embedded. The
// same tests run on both: Server.Varz and NumClients read either, while
// NATSServer is the in-process server only.
//
// # Faults
//
// Clients reach a Server through a small fault proxy whose address, URL,
// never changes. A test breaks the connection the way an edge network does:
//
//   - Stop, Start and Restart: a broker restart, with the same URL and the
//     same JetStream store; Kill: a crash (SIGKILL on containers);
//   - Freeze and Thaw: the TCP connections stay open but nothing passes in
//     either direction; nothing is lost, Thaw delivers it in order;
//   - FreezeReplies: the server receives and acts, the client hears nothing
//     (a lost acknowledgement);
//   - Latency(d): every byte takes d longer in each direction;
//   - CutConnections: every client connection is reset at once.
//
// DirectURL bypasses the proxy, for observers that must not suffer the fault.
//
// # Clusters
//
// NewCluster starts n servers routed into one JetStream cluster, each behind
// its own proxy, and returns once a stream can be placed on all of them. URLs
// is what natsclient.NewClient takes; Server(i) takes faults; MetaLeader and
// StreamLeader say which member leads. Routes run through proxies too, one
// per ordered pair of members: Isolate(i) cuts member i off from the others
// (a network partition) until Heal. StepDownStream makes a stream's leader
// step down.
//
// # Goroutine leak checks
//
// Every server a test starts is shut down by t.Cleanup, and a client's
// goroutines end with its Close, so goleak finds nothing of natstest's or
// natsclient's. nats-server itself leaves one kind behind: a mirror or a
// source on a leaf node cut off from its hub waits up to 30s for the hub's
// answer, on a timer that Shutdown does not stop. With the embedded backend
// that goroutine is in the test binary; IgnoreGoroutines returns the goleak
// options that name it, and nothing else:
//
//	func TestMain(m *testing.M) {
//		goleak.VerifyTestMain(m, natstest.IgnoreGoroutines()...)
//	}
package natstest
