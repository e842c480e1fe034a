// Package compat holds no code: its tests are nats.go's own Key-Value tests
// (jetstream/test/kv_test.go of the nats.go version in go.mod), run against
// natsclient's KVStore on natstest servers, so that a difference from
// nats.go shows up as a failing test rather than as a user's surprise.
//
// Every call a KVStore offers (Get, Put, Create, Update, Delete, Keys,
// Watch) goes to the KVStore; the rest of jetstream.KeyValue goes to the
// bucket handle natsclient.Client hands out. The assertions are nats.go's,
// except where natsclient differs on purpose: each such place says
// "Difference:" and is listed in natsclient's package documentation
// under "Differences from nats.go".
package compat
