package bench

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSStats describes the TLS of a --tls run: what the first handshake
// negotiated, and every handshake's time (the dialer's, from the start of
// the handshake to its end; the CONNACK latency includes it).
type TLSStats struct {
	Version    string  `json:"version"`         // e.g. TLS 1.3
	Cipher     string  `json:"cipher"`          // e.g. TLS_AES_128_GCM_SHA256
	Group      string  `json:"group,omitempty"` // key exchange, e.g. X25519
	Handshakes int64   `json:"handshakes"`
	Handshake  Latency `json:"handshake_latency"`
}

// validateTLS checks the TLS flags: the TLS ones need --tls, and --tls
// needs --cafile or, to skip verification, an explicit --insecure. It
// loads the files into c.tlsConf.
func (c *Config) validateTLS() error {
	switch {
	case !c.TLS && (c.CAFile != "" || c.Insecure || c.CertFile != "" || c.KeyFile != "" || c.TLSServerName != ""):
		return fmt.Errorf("%w: --cafile, --insecure, --cert, --key and --tls-server-name need --tls", ErrConfig)
	case !c.TLS:
		c.tlsConf = nil
		return nil
	case c.CAFile == "" && !c.Insecure:
		return fmt.Errorf("%w: --tls needs --cafile FILE to verify the broker's certificate, or --insecure to skip the verification", ErrConfig)
	case c.CAFile != "" && c.Insecure:
		return fmt.Errorf("%w: --insecure skips the verification --cafile is for: give one of them", ErrConfig)
	case (c.CertFile == "") != (c.KeyFile == ""):
		return fmt.Errorf("%w: --cert and --key go together", ErrConfig)
	}
	conf, err := c.clientTLS()
	if err != nil {
		return err
	}
	c.tlsConf = conf
	return nil
}

// clientTLS builds the client TLS configuration of the flags. Without
// --tls-server-name the name verified is each host's own (stdNet.configFor).
// No session cache: every connection makes a full handshake, as a fleet of
// new devices would.
func (c *Config) clientTLS() (*tls.Config, error) {
	conf := &tls.Config{ServerName: c.TLSServerName, InsecureSkipVerify: c.Insecure} //nolint:gosec // --insecure is explicit
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --cafile: %v", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: --cafile %s: no PEM certificate in it", ErrConfig, c.CAFile)
		}
		conf.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --cert/--key: %v", ErrConfig, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
