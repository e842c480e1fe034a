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
// JetStream store in t.TempDir(). A Server can be stopped, started again on
// the same port with the same store, and restarted, so that tests can break
// the connection the way a broker restart does.
package natstest
