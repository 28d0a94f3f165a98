package eventloop

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// TLS configuration for the std listeners (stdnet.go): a server certificate
// and an optional client CA read from PEM files, reloadable while serving.
//
// The tls.Config that ServerConfig builds asks the CertStore for the
// certificate (and, with client authentication, for the client CA pool) at
// every handshake, so a Reload is seen by the next handshake and by no
// connection already established: nothing is dropped. A Reload that cannot
// read or parse a file keeps what was loaded before.

// TLSFiles names the PEM files of a TLS listener.
type TLSFiles struct {
	// CertFile holds the server certificate, followed by the intermediates
	// to send with it.
	CertFile string
	// KeyFile holds the certificate's private key (PKCS #8, PKCS #1 or SEC 1).
	KeyFile string
	// ClientCAFile holds the CA certificates client certificates are
	// verified against (mTLS); empty when clients are not asked for one.
	ClientCAFile string
}

// ParseClientAuth maps a client authentication mode to crypto/tls's:
// "none" (or "") asks for no client certificate, "request" verifies one if
// the client sends it, "require" refuses a client without a valid one.
func ParseClientAuth(mode string) (tls.ClientAuthType, error) {
	switch strings.ToLower(strings.TrimSpace(mode)) {
	case "", "none":
		return tls.NoClientCert, nil
	case "request":
		return tls.VerifyClientCertIfGiven, nil
	case "require":
		return tls.RequireAndVerifyClientCert, nil
	}
	return tls.NoClientCert, fmt.Errorf("eventloop: client auth mode %q: want none, request or require", mode)
}

// CertStore holds a server certificate and client CA pool read from
// TLSFiles, swapped atomically by Reload. Safe for concurrent use.
type CertStore struct {
	files TLSFiles
	mu    sync.Mutex // serialises Reload
	cur   atomic.Pointer[certSet]
}

// certSet is what one load of the files produced. Immutable.
type certSet struct {
	cert      *tls.Certificate
	clientCAs *x509.CertPool // nil without TLSFiles.ClientCAFile
}

// NewCertStore reads files, or returns the error naming the file it could
// not use.
func NewCertStore(files TLSFiles) (*CertStore, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("eventloop: a TLS listener needs a certificate file and a key file")
	}
	s := &CertStore{files: files}
	set, err := loadCertSet(files)
	if err != nil {
		return nil, err
	}
	s.cur.Store(set)
	return s, nil
}

// Reload reads the files again and, if every one of them is usable, makes
// them the ones new handshakes see. On error the previous certificate and
// CA pool stay in use, and the error names the file at fault. Connections
// already established are not affected either way.
func (s *CertStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	set, err := loadCertSet(s.files)
	if err != nil {
		return err
	}
	s.cur.Store(set)
	return nil
}

// Leaf is the server certificate in use.
func (s *CertStore) Leaf() *x509.Certificate { return s.cur.Load().cert.Leaf }

// GetCertificate returns the certificate in use; it is meant for
// tls.Config.GetCertificate.
func (s *CertStore) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load().cert, nil
}

// ServerConfig returns a server tls.Config (TLS 1.2 at least) that takes
// its certificate, and its client CAs, from s at every handshake. auth
// other than tls.NoClientCert needs TLSFiles.ClientCAFile: client
// certificates are verified against it, never against the system roots.
func (s *CertStore) ServerConfig(auth tls.ClientAuthType) (*tls.Config, error) {
	switch auth {
	case tls.NoClientCert:
		return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.GetCertificate}, nil
	case tls.VerifyClientCertIfGiven, tls.RequireAndVerifyClientCert:
	default:
		return nil, fmt.Errorf("eventloop: client auth %v: want none, request or require", auth)
	}
	if s.files.ClientCAFile == "" {
		return nil, errors.New("eventloop: client certificate authentication needs a client CA file")
	}
	// The client CA pool is a field of the handshake's Config, not a
	// callback: GetConfigForClient hands out a Config per loaded set, made
	// once and kept until the next Reload.
	type perSet struct {
		set *certSet
		cfg *tls.Config
	}
	var cache atomic.Pointer[perSet]
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: auth, GetCertificate: s.GetCertificate}
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		set := s.cur.Load()
		if p := cache.Load(); p != nil && p.set == set {
			return p.cfg, nil
		}
		c := &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: auth, ClientCAs: set.clientCAs,
			Certificates: []tls.Certificate{*set.cert}}
		cache.Store(&perSet{set: set, cfg: c})
		return c, nil
	}
	return cfg, nil
}

// LoadServerTLS reads files and returns the server tls.Config for the
// client authentication mode clientAuth (see ParseClientAuth), with the
// CertStore whose Reload the new handshakes follow.
func LoadServerTLS(files TLSFiles, clientAuth string) (*tls.Config, *CertStore, error) {
	auth, err := ParseClientAuth(clientAuth)
	if err != nil {
		return nil, nil, err
	}
	if auth == tls.NoClientCert {
		files.ClientCAFile = "" // not used: not loaded either
	}
	store, err := NewCertStore(files)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := store.ServerConfig(auth)
	if err != nil {
		return nil, nil, err
	}
	return cfg, store, nil
}

// loadCertSet reads and checks every file of f; its errors name the file.
func loadCertSet(f TLSFiles) (*certSet, error) {
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return nil, fmt.Errorf("eventloop: read certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("eventloop: read key file: %w", err)
	}
	certs, err := pemCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("eventloop: certificate file %s: %w", f.CertFile, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("eventloop: certificate file %s: no CERTIFICATE PEM block", f.CertFile)
	}
	if err := checkKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("eventloop: key file %s: %w", f.KeyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("eventloop: key file %s does not go with certificate file %s: %w", f.KeyFile, f.CertFile, err)
	}
	if cert.Leaf == nil {
		cert.Leaf = certs[0]
	}
	set := &certSet{cert: &cert}
	if f.ClientCAFile != "" {
		caPEM, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("eventloop: read client CA file: %w", err)
		}
		cas, err := pemCerts(caPEM)
		if err != nil {
			return nil, fmt.Errorf("eventloop: client CA file %s: %w", f.ClientCAFile, err)
		}
		if len(cas) == 0 {
			return nil, fmt.Errorf("eventloop: client CA file %s: no CERTIFICATE PEM block", f.ClientCAFile)
		}
		set.clientCAs = x509.NewCertPool()
		for _, c := range cas {
			set.clientCAs.AddCert(c)
		}
	}
	return set, nil
}

// pemCerts parses every CERTIFICATE block of b.
func pemCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
}

// checkKeyPEM reports whether b holds a private key crypto/tls can parse.
func checkKeyPEM(b []byte) error {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return errors.New("no PRIVATE KEY PEM block")
		}
		if blk.Type != "PRIVATE KEY" && !strings.HasSuffix(blk.Type, " PRIVATE KEY") {
			continue
		}
		if _, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
			return nil
		}
		if _, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
			return nil
		}
		if _, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
			return nil
		}
		return fmt.Errorf("%s PEM block: not a PKCS #8, PKCS #1 or SEC 1 private key", blk.Type)
	}
}
