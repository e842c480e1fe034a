package bench

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// A server in a process of its own, for the benchmarks whose client side
// allocates much more than a raw call does (the outbox's forwarding). With
// the server in the benchmark's process, every garbage collection the
// client's allocations bring on also marks the server's heap (a stream's
// duplicate-tracking map holds an entry per message for two minutes), which
// charges the client for memory that, in production, lives on another
// machine. Both sides still share one server and the machine's cores.

var serverProcess = flag.Bool("server-process", true,
	"run the outbox benchmarks' server in a child process, as in production (false: in this process)")

// serveEnv, when set in a child's environment, makes it a server: see
// TestMain.
const serveEnv = "BENCH_SERVE_STORE"

// urlServer is a server the benchmarks dial.
type urlServer interface{ URL() string }

// childServer is nats-server with JetStream in a child process of this test
// binary; it stops when the benchmark ends.
type childServer struct{ url string }

func (s *childServer) URL() string { return s.url }

// startChildServer starts the child and waits for the address it listens on.
func startChildServer(tb testing.TB) *childServer {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+tb.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start the server process: %v", err)
	}
	// Closing its stdin is the child's signal to shut down.
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			_ = cmd.Process.Kill()
			<-done
			tb.Errorf("the server process did not stop within %v", waitTimeout)
		}
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case a := <-addr:
		if a == "" {
			tb.Fatal("the server process exited before it listened")
		}
		return &childServer{url: "nats://" + a}
	case <-time.After(waitTimeout):
		tb.Fatalf("the server process did not listen within %v", waitTimeout)
		return nil
	}
}

// serve runs a server with JetStream stored in storeDir, prints its address,
// and shuts it down when stdin closes: the child's side of startChildServer.
func serve(storeDir string) int {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: storeDir,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		return 1
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "serve: not ready for connections within 10s")
		return 1
	}
	port := srv.Addr().(*net.TCPAddr).Port
	fmt.Println(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Shutdown()
	srv.WaitForShutdown()
	return 0
}

// jetStreamServer starts the outbox benchmarks' server where -server-process
// says.
func jetStreamServer(tb testing.TB) urlServer {
	if *serverProcess {
		return startChildServer(tb)
	}
	return newServer(tb, true)
}
