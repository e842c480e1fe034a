package reliability_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Story 6: a server that requires credentials or TLS. The right ones connect;
// wrong or missing ones fail Connect at once with an error that says why and
// matches natsclient.ErrPermanent, after exactly one dial: no retry loop, no
// breaker cycling.

// securityWait is the client's reconnect wait in these tests. A client that
// retried a refused connection would dial again within it.
const securityWait = 20 * time.Millisecond

// quietWindow is how long a refused client is watched for a retry: many
// times the reconnect wait and more than the first breaker interval.
const quietWindow = 15 * securityWait

func securityClientOptions(extra ...natsclient.Option) []natsclient.Option {
	return append([]natsclient.Option{
		natsclient.WithReconnectWait(securityWait),
		natsclient.WithMaxBackoff(10 * securityWait),
		natsclient.WithTimeout(2 * time.Second),
		natsclient.WithCircuitBreakerThreshold(1),
	}, extra...)
}

// refusal is a client configuration the server must refuse, and the word its
// error must contain.
type refusal struct {
	name string
	opts []natsclient.Option
	says string
	// noDial is set where the client must fail before dialling at all.
	noDial bool
}

type authMethod struct {
	name    string
	server  func(*server.Options)
	right   []natsclient.Option
	refused []refusal
}

func TestSecurityCredentials(t *testing.T) {
	dir := t.TempDir()
	methods := []authMethod{
		{
			name:   "user and password",
			server: func(o *server.Options) { o.Username, o.Password = "edge", "s3cret" },
			right:  []natsclient.Option{natsclient.WithUserInfo("edge", "s3cret")},
			refused: []refusal{
				{name: "wrong password", opts: []natsclient.Option{natsclient.WithUserInfo("edge", "guess")}, says: "authorization"},
				{name: "unknown user", opts: []natsclient.Option{natsclient.WithUserInfo("intruder", "s3cret")}, says: "authorization"},
				{name: "missing", says: "authorization"},
			},
		},
		{
			name:   "token",
			server: func(o *server.Options) { o.Authorization = "tok-3141" },
			right:  []natsclient.Option{natsclient.WithToken("tok-3141")},
			refused: []refusal{
				{name: "wrong token", opts: []natsclient.Option{natsclient.WithToken("tok-2718")}, says: "authorization"},
				{name: "missing", says: "authorization"},
			},
		},
		nkeyMethod(t, dir),
		credsMethod(t, dir),
	}
	seeds := seedsIn(t, dir) // the test's key files, good and corrupt
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			srv := natstest.NewServer(t, natstest.WithServerOptions(m.server))
			expectAccepted(t, srv.URL(), m.right...)
			for _, r := range m.refused {
				t.Run(r.name, func(t *testing.T) {
					err := expectRefused(t, srv, srv.URL(), r)
					for _, seed := range seeds {
						if strings.Contains(err.Error(), seed) {
							t.Fatalf("Connect's error shows a seed: %v", err)
						}
					}
				})
			}
		})
	}
}

// nkeyMethod is a server that knows one user nkey; the client holds its seed
// in a file.
func nkeyMethod(t *testing.T, dir string) authMethod {
	known := seedFile(t, dir, "known.nk")
	stranger := seedFile(t, dir, "stranger.nk")
	return authMethod{
		name: "nkey",
		server: func(o *server.Options) {
			o.Nkeys = []*server.NkeyUser{{Nkey: publicKeyOf(t, known)}}
		},
		right: []natsclient.Option{natsclient.WithNKeyFile(known)},
		refused: []refusal{
			{name: "unknown nkey", opts: []natsclient.Option{natsclient.WithNKeyFile(stranger)}, says: "authorization"},
			{name: "missing", says: "authorization"},
		},
	}
}

