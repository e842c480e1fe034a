package outbox_test

import (
	"testing"
)

const (
	crashPublishers   = 16
	crashPerPublisher = 625 // 10,000 messages in all
	crashKillAfter    = 5000
)

// The child enqueues while the server is down and is killed part-way; the
// parent reopens the file with the server up. The stream must hold exactly
// what the child's Publish calls returned, once each, each publisher's in
// order (and at most one message more per publisher: one whose Publish
// returned as the kill came, before its report was written).
func TestCrashWhileServerDown(t *testing.T) {
	tc := newEnv(t)
	path := outboxPath(t)
	tc.Server.Stop()
	c := startChild(t, childDown, path, tc.URL, crashPublishers, crashPerPublisher)
	reports := c.publishUntilKilled(t, crashPublishers, crashKillAfter)

	tc.Server.Start()
	ob := openOutbox(t, tc.Client, path)
	flush(t, ob)
	checkPrefixes(t, tc.URL, streamName, reports, extraAllowed(reports))
}

// The same with the kill while the child forwards: some messages were
// acknowledged and deleted, some are on the wire, some not yet sent.
func TestCrashWhileForwarding(t *testing.T) {
	tc := newEnv(t)
	path := outboxPath(t)
	c := startChild(t, childForward, path, tc.URL, crashPublishers, crashPerPublisher)
	reports := c.publishUntilKilled(t, crashPublishers, crashKillAfter)

	ob := openOutbox(t, tc.Client, path)
	t.Logf("reopened with %d pending", ob.Stats().Pending)
	flush(t, ob)
	checkPrefixes(t, tc.URL, streamName, reports, extraAllowed(reports))
	if st := ob.Stats(); st.Resent == 0 && st.Forwarded > 0 {
		t.Logf("no resends after the crash: the child's last window was acknowledged before the kill")
	}
}

func extraAllowed(reports [][]sent) []bool {
	extra := make([]bool, len(reports))
	for g := range reports {
		extra[g] = len(reports[g]) < crashPerPublisher
	}
	return extra
}
