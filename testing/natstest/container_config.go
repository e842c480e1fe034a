package natstest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/testcontainers/testcontainers-go"
)

// WithServerOptions changes a server.Options struct, which an in-process
// server takes as it is. A container takes a configuration file instead, so
// the fields below are translated into one; any other field a test changes
// makes that server run embedded (and the test log says which fields), so
// that a test never runs against a server without the settings it asked for.

// containerConf is the configuration file given to a container, and the
// files it refers to.
type containerConf struct {
	text      string
	jetStream bool
	tls       bool
	cert      []byte // PEM, when tls
	key       []byte
	clientCA  []byte // PEM, when the server verifies client certificates
}

const confDir = "/natstest"

// files are what is copied into the container. The configuration may hold
// passwords and tokens, so it is private to the server's user like the key.
func (c containerConf) files() []testcontainers.ContainerFile {
	files := []testcontainers.ContainerFile{
		{Reader: strings.NewReader(c.text), ContainerFilePath: confDir + "/nats.conf", FileMode: 0o600},
	}
	if c.tls {
		files = append(files,
			testcontainers.ContainerFile{Reader: bytes.NewReader(c.cert), ContainerFilePath: confDir + "/cert.pem", FileMode: 0o644},
			testcontainers.ContainerFile{Reader: bytes.NewReader(c.key), ContainerFilePath: confDir + "/key.pem", FileMode: 0o600})
	}
	if c.clientCA != nil {
		files = append(files,
			testcontainers.ContainerFile{Reader: bytes.NewReader(c.clientCA), ContainerFilePath: confDir + "/client-ca.pem", FileMode: 0o644})
	}
	return files
}

// translated are the server.Options fields a container configuration
// expresses.
var translated = map[string]bool{
	"MaxPayload": true, "Username": true, "Password": true, "Authorization": true,
	"Users": true, "Nkeys": true, "TLSConfig": true, "TLS": true, "TLSTimeout": true,
	"TLSVerify": true, "TLSCaCert": true,
	"JetStream": true,
	// Only about logging and signals, which do not change what clients see.
	"NoLog": true, "NoSigs": true, "Debug": true, "Trace": true, "Logtime": true,
}

// containerConfig applies the test's server options to an empty Options and
// translates the result; unsupported lists the fields it cannot express.
func containerConfig(spec serverSpec) (conf containerConf, unsupported []string) {
	if len(spec.cfg.serverOptions) == 0 {
		return conf, nil
	}
	var opts server.Options
	for _, fn := range spec.cfg.serverOptions {
		fn(&opts)
	}
	v := reflect.ValueOf(opts)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.IsExported() && !translated[f.Name] && !v.Field(i).IsZero() {
			unsupported = append(unsupported, f.Name)
		}
	}
	conf.jetStream = opts.JetStream
	var b strings.Builder
	if opts.MaxPayload != 0 {
		fmt.Fprintf(&b, "max_payload: %d\n", opts.MaxPayload)
	}
	var auth []string
	if opts.Username != "" {
		auth = append(auth, "user: "+strconv.Quote(opts.Username), "password: "+strconv.Quote(opts.Password))
	}
	if opts.Authorization != "" {
		auth = append(auth, "token: "+strconv.Quote(opts.Authorization))
	}
	var users []string
	for _, u := range opts.Users {
		if u.Permissions != nil || u.Account != nil || u.AllowedConnectionTypes != nil {
			unsupported = append(unsupported, "Users (permissions, accounts or connection types)")
		}
		users = append(users, fmt.Sprintf("{user: %s, password: %s}", strconv.Quote(u.Username), strconv.Quote(u.Password)))
	}
	for _, u := range opts.Nkeys {
		if u.Permissions != nil || u.Account != nil || u.AllowedConnectionTypes != nil {
			unsupported = append(unsupported, "Nkeys (permissions, accounts or connection types)")
		}
		users = append(users, fmt.Sprintf("{nkey: %s}", strconv.Quote(u.Nkey)))
	}
	if len(users) > 0 {
		auth = append(auth, "users: ["+strings.Join(users, ", ")+"]")
	}
	if len(auth) > 0 {
		fmt.Fprintf(&b, "authorization {\n  %s\n}\n", strings.Join(auth, "\n  "))
	}
	if opts.TLSConfig != nil {
		cert, key, why := tlsFiles(opts.TLSConfig)
		clientCA, caWhy := clientCAFile(opts)
		switch {
		case why != "":
			unsupported = append(unsupported, "TLSConfig ("+why+")")
		case caWhy != "":
			unsupported = append(unsupported, "TLSConfig ("+caWhy+")")
		default:
			conf.tls, conf.cert, conf.key, conf.clientCA = true, cert, key, clientCA
			fmt.Fprintf(&b, "tls {\n  cert_file: %q\n  key_file: %q\n", confDir+"/cert.pem", confDir+"/key.pem")
			if clientCA != nil {
				fmt.Fprintf(&b, "  verify: true\n  ca_file: %q\n", confDir+"/client-ca.pem")
			}
			if opts.TLSTimeout != 0 {
				fmt.Fprintf(&b, "  timeout: %v\n", opts.TLSTimeout)
			}
			b.WriteString("}\n")
		}
	}
	sort.Strings(unsupported)
	conf.text = b.String()
	return conf, unsupported
}

// tlsFiles writes a server TLS configuration's certificate chain and key as
// PEM. Of the rest of a tls.Config only client verification is expressed
// (see clientCAFile); a version bound is not, as nats-server's configuration
// has no maximum version.
func tlsFiles(cfg *tls.Config) (cert, key []byte, why string) {
	if len(cfg.Certificates) != 1 {
		return nil, nil, fmt.Sprintf("%d certificates, want 1", len(cfg.Certificates))
	}
	if cfg.MaxVersion != 0 {
		return nil, nil, "MaxVersion"
	}
	c := cfg.Certificates[0]
	for _, der := range c.Certificate {
		cert = append(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, nil, "private key: " + err.Error()
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), ""
}

// clientCAFile reads the CA that client certificates are verified against.
// A tls.Config does not give its ClientCAs pool back, so a server that
// verifies clients (ClientAuth RequireAndVerifyClientCert) runs in a
// container only when the test also names the CA's PEM file in TLSCaCert and
// sets TLSVerify, as a nats-server configuration would.
func clientCAFile(opts server.Options) (pem []byte, why string) {
	switch opts.TLSConfig.ClientAuth {
	case tls.NoClientCert:
		return nil, ""
	case tls.RequireAndVerifyClientCert:
		if !opts.TLSVerify || opts.TLSCaCert == "" {
			return nil, "client certificates without TLSVerify and TLSCaCert"
		}
		data, err := os.ReadFile(opts.TLSCaCert)
		if err != nil {
			return nil, "client CA: " + err.Error()
		}
		return data, ""
	default:
		return nil, fmt.Sprintf("client authentication %v", opts.TLSConfig.ClientAuth)
	}
}
