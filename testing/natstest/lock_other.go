//go:build !unix

package natstest

import "context"

// lockFile does nothing where flock is missing: two test binaries may then
// build the image at the same time, which wastes time but is harmless.
func lockFile(context.Context, string) (func(), error) { return func() {}, nil }
