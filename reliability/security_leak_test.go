package reliability_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats-server/v2/server"
)

// No secret leaves the process: credentials given in any of the ways the
// client takes them (user and password or a token in the URL, WithUserInfo,
// WithToken, an nkey seed file, a credentials file) never appear in what the
// client produces: log lines (through a Logger and through the slog
// adapter), errors and everything they wrap, state events, stats, the
// disconnect callback's error, or the client itself printed. Each way is driven through every outcome that
// formats a URL or an error: the right credentials, wrong ones, a server
// that is down, and a server that stops taking the credentials after the
// client connected (which opens the breaker with the refusal as its cause,
// so that every call fails with it).
func TestSecurityNoSecretLeaks(t *testing.T) {
	dir := t.TempDir()
	nkeys := nkeyMethod(t, dir)
	creds := credsMethod(t, dir)
	urlPass, urlPassWrong := secret(t, "url-pass"), secret(t, "url-pass-wrong")
	urlToken, urlTokenWrong := secret(t, "url-token"), secret(t, "url-token-wrong")
	optPass, optPassWrong := secret(t, "opt-pass"), secret(t, "opt-pass-wrong")
	optToken, optTokenWrong := secret(t, "opt-token"), secret(t, "opt-token-wrong")
	secrets := append([]string{urlPass, urlPassWrong, urlToken, urlTokenWrong, optPass, optPassWrong, optToken, optTokenWrong},
		seedsIn(t, dir)...)

	withUserInfo := func(userinfo string) func(string) string {
		return func(url string) string { return strings.Replace(url, "://", "://"+userinfo+"@", 1) }
	}
	plain := func(url string) string { return url }
	ways := []struct {
		name   string
		server func(*server.Options)
		// right and wrong are how a client is given the right and the
		// wrong credentials: a change to the server URL and options.
		rightURL, wrongURL func(string) string
		right, wrong       []natsclient.Option
	}{
		{
			name:     "user and password in the URL",
			server:   func(o *server.Options) { o.Username, o.Password = "alice", urlPass },
			rightURL: withUserInfo("alice:" + urlPass), wrongURL: withUserInfo("alice:" + urlPassWrong),
		},
		{
			name:     "token in the URL",
			server:   func(o *server.Options) { o.Authorization = urlToken },
			rightURL: withUserInfo(urlToken), wrongURL: withUserInfo(urlTokenWrong),
		},
		{
			name:     "WithUserInfo",
			server:   func(o *server.Options) { o.Username, o.Password = "bob", optPass },
			rightURL: plain, wrongURL: plain,
			right: []natsclient.Option{natsclient.WithUserInfo("bob", optPass)},
			wrong: []natsclient.Option{natsclient.WithUserInfo("bob", optPassWrong)},
		},
		{
			name:     "WithToken",
			server:   func(o *server.Options) { o.Authorization = optToken },
			rightURL: plain, wrongURL: plain,
			right: []natsclient.Option{natsclient.WithToken(optToken)},
			wrong: []natsclient.Option{natsclient.WithToken(optTokenWrong)},
		},
		{
			name: "nkey seed file", server: nkeys.server, rightURL: plain, wrongURL: plain,
			right: nkeys.right, wrong: nkeys.refused[0].opts,
		},
		{
			name: "credentials file", server: creds.server, rightURL: plain, wrongURL: plain,
			right: creds.right, wrong: creds.refused[0].opts,
		},
	}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			out := newOutputs(t)
			srv := natstest.NewServer(t, natstest.WithServerOptions(w.server))

			t.Run("right credentials", func(t *testing.T) {
				c := out.client(t, w.rightURL(srv.URL()), w.right...)
				ctx := natstest.Context(t, testTimeout)
				out.err(c.Connect(ctx))
				out.err(c.Publish(ctx, "leak.check", []byte("x")))
				_, err := c.Request(ctx, "leak.nobody", nil)
				out.err(err)
				out.err(c.Flush(ctx))
				out.err(c.Close(ctx))
				out.stats(c)
			})
			t.Run("wrong credentials", func(t *testing.T) {
				c := out.client(t, w.wrongURL(srv.URL()), w.wrong...)
				ctx := natstest.Context(t, testTimeout)
				if err := c.Connect(ctx); !errors.Is(err, natsclient.ErrPermanent) {
					t.Fatalf("Connect with wrong credentials = %v, want ErrPermanent", err)
				} else {
					out.err(err)
				}
				out.err(c.Publish(ctx, "leak.check", nil))
				out.stats(c)
			})
			t.Run("server down", func(t *testing.T) {
				c := out.client(t, w.rightURL("nats://"+deadAddress(t)), w.right...)
				events := out.events(t, c)
				ctx, cancel := context.WithTimeout(natstest.Context(t, testTimeout), 20*securityWait)
				defer cancel()
				err := c.Connect(ctx)
				if err == nil {
					t.Fatal("Connect to a server that is down succeeded")
				}
				out.err(err)
				natstest.Await(t, events, waitTimeout, "breaker open", natstest.BreakerIs(natsclient.BreakerOpen))
				err = c.Publish(natstest.Context(t, testTimeout), "leak.check", nil)
				if !errors.Is(err, natsclient.ErrCircuitOpen) {
					t.Fatalf("Publish while down = %v, want ErrCircuitOpen", err)
				}
				out.err(err)
				out.stats(c)
			})
			t.Run("credentials refused after connecting", func(t *testing.T) {
				// Embedded: the refusing server takes over the first one's
				// own port, where the client's URL points.
				first := natstest.NewServer(t, natstest.WithServerOptions(w.server), natstest.WithBackend(natstest.Embedded))
				port := first.NATSServer().Addr().(*net.TCPAddr).Port
				c := out.client(t, w.rightURL(first.DirectURL()), w.right...)
				events := out.events(t, c)
				ctx := natstest.Context(t, testTimeout)
				if err := c.Connect(ctx); err != nil {
					t.Fatalf("Connect with the right credentials: %v", err)
				}
				first.Stop()
				natstest.NewServer(t, natstest.WithBackend(natstest.Embedded), natstest.WithServerOptions(func(o *server.Options) {
					o.Username, o.Password, o.Port = "nobody", "nothing", port
				}))
				natstest.Await(t, events, waitTimeout, "breaker open on a refusal", func(ev natsclient.StateChange) bool {
					return ev.Breaker == natsclient.BreakerOpen && errors.Is(ev.Err, natsclient.ErrPermanent)
				})
				err := c.Publish(ctx, "leak.check", nil)
				var open *natsclient.CircuitOpenError
				if !errors.As(err, &open) || !errors.Is(err, natsclient.ErrPermanent) {
					t.Fatalf("Publish while refused = %v, want a CircuitOpenError caused by the refusal", err)
				}
				out.err(err)
				out.stats(c)
			})

			out.check(t, secrets)
		})
	}
}

