//go:build natsclient_broken

package natsclient

// This file exists only in builds with the natsclient_broken tag, which
// reliability's linearizability checks use to show that they catch a client
// that applies an update twice. See breakExactlyOnce.
func init() { breakExactlyOnce = true }
