package natstest

import "go.uber.org/goleak"

// lingeringServerGoroutines are goroutines an in-process nats-server leaves
// running after its Shutdown, each waiting on a timer of its own with nothing
// that ends it sooner. They hold nothing of the test's, and end by
// themselves.
var lingeringServerGoroutines = []string{
	// A mirror (a KV bucket's too) that asked its origin for a consumer
	// and got no answer, as when a leaf's link to the hub is cut: waits up
	// to 30s for the answer.
	"github.com/nats-io/nats-server/v2/server.(*stream).setupMirrorConsumer.func3",
	// The same for a stream's source (a stream or bucket with Sources).
	"github.com/nats-io/nats-server/v2/server.(*stream).trySetupSourceConsumer.func3",
}

// IgnoreGoroutines returns the goleak options that a test binary running
// natstest's embedded servers needs, for goroutines nats-server itself leaves
// behind after Shutdown (see NewLeaf). Pass them to goleak.VerifyTestMain or
// goleak.VerifyNone:
//
//	func TestMain(m *testing.M) {
//		goleak.VerifyTestMain(m, natstest.IgnoreGoroutines()...)
//	}
//
// They match those goroutines by the nats-server function they run, and
// nothing of natsclient's or the test's.
func IgnoreGoroutines() []goleak.Option {
	opts := make([]goleak.Option, len(lingeringServerGoroutines))
	for i, fn := range lingeringServerGoroutines {
		opts[i] = goleak.IgnoreAnyFunction(fn)
	}
	return opts
}
