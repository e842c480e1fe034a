//go:build !unix

package natstest

// lockFile does nothing where flock is missing: two test binaries may then
// build the image at the same time, which wastes time but is harmless.
func lockFile(string) (func(), error) { return func() {}, nil }