// secret makes a value no test output could hold by chance.
func secret(t *testing.T, what string) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return what + "-" + hex.EncodeToString(b)
}

// seedsIn returns every nkey seed in the files in dir.
func seedsIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seeds []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); len(line) > 50 && (strings.HasPrefix(line, "SU") || strings.HasPrefix(line, "SA")) {
				seeds = append(seeds, line)
			}
		}
	}
	if len(seeds) == 0 {
		t.Fatal("no seed found in the test's key files")
	}
	return seeds
}

// deadAddress is a local address where nothing listens.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// outputs collects everything the clients of one test produce.
type outputs struct {
	mu    sync.Mutex
	texts []string
	slog  *syncBuffer
	lines int // log lines seen, to prove the loggers were used
}

func newOutputs(t *testing.T) *outputs {
	return &outputs{slog: &syncBuffer{}}
}

func (o *outputs) add(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.texts = append(o.texts, fmt.Sprintf(format, args...))
}

// Printf is the plain Logger.
func (o *outputs) Printf(format string, args ...any) {
	o.add(format, args...)
	o.mu.Lock()
	o.lines++
	o.mu.Unlock()
}

// client makes a client whose log lines, through both kinds of logger, and
// disconnect callback errors are collected. Half the log goes through the
// slog adapter: the logger given is a tee.
func (o *outputs) client(t *testing.T, url string, opts ...natsclient.Option) *natsclient.Client {
	t.Helper()
	logger := teeLogger{o, natsclient.SlogLogger(slog.New(slog.NewTextHandler(o.slog, nil)))}
	all := append(securityClientOptions(opts...),
		natsclient.WithLogger(logger),
		natsclient.WithDisconnectCallback(func(err error) { o.err(err) }))
	return newClient(t, url, all...)
}

// err records an error's text, in both verbs, and that of everything it
// wraps.
func (o *outputs) err(err error) {
	for _, e := range errorChain(err) {
		o.add("%v", e)
		o.add("%+v", e)
	}
}

func (o *outputs) stats(c *natsclient.Client) {
	st := c.Stats()
	o.add("%+v", st)
	o.add("%+v %#v", c, c)
	o.err(st.LastError)
}

// events records c's state events as they come, and passes them on.
func (o *outputs) events(t *testing.T, c *natsclient.Client) <-chan natsclient.StateChange {
	in := recordEvents(t, c)
	out := make(chan natsclient.StateChange, 4096)
	go func() {
		defer close(out)
		for ev := range in {
			o.add("%+v", ev)
			o.err(ev.Err)
			out <- ev
		}
	}()
	return out
}

// check fails the test for every secret found in the collected output.
func (o *outputs) check(t *testing.T, secrets []string) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	all := strings.Join(o.texts, "\n") + "\n" + o.slog.String()
	if o.lines == 0 || o.slog.Len() == 0 {
		t.Fatalf("the loggers saw nothing (%d lines, %d bytes through slog): nothing was scanned", o.lines, o.slog.Len())
	}
	for _, s := range secrets {
		if i := strings.Index(all, s); i >= 0 {
			from, to := max(0, i-200), min(len(all), i+len(s)+50)
			t.Errorf("secret %q leaked:\n...%s...", s, all[from:to])
		}
	}
	t.Logf("scanned %d outputs and %d bytes of slog output", len(o.texts), o.slog.Len())
}

// errorChain is err and every error it wraps, through Unwrap() error and
// Unwrap() []error.
func errorChain(err error) []error {
	if err == nil {
		return nil
	}
	chain := []error{err}
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		chain = append(chain, errorChain(e.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			chain = append(chain, errorChain(inner)...)
		}
	}
	return chain
}

type teeLogger []natsclient.Logger

func (l teeLogger) Printf(format string, args ...any) {
	for _, logger := range l {
		logger.Printf(format, args...)
	}
}

// syncBuffer is a bytes.Buffer safe for the client's goroutines to log to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
