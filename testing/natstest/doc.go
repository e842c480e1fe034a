// Package natstest gives tests a real NATS server and a connected
// natsclient.Client, cleaned up with t.Cleanup, in the manner of
// net/http/httptest. No mocks: the server is nats-server itself.
//
//	func TestOrders(t *testing.T) {
//		tc := natstest.NewTestClient(t, natstest.WithJetStream())
//		err := tc.Client.Publish(context.Background(), "orders.new", []byte("{}"))
//		...
//	}
//
// NewServer(t, opts...) starts a server; NewTestClient(t, opts...) starts one
// and connects a client to it, with fast reconnect settings for tests;
// ConnectTestClient(t, srv, opts...) connects one to a server already
// started (a leaf node, a cluster member).
// WithJetStream and WithKV turn JetStream on, with a store that survives Stop
// and Start and is removed after the test. WithServerOptions changes anything
// else (authorization, TLS, limits); WithClientOptions adds client options.
//
// The waits take a deadline and fail the test with what they waited for:
// Await reads a channel until a value matches (ToState and BreakerIs match
// a client's state events), Receive takes the next value or a close,
// Eventually polls a condition that no event announces, and Context bounds
// a test's calls. TestClient.RestartServer stops the server and waits until
// the client has reconnected. JetStream gives a test its own view of the
// server, beside the client under test, and StreamMsgs reads a whole stream
// back through it for a final check.
//
// # Backends
//
// A server runs on one of two backends. Embedded runs nats-server in the
// test process, on a random port, with its store in t.TempDir(): nothing but
// Go, a start in milliseconds. Container runs it in Docker through
// testcontainers-go: a Docker engine, about a second a start. WithBackend
// chooses in a test, or for a whole run the variable NATSTEST_BACKEND:
//
//	NATSTEST_BACKEND=auto      go test ./...   # the default: containers if Docker answers, else embedded
//	NATSTEST_BACKEND=embedded  go test ./...   # every server in the test process
//	NATSTEST_BACKEND=container go test ./...   # every server in a container
//
// Container without a Docker engine skips the test within a second, saying
// what is missing; DOCKER_HOST is honoured as given. Auto falls back to
// Embedded when no engine answers and says which it chose, once per test
// binary. The same tests run unchanged on both: Server.Varz and
// Server.NumClients read the monitoring report on either, while
// Server.NATSServer (the in-process *server.Server) is nil on containers, so
// a test that needs it says WithBackend(Embedded).
//
// On a container, WithServerOptions is translated into a configuration file
// (MaxPayload, Username and Password, an Authorization token, Users, Nkeys, a
// server TLS certificate in TLSConfig, client-certificate checks when
// TLSVerify is set and TLSCaCert names the CA's PEM file, JetStream). A server
// whose options cannot be expressed there (accounts, operators and JWTs, a
// TLSConfig.MaxVersion, a fixed Port, ...) runs embedded instead, and the
// test log names the fields. A container publishes its ports on 127.0.0.1
// only, and its configuration file, which may hold the test's passwords, is
// readable by the server alone.
//
// # The container image, offline
//
// The container backend never needs a registry. Unless told otherwise it
// builds its own image once per machine: it asks go list for the
// nats-server version the go.mod under test pins, builds that version
// statically from the module cache, and puts the binary alone in a FROM
// scratch image tagged natstest/nats-server:<version>. Later runs reuse the
// tag; test binaries running side by side take a file lock (natstest/image.lock
// in the user's cache directory) so that one builds it. The first build takes
// a minute or two; docker rmi natstest/nats-server:<version> forces a new one.
//
// NATSTEST_IMAGE, or WithImage in a test, names an image of your own instead
// (NATSTEST_IMAGE=nats:2.11-alpine). Its entrypoint must be nats-server, as
// in the official nats images: the harness passes command-line flags (--port
// 4222 --http_port 8222 --jetstream --store_dir /data ...). An image already
// on the machine is used as it is; a missing one is pulled by Docker.
//
// # Nothing left behind
//
// testcontainers' reaper (Ryuk) is itself an image that would have to be
// pulled, so the harness turns it off (TESTCONTAINERS_RYUK_DISABLED=true,
// unless set already) and removes every container and network it made in
// t.Cleanup, also when the test fails. Everything it makes carries the labels
// natstest=<test name> and natstest.run=<id> (random per test process, or
// NATSTEST_RUN), so docker ps -a --filter label=natstest is empty after a
// run. If a test used testcontainers before natstest did, the reaper stays on
// for the process; natstest then says so, and the fix is
// TESTCONTAINERS_RYUK_DISABLED=true in the environment of go test. When the
// tests themselves run inside a container on the Docker host, the harness
// sets TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 unless it is set. A fuzz worker
// (go test -fuzz) runs its servers embedded whatever the backend: go test
// stops workers a second after fuzzing ends, too soon to remove a container.
//
// # Faults
//
// Clients reach every server through a small fault proxy in the test
// process. Server.URL is the proxy's address and never changes, so the server
// behind it can be stopped, started again on another port or in another
// container, frozen, slowed down or cut off. The verbs are the same on both
// backends:
//
//   - Stop: the connection closes; new connections are reset until Start. If
//     the connection is frozen the client sees nothing until Thaw, then a
//     reset: what the freeze held is lost with the server.
//   - Start: the server is back behind the same URL, with the same
//     JetStream store. Restart is Stop then Start.
//   - Kill: a crash. On containers the process gets SIGKILL and loses what it
//     had not written; an in-process server cannot lose its process, so on
//     the embedded backend Kill is an immediate shutdown. Start brings it back
//     with its store as the crash left it.
//   - Freeze and Thaw: the TCP connection stays open but nothing passes
//     either way, as with a hung server or a silent network, found only by
//     pings. Nothing is lost: Thaw delivers it in order.
//   - FreezeReplies: the server receives and acts, the client hears nothing
//     back (a lost acknowledgement). Thaw ends it.
//   - Latency(d): every byte takes d longer in each direction; Latency(0)
//     removes it.
//   - CutConnections: every client connection is reset at once (TCP RST);
//     the server runs on, so clients reconnect at once.
//
// DirectURL bypasses the proxy (it changes with each start), for an observer
// that must not suffer the fault, such as a responder during FreezeReplies.
// Freeze, FreezeReplies, Latency and CutConnections act on client
// connections only: routes between cluster members keep flowing
// (Cluster.Isolate cuts them; Stop or Kill takes a member away). On containers the faults are the
// proxy's too, not docker pause, and Stop and Start are docker stop and
// docker start of the same container, so the store survives like a disk.
// Servers advertise the proxy's address (client_advertise), so a client that
// learns of other members reconnects through their proxies and cannot dodge a
// fault.
//
// # Clusters
//
//	c := natstest.NewCluster(t, 3)              // n0, n1, n2, JetStream on
//	client, _ := natsclient.NewClient(c.URLs()) // every member's proxy URL
//	leader := c.StreamLeader("$G", "KV_orders") // a KV bucket B is stream KV_B
//	c.Server(leader).Stop()
//	next := c.WaitForStreamLeader("$G", "KV_orders")
//
// NewCluster starts n servers routed into one JetStream cluster, each behind
// its own proxy, and returns once a meta leader sees every member as a
// current peer and has placed a replicated stream on all of them. On a loaded
// machine, or after a restart, the leader may still count a member offline
// for a moment ("no suitable peers for placement"): wrap the creation of a
// replicated stream or bucket in Place, which retries that error alone, for
// up to 30s. URLs is what natsclient.NewClient takes; Server(i) takes faults.
// MetaLeader and StreamLeader return the index of the current leader (or -1),
// read from each member's JetStream report; WaitForMetaLeader and
// WaitForStreamLeader wait up to 30s for one among the running members. "$G"
// is the account of a server without accounts. LastMsg(stream, subject)
// reads a subject's last message as the stream's leader holds it, for a final
// check: a bucket's own reads may come from a replica a revision behind.
// Embedded members listen for routes on 127.0.0.1 on ports kept across
// restarts; container members share a Docker network of their own, removed
// after the test.
//
// # Partitions, kills and step-downs
//
// Every ordered pair of members has its own route proxy. Isolate(i) resets
// every route to and from member i and refuses new ones until Heal: a
// partition with i alone on one side, seen by both ends as a failed
// connection, while clients still reach i (which then has no quorum).
// nats-server gossips route addresses and cannot be told not to dial them, so
// each member is given all its routes explicitly and advertises
// (cluster_advertise) a sink that resets every connection: a gossiped route
// fails once, and the explicit ones carry the cluster. On containers the
// route proxies listen on the host's address on the Docker bridge (docker0),
// so clusters need the Docker engine on this machine. StepDownStream(stream)
// asks the stream's leader to step down
// ($JS.API.STREAM.LEADER.STEPDOWN.<stream>) and returns the server's refusal,
// if any.
//
// # Leaf nodes and JetStream domains
//
//	hub := natstest.NewServer(t, natstest.WithJetStreamDomain("hub"), natstest.WithLeafNodes())
//	leaf := natstest.NewLeaf(t, hub, natstest.WithJetStreamDomain("edge"))
//	leaf.WaitForHubLink(true)       // the leaf's remote is connected
//	client, _ := natsclient.NewClient(leaf.URL())
//	leaf.HubLink().Cut()            // the site loses its uplink; both servers run on
//	leaf.WaitForHubLink(false)
//	leaf.HubLink().Restore()        // the leaf redials within a second or so
//
// WithJetStreamDomain(d) turns JetStream on in domain d; WithLeafNodes opens a
// leaf node listener (embedded: 127.0.0.1 on a port kept across restarts;
// containers: port 7422 on the host's loopback). NewLeaf starts a leaf node,
// itself a *Server whose fault verbs act on its clients' connections, not on
// the hub link; for a hub that is a cluster (made WithLeafNodes),
// Cluster.NewLeaf gives the leaf every member as a remote. The leaf reaches
// its hub through a fault proxy of its own per hub member, repointed on every
// start of the hub; HubLink drives it: Cut resets the link and refuses the
// leaf's redials until Restore, Freeze and Thaw hold and deliver its traffic,
// Latency delays it. WaitForHubLink(up) waits up to 30s until the leaf's
// monitoring report shows the hub connection up or gone. Interest and the
// hub's JetStream domain take a moment more to cross a new link, so a first
// call to the hub may still meet "no responders".
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
