package reliability_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Mutual TLS: a server that verifies client certificates refuses a client
// with a TLS alert. Whatever the alert, it is the server's answer to this
// client's configuration, so Connect fails at once with ErrPermanent after
// exactly one dial. Under TLS 1.3 the alert arrives after the client's side
// of the handshake is done, on the first read; under TLS 1.2 during the
// handshake: both are tested.
func TestSecurityMutualTLSRefusals(t *testing.T) {
	ca := newCA(t, "natsclient mTLS CA")
	other := newCA(t, "a CA the server does not know")
	dir := t.TempDir()
	for _, version := range []struct {
		name string
		max  uint16
	}{{"TLS 1.3", tls.VersionTLS13}, {"TLS 1.2", tls.VersionTLS12}} {
		t.Run(version.name, func(t *testing.T) {
			srv := mtlsServer(t, ca, version.max)
			// The certificate is given through GetClientCertificate, so that
			// crypto/tls sends it even when the server's list of acceptable
			// CAs does not name its issuer.
			clientTLS := func(certs ...tls.Certificate) natsclient.Option {
				cfg := &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12}
				if len(certs) > 0 {
					cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
				}
				return natsclient.WithTLSConfig(cfg)
			}
			good := ca.issueClient(t, clientCert{})
			certFile, keyFile := writeCertFiles(t, dir, "good-"+version.name, good)

			t.Run("accepted", func(t *testing.T) {
				expectAccepted(t, srv.URL(), clientTLS(good))
			})
			t.Run("accepted from files", func(t *testing.T) {
				expectAccepted(t, srv.URL(), clientTLS(), natsclient.WithClientCert(certFile, keyFile))
			})
			// The alert for a missing certificate differs between the
			// versions: TLS 1.3 has certificate_required; under TLS 1.2
			// crypto/tls answers handshake_failure.
			missing := "tls: certificate required"
			if version.max == tls.VersionTLS12 {
				missing = "tls: handshake failure"
			}
			for _, c := range []struct {
				name  string
				opt   natsclient.Option
				alert string
			}{
				{"no client certificate", clientTLS(), missing},
				{"certificate from an unknown CA", clientTLS(other.issueClient(t, clientCert{})), "tls: unknown certificate authority"},
				{"certificate not for client use", clientTLS(ca.issueClient(t, clientCert{serverOnly: true})), "tls: bad certificate"},
				{"expired certificate", clientTLS(ca.issueClient(t, clientCert{expired: true})), "tls: expired certificate"},
			} {
				t.Run(c.name, func(t *testing.T) {
					err := expectRefused(t, srv, srv.URL(), refusal{
						opts: []natsclient.Option{c.opt},
						says: "the server refused the client's TLS certificate",
					})
					// Under TLS 1.3 the server's alert is often lost: it
					// closes the socket before the client's CONNECT arrives,
					// and the client's write meets a reset. When the alert
					// did arrive, it must be the one for this refusal.
					if strings.Contains(err.Error(), "remote error") && !strings.Contains(err.Error(), c.alert) {
						t.Fatalf("Connect error names another alert than %q: %v", c.alert, err)
					}
					if version.max == tls.VersionTLS12 && !strings.Contains(err.Error(), c.alert) {
						t.Fatalf("Connect error does not name the alert %q: %v", c.alert, err)
					}
				})
			}
		})
	}
}

// A client certificate or key file the client cannot use fails before any
// dial, permanently, naming the file and what is wrong.
func TestSecurityUnusableClientCertificateFiles(t *testing.T) {
	ca := newCA(t, "natsclient mTLS CA")
	srv := mtlsServer(t, ca, tls.VersionTLS13)
	dir := t.TempDir()
	certFile, keyFile := writeCertFiles(t, dir, "client", ca.issueClient(t, clientCert{}))
	garbledKey := filepath.Join(dir, "garbled-key.pem")
	writeFile(t, garbledKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not a DER private key")}))
	notPEM := filepath.Join(dir, "not-pem.pem")
	writeFile(t, notPEM, []byte("hello\n"))
	otherKeyCert, _ := writeCertFiles(t, dir, "other", ca.issueClient(t, clientCert{}))
	trust := natsclient.WithTLSConfig(&tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12})

	for _, r := range []refusal{
		{name: "key does not parse", opts: []natsclient.Option{trust, natsclient.WithClientCert(certFile, garbledKey)}, says: garbledKey + ": cannot be used with certificate " + certFile},
		{name: "key of another certificate", opts: []natsclient.Option{trust, natsclient.WithClientCert(otherKeyCert, keyFile)}, says: keyFile + ": cannot be used with certificate " + otherKeyCert},
		{name: "certificate file is not PEM", opts: []natsclient.Option{trust, natsclient.WithClientCert(notPEM, keyFile)}, says: notPEM + ": holds no PEM certificate"},
		{name: "missing key file", opts: []natsclient.Option{trust, natsclient.WithClientCert(certFile, filepath.Join(dir, "gone.pem"))}, says: "gone.pem: cannot be read"},
		// Through nats.go's own option the file name is nats.go's to give,
		// and it does not; the failure is permanent all the same.
		{name: "nats.ClientCert with a bad key", opts: []natsclient.Option{trust, natsclient.WithNATSOptions(nats.ClientCert(certFile, garbledKey))}, says: "connection option"},
	} {
		r.noDial = true
		t.Run(r.name, func(t *testing.T) { expectRefused(t, srv, srv.URL(), r) })
	}
}

// mtlsServer requires and verifies a client certificate issued by ca. The
// CA is also named as a file (TLSCaCert, TLSVerify), which is how a
// container's configuration expresses it. A container's configuration has
// no maximum TLS version, so a TLS 1.2 server runs embedded.
func mtlsServer(t *testing.T, ca testCA, maxVersion uint16) *natstest.Server {
	t.Helper()
	serverCert := ca.issue(t)
	caFile := filepath.Join(t.TempDir(), "client-ca.pem")
	writeFile(t, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
	return natstest.NewServer(t, natstest.WithServerOptions(func(o *server.Options) {
		o.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    ca.pool(),
			MinVersion:   tls.VersionTLS12,
		}
		if maxVersion != tls.VersionTLS13 {
			o.TLSConfig.MaxVersion = maxVersion
		}
		o.TLSVerify = true
		o.TLSCaCert = caFile
		o.TLSTimeout = 2
	}))
}

// clientCert says what is unusual about a client certificate.
type clientCert struct {
	serverOnly bool // extended key usage server auth only
	expired    bool
}

// issueClient makes a client certificate signed by ca.
func (ca testCA) issueClient(t *testing.T, c clientCert) tls.Certificate {
	t.Helper()
	usage := x509.ExtKeyUsageClientAuth
	if c.serverOnly {
		usage = x509.ExtKeyUsageServerAuth
	}
	notAfter := time.Now().Add(time.Hour)
	if c.expired {
		notAfter = time.Now().Add(-time.Minute)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return ca.sign(t, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "natsclient test client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	})
}

// writeCertFiles writes cert's certificate and key as PEM files.
func writeCertFiles(t *testing.T, dir, name string, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, name+"-cert.pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