func seedFile(t *testing.T, dir, name string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func publicKeyOf(t *testing.T, seedPath string) string {
	t.Helper()
	seed, err := os.ReadFile(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// credsMethod is decentralised auth: the server trusts an operator, knows
// one account through a memory resolver, and the client presents a
// credentials file with a user JWT that account signed.
func credsMethod(t *testing.T, dir string) authMethod {
	operator := newKeyPair(t, nkeys.CreateOperator)
	account := newKeyPair(t, nkeys.CreateAccount)
	unknownAccount := newKeyPair(t, nkeys.CreateAccount)
	accountClaims := jwt.NewAccountClaims(publicKey(t, account))
	accountJWT, err := accountClaims.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(publicKey(t, account), accountJWT); err != nil {
		t.Fatal(err)
	}
	corrupt := corruptSeed(t, credsFile(t, dir, "corrupt.creds", account))
	notCreds := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notCreds, []byte("not a credentials file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seedOnly := seedFile(t, dir, "user.nk")
	return authMethod{
		name: "creds",
		server: func(o *server.Options) {
			o.TrustedKeys = []string{publicKey(t, operator)}
			o.AccountResolver = resolver
		},
		right: []natsclient.Option{natsclient.WithCredentials(credsFile(t, dir, "user.creds", account))},
		refused: []refusal{
			{name: "user of an unknown account", opts: []natsclient.Option{natsclient.WithCredentials(credsFile(t, dir, "stranger.creds", unknownAccount))}, says: "authorization"},
			{name: "missing", says: "authorization"},
			{name: "unreadable file", opts: []natsclient.Option{natsclient.WithCredentials(filepath.Join(dir, "no-such.creds"))}, says: "cannot be read", noDial: true},
			{name: "corrupt seed", opts: []natsclient.Option{natsclient.WithCredentials(corrupt)}, says: corrupt + ": holds no valid user nkey seed", noDial: true},
			{name: "not a creds file", opts: []natsclient.Option{natsclient.WithCredentials(notCreds)}, says: notCreds + ": holds no user JWT", noDial: true},
			// nats.go would send a file without a JWT block as the JWT, seed
			// and all.
			{name: "a seed file", opts: []natsclient.Option{natsclient.WithCredentials(seedOnly)}, says: seedOnly + ": holds no user JWT", noDial: true},
		},
	}
}

func newKeyPair(t *testing.T, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func publicKey(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// credsFile writes a credentials file for a new user signed by account.
func credsFile(t *testing.T, dir, name string, account nkeys.KeyPair) string {
	t.Helper()
	user := newKeyPair(t, nkeys.CreateUser)
	userJWT, err := jwt.NewUserClaims(publicKey(t, user)).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// corruptSeed changes one character in the middle of the nkey seed in the
// credentials file at path, leaving its JWT valid, and returns path.
func corruptSeed(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(data), "\nSU")
	if i < 0 {
		t.Fatalf("no user seed in %s", path)
	}
	i += 20
	if data[i] == 'A' {
		data[i] = 'B'
	} else {
		data[i] = 'A'
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A credentials file that cannot be read must stop the client, not let it
// dial without credentials: against a server that lets anyone in, that would
// be a silent fall back to anonymous access.
func TestSecurityUnreadableCredentialsNeverConnectAnonymously(t *testing.T) {
	srv := natstest.NewServer(t)
	expectRefused(t, srv, srv.URL(), refusal{
		opts:   []natsclient.Option{natsclient.WithCredentials(filepath.Join(t.TempDir(), "lost.creds"))},
		says:   "cannot be read",
		noDial: true,
	})
}

func TestSecurityTLS(t *testing.T) {
	ca := newCA(t, "natsclient test CA")
	serverCert := ca.issue(t)
	srv := natstest.NewServer(t, natstest.WithServerOptions(func(o *server.Options) {
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}
		o.TLSTimeout = 2
	}))
	if !strings.HasPrefix(srv.URL(), "tls://") {
		t.Fatalf("TLS server URL %q", srv.URL())
	}
	plainURL := "nats://" + strings.TrimPrefix(srv.URL(), "tls://")

	t.Run("trusted CA", func(t *testing.T) {
		expectAccepted(t, srv.URL(), natsclient.WithTLSConfig(&tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12}))
	})
	t.Run("untrusted CA", func(t *testing.T) {
		other := newCA(t, "some other CA")
		expectRefused(t, srv, srv.URL(), refusal{
			opts: []natsclient.Option{natsclient.WithTLSConfig(&tls.Config{RootCAs: other.pool(), MinVersion: tls.VersionTLS12})},
			says: "certificate",
		})
	})
	t.Run("client without TLS", func(t *testing.T) {
		// nats.go upgrades to TLS when the server requires it, and then
		// cannot verify a certificate from a CA it was not given.
		expectRefused(t, srv, plainURL, refusal{says: "TLS"})
	})
	t.Run("plaintext protocol", func(t *testing.T) {
		plaintextRefused(t, srv)
	})
}

// plaintextRefused speaks the NATS protocol without TLS to a TLS-only server:
// the server must not answer the PING, and must close the connection.
func plaintextRefused(t *testing.T, srv *natstest.Server) {
	addr := strings.TrimPrefix(srv.URL(), "tls://")
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO = %q, %v; want tls_required", info, err)
	}
	if _, err := conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	var answer strings.Builder
	for {
		line, err := r.ReadString('\n')
		answer.WriteString(line)
		if err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Fatalf("server kept a plaintext connection open for %v", waitTimeout)
			}
			break // closed by the server
		}
	}
	if strings.Contains(answer.String(), "PONG") {
		t.Fatalf("TLS-only server answered a plaintext client: %q", answer.String())
	}
}

// expectAccepted connects with opts and makes a round trip.
func expectAccepted(t *testing.T, url string, opts ...natsclient.Option) {
	t.Helper()
	c := newClient(t, url, securityClientOptions(opts...)...)
	ctx := natstest.Context(t, testTimeout)
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect with the right credentials: %v", err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// expectRefused connects with r.opts and checks that Connect fails at once,
// permanently, saying r.says, after one dial, and that nothing retries. It
// returns Connect's error.
func expectRefused(t *testing.T, srv *natstest.Server, url string, r refusal) error {
	t.Helper()
	before := totalConnections(t, srv)
	c := newClient(t, url, securityClientOptions(r.opts...)...)
	ctx := natstest.Context(t, testTimeout)
	events := recordEvents(t, c)
	// "At once" is checked by counting dials below, not by the clock: a
	// retry at securityWait would show as a second connection, while a
	// single TLS handshake on a loaded machine has taken seven seconds.
	err := c.Connect(ctx)
	if !errors.Is(err, natsclient.ErrPermanent) {
		t.Fatalf("Connect = %v, want an error matching ErrPermanent", err)
	}
	if !strings.Contains(err.Error(), r.says) {
		t.Fatalf("Connect error does not say %q: %v", r.says, err)
	}
	natstest.Await(t, events, waitTimeout, "back to disconnected", natstest.ToState(natsclient.StateDisconnected))

	// Nothing may happen now: no dial, no breaker cycle.
	quiet := time.NewTimer(quietWindow)
	defer quiet.Stop()
	for waiting := true; waiting; {
		select {
		case ev := <-events:
			t.Fatalf("refused client did not stay quiet: %+v", ev)
		case <-quiet.C:
			waiting = false
		}
	}
	st := c.Stats()
	if st.Connections != 0 || st.BreakerTrips != 0 || st.Breaker != natsclient.BreakerClosed ||
		st.ConsecutiveFailures > 1 || st.State != natsclient.StateDisconnected {
		t.Fatalf("after a refused Connect: %+v", st)
	}
	want := uint64(1)
	if r.noDial {
		want = 0
	}
	if dials := totalConnections(t, srv) - before; dials != want {
		t.Fatalf("server saw %d connection attempts, want exactly %d", dials, want)
	}
	if err := c.Publish(context.Background(), "after.refusal", nil); !errors.Is(err, natsclient.ErrNotConnected) {
		t.Fatalf("Publish on a refused client = %v, want ErrNotConnected", err)
	}
	return err
}

func totalConnections(t *testing.T, srv *natstest.Server) uint64 {
	t.Helper()
	return srv.Varz().TotalConnections
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert: cert, key: key}
}

func (ca testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue makes a server certificate for 127.0.0.1 and localhost.
func (ca testCA) issue(t *testing.T) tls.Certificate {
	t.Helper()
	return ca.sign(t, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	})
}

// sign makes a key and a certificate for it from tmpl, signed by ca; the
// chain holds the CA's certificate too.
func (ca testCA) sign(t *testing.T, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// A client that was connected and then meets a server that rejects its
// credentials (the server was replaced, the password rotated) keeps trying,
// since it never gives up before Close, but at the breaker's growing pace,
// never in a busy cycle; and it recovers by itself once the server takes its
// credentials again.
func TestSecurityRejectedAfterConnectBacksOff(t *testing.T) {
	withPassword := func(password string, port int) natstest.Option {
		return natstest.WithServerOptions(func(o *server.Options) {
			o.Username, o.Password = "edge", password
			if port != 0 {
				o.Port = port
			}
		})
	}
	// Embedded: the rotated servers take over the first one's own port.
	first := natstest.NewServer(t, withPassword("s3cret", 0), natstest.WithBackend(natstest.Embedded))
	port := first.NATSServer().Addr().(*net.TCPAddr).Port
	c := newClient(t, first.DirectURL(), securityClientOptions(natsclient.WithUserInfo("edge", "s3cret"))...)
	ctx := natstest.Context(t, testTimeout)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	events := recordEvents(t, c)
	first.Stop()
	natstest.Await(t, events, waitTimeout, "reconnecting", natstest.ToState(natsclient.StateReconnecting))

	rotated := natstest.NewServer(t, withPassword("rotated", port), natstest.WithBackend(natstest.Embedded))
	natstest.Await(t, events, waitTimeout, "breaker open", natstest.BreakerIs(natsclient.BreakerOpen))
	start := totalConnections(t, rotated)
	window := 50 * securityWait
	watch := time.NewTimer(window)
	for watching := true; watching; {
		select {
		case ev := <-events:
			if ev.To == natsclient.StateConnected {
				t.Fatalf("connected with rejected credentials: %+v", ev)
			}
		case <-watch.C:
			watching = false
		}
	}
	// A client retrying at its reconnect wait alone would dial about 50
	// times in the window; the breaker's doubling interval allows far fewer.
	attempts := totalConnections(t, rotated) - start
	t.Logf("%d connection attempts in %v against rejecting server; stats %+v", attempts, window, c.Stats())
	if attempts > 20 {
		t.Fatalf("%d connection attempts in %v: a busy retry cycle", attempts, window)
	}
	if attempts == 0 {
		t.Fatalf("no connection attempt in %v: the client gave up", window)
	}
	if err := c.Publish(ctx, "rejected", nil); !errors.Is(err, natsclient.ErrCircuitOpen) {
		t.Fatalf("Publish while rejected = %v, want ErrCircuitOpen", err)
	}

	rotated.Stop()
	natstest.NewServer(t, withPassword("s3cret", port), natstest.WithBackend(natstest.Embedded))
	natstest.Await(t, events, waitTimeout, "connected again", natstest.ToState(natsclient.StateConnected))
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush after recovery: %v", err)
	}
}
