package natsclient

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// The client's own credentials files are checked before each dial, by us
// rather than by nats.go, for two reasons. A file that cannot be used is a
// configuration error that no retry fixes, so it must fail as a
// credentialsError (permanent) naming the file and what is wrong, instead of
// surfacing from inside the handshake as an error nobody classifies. And
// nats.go takes any file without a JWT block as a bare JWT: a seed file
// given by mistake would be sent to the server whole, seed included.

// WithClientCert presents the certificate in certFile, with the private key
// in keyFile (both PEM), to a server that asks for one (mutual TLS). The
// files are read before every dial, so a renewed certificate is picked up
// on the next connection. A file that cannot be read or parsed fails the
// dial with an error matching ErrPermanent that names the file.
func WithClientCert(certFile, keyFile string) Option {
	return func(o *options) error {
		if certFile == "" || keyFile == "" {
			return invalidOption("WithClientCert", "empty certificate or key file name")
		}
		o.natsOptions = append(o.natsOptions, clientCertFromFiles(certFile, keyFile))
		return nil
	}
}

// credentialsFromFile is nats.UserCredentials(file) after checking that the
// file holds a user JWT and a user nkey seed.
func credentialsFromFile(file string) nats.Option {
	return func(o *nats.Options) error {
		if err := checkCredentialsFile(file); err != nil {
			return err
		}
		return nats.UserCredentials(file)(o)
	}
}

func checkCredentialsFile(file string) error {
	contents, err := os.ReadFile(file)
	if err != nil {
		return &credentialsError{kind: "credentials file", file: file, problem: "cannot be read", err: err}
	}
	defer wipe(contents)
	// ParseDecoratedJWT never fails: without a JWT block it returns the
	// whole file.
	token, _ := nkeys.ParseDecoratedJWT(contents)
	if !isJWT(token) {
		return &credentialsError{kind: "credentials file", file: file, problem: "holds no user JWT (is it a .creds file?)"}
	}
	kp, err := nkeys.ParseDecoratedUserNKey(contents)
	if err != nil {
		return &credentialsError{kind: "credentials file", file: file, problem: "holds no valid user nkey seed", err: err}
	}
	kp.Wipe()
	return nil
}

// isJWT reports whether token has the shape of a JWT: three base64url
// parts, of which the first two are JSON objects. The signature and the
// claims are the server's to judge.
func isJWT(token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	for _, part := range parts[:2] {
		decoded, err := base64.RawURLEncoding.DecodeString(part)
		if err != nil || !json.Valid(decoded) || !bytes.HasPrefix(bytes.TrimSpace(decoded), []byte("{")) {
			return false
		}
	}
	return true
}

// clientCertFromFiles sets the client certificate nats.go presents, loaded
// from the files before every dial.
func clientCertFromFiles(certFile, keyFile string) nats.Option {
	load := func() (tls.Certificate, error) { return loadClientCert(certFile, keyFile) }
	return func(o *nats.Options) error {
		if _, err := load(); err != nil {
			return err
		}
		if o.TLSConfig == nil {
			o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.TLSCertCB = load
		o.Secure = true
		return nil
	}
}

func loadClientCert(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, &credentialsError{kind: "client certificate", file: certFile, problem: "cannot be read", err: err}
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return tls.Certificate{}, &credentialsError{kind: "client certificate", file: certFile, problem: "holds no PEM certificate"}
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return tls.Certificate{}, &credentialsError{kind: "client certificate", file: certFile, problem: "does not parse", err: err}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, &credentialsError{kind: "client key", file: keyFile, problem: "cannot be read", err: err}
	}
	defer wipe(keyPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's errors here are fixed texts, with no key material.
		return tls.Certificate{}, &credentialsError{kind: "client key", file: keyFile,
			problem: "cannot be used with certificate " + certFile, err: err}
	}
	return cert, nil
}

// wipe overwrites a buffer that held a secret, as nats.go does with the
// credentials files it reads.
func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}
