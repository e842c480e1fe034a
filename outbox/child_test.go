package outbox_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
)

// The crash tests and the two-process open test re-run this test binary as a
// child process; TestMain sends it here when childModeEnv is set.
const (
	childModeEnv = "OUTBOX_TEST_CHILD"
	childPathEnv = "OUTBOX_TEST_PATH"
	childURLEnv  = "OUTBOX_TEST_URL"
	childGEnv    = "OUTBOX_TEST_PUBLISHERS"
	childNEnv    = "OUTBOX_TEST_PER_PUBLISHER"
)

// Child modes.
const (
	childDown    = "down"    // publish without ever connecting (the server is down)
	childForward = "forward" // connect, then publish while the outbox forwards
	childHold    = "hold"    // hold the outbox open until stdin closes
)

// childMain opens the outbox and, in the publishing modes, publishes from G
// goroutines N messages each, writing "ok g i id" to stdout the moment each
// Publish returns nil: the parent's record of what must reach the stream.
// Each line is one write(2), so a line the parent reads was complete.
func childMain(mode string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "child: "+format+"\n", args...)
		return 2
	}
	client, err := natsclient.NewClient(os.Getenv(childURLEnv),
		natsclient.WithReconnectWait(25*time.Millisecond), natsclient.WithMaxBackoff(500*time.Millisecond),
		natsclient.WithMaxReconnects(-1), natsclient.WithTimeout(2*time.Second))
	if err != nil {
		return fail("new client: %v", err)
	}
	if mode == childForward {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := client.Connect(ctx)
		cancel()
		if err != nil {
			return fail("connect: %v", err)
		}
	}
	ob, err := outbox.Open(client, os.Getenv(childPathEnv))
	if err != nil {
		return fail("open: %v", err)
	}
	os.Stdout.WriteString("ready\n")
	if mode == childHold {
		_, _ = io.Copy(io.Discard, os.Stdin)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ob.Close(ctx); err != nil {
			return fail("close: %v", err)
		}
		return 0
	}
	g, _ := strconv.Atoi(os.Getenv(childGEnv))
	n, _ := strconv.Atoi(os.Getenv(childNEnv))
	var wg sync.WaitGroup
	for p := range g {
		wg.Go(func() {
			for i := range n {
				id, err := ob.Publish(context.Background(), subjectPfx+"crash", []byte(pubData(p, i)))
				if err != nil {
					fmt.Fprintf(os.Stderr, "child: publish %d:%d: %v\n", p, i, err)
					return
				}
				os.Stdout.WriteString(fmt.Sprintf("ok %d %d %s\n", p, i, id))
			}
		})
	}
	wg.Wait()
	// Not reached in the crash tests: the parent kills the child first.
	select {}
}

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
	stdin io.WriteCloser
}

func startChild(t *testing.T, mode, path, url string, g, n int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		childModeEnv+"="+mode, childPathEnv+"="+path, childURLEnv+"="+url,
		childGEnv+"="+strconv.Itoa(g), childNEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	c := &child{cmd: cmd, lines: bufio.NewScanner(stdout), stdin: stdin}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if !c.lines.Scan() || c.lines.Text() != "ready" {
		t.Fatalf("child did not become ready (first line %q, %v)", c.lines.Text(), c.lines.Err())
	}
	return c
}

// publishUntilKilled reads the child's reports, SIGKILLs it after killAfter
// of them, reads what it had written before it died, and returns the
// messages each publisher reported, in order.
func (c *child) publishUntilKilled(t *testing.T, g, killAfter int) [][]sent {
	t.Helper()
	reports := make([][]sent, g)
	count := 0
	for c.lines.Scan() {
		var p, i int
		var id string
		if _, err := fmt.Sscanf(c.lines.Text(), "ok %d %d %s", &p, &i, &id); err != nil || p < 0 || p >= g {
			t.Fatalf("child wrote %q", c.lines.Text())
		}
		if i != len(reports[p]) {
			t.Fatalf("child publisher %d reported message %d after %d messages", p, i, len(reports[p]))
		}
		reports[p] = append(reports[p], sent{id: id, data: pubData(p, i)})
		if count++; count == killAfter {
			if err := c.cmd.Process.Kill(); err != nil {
				t.Fatalf("kill child: %v", err)
			}
		}
	}
	err := c.cmd.Wait()
	if count < killAfter {
		t.Fatalf("child ended after %d reports, before the kill: %v", count, err)
	}
	t.Logf("child killed after %d reports (%d read in all)", killAfter, count)
	return reports
}
