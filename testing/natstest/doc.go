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
// The server is nats-server itself, run in-process on a random port with its
// JetStream store in t.TempDir().
//
// # Faults
//
// Clients reach a Server through a small fault proxy whose address, URL,
// never changes. A test breaks the connection the way an edge network does:
//
//   - Stop, Start and Restart: a broker restart, with the same URL and the
//     same JetStream store;
//   - Freeze and Thaw: the TCP connections stay open but nothing passes in
//     either direction; nothing is lost, Thaw delivers it in order;
//   - FreezeReplies: the server receives and acts, the client hears nothing
//     (a lost acknowledgement);
//   - Latency(d): every byte takes d longer in each direction;
//   - CutConnections: every client connection is reset at once.
//
// DirectURL bypasses the proxy, for observers that must not suffer the fault.
package natstest
