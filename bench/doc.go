// Package bench measures natsclient against raw nats.go, side by side on one
// nats-server in the same run: embedded in the same process, or, for the
// outbox's benchmarks, in a child process of its own (server_process_test.go).
//
// Every comparison is a pair of sub-benchmarks named .../raw and .../client
// that run the same operation, with the same payload, on the same server,
// one right after the other. Absolute times on a shared machine drift; the
// ratio of two neighbouring measurements does not, so the targets are ratios
// and allocation counts.
//
// The benchmarks only run with -bench. To run them all and print one table
// of ratios against the targets, from the module root:
//
//	go run ./bench/cmd/benchratio
//
// See docs/benchmarks.md at the repository root for the numbers and the
// profiles.
package bench
