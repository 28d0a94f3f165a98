package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/broker/auth"
	"github.com/flockmq/flockmq/eventloop"
)

// security is the node's authentication and authorization, built from the
// options, and what SIGHUP reloads.
type security struct {
	log       *slog.Logger
	chain     *auth.Chain // nil: every client and topic allowed (no option set)
	passwords *auth.PasswordSource
	acl       *auth.ACLSource
	reloaders []func() error // certificates, added by the listeners
}

// newSecurity loads the password file, ACL file, JWT key and HTTP hook the
// options name. A file that does not load is a configuration error.
func newSecurity(cfg nodeConfig, log *slog.Logger) (*security, error) {
	s := &security{log: log}
	cc := auth.ChainConfig{AllowAnonymous: cfg.anonymousAllowed(), Logger: log}
	if cfg.TLSUseIdentity != "false" {
		cc.CertIdentity = cfg.TLSUseIdentity
	}
	var err error
	if cfg.PasswordFile != "" {
		if s.passwords, err = auth.NewPasswordSource(cfg.PasswordFile); err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		cc.Passwords = s.passwords
	}
	if cfg.ACLFile != "" {
		if s.acl, err = auth.NewACLSource(cfg.ACLFile); err != nil {
			return nil, fmt.Errorf("acl file: %w", err)
		}
		cc.ACL = s.acl
	}
	if cfg.JWTSecret != "" || cfg.JWTPublicKey != "" {
		var pem []byte
		if cfg.JWTPublicKey != "" {
			if pem, err = os.ReadFile(cfg.JWTPublicKey); err != nil {
				return nil, fmt.Errorf("jwt public key: %w", err)
			}
		}
		if cc.JWT, err = auth.NewJWT([]byte(cfg.JWTSecret), pem); err != nil {
			return nil, err
		}
	}
	if cfg.AuthHTTP != "" {
		if cc.HTTP, err = auth.NewHTTPHook(auth.HTTPHookConfig{URL: cfg.AuthHTTP, Timeout: cfg.AuthHTTPTimeout,
			DownIgnore: cfg.AuthHTTPDown == "ignore"}); err != nil {
			return nil, err
		}
	}
	if cc.CertIdentity != "" || cc.Passwords != nil || cc.ACL != nil || cc.JWT != nil || cc.HTTP != nil || !cc.AllowAnonymous {
		s.chain = auth.NewChain(cc)
		log.Info("authentication", "password-file", cfg.PasswordFile, "acl-file", cfg.ACLFile,
			"jwt", cc.JWT != nil, "http", cfg.AuthHTTP, "tls-identity", cc.CertIdentity, "anonymous", cc.AllowAnonymous)
	}
	if cc.AllowAnonymous && (cc.Passwords != nil || cc.JWT != nil || cc.HTTP != nil) {
		log.Warn("allow-anonymous is true with credential sources: clients without a user name connect as anonymous")
	}
	return s, nil
}

// options are the broker hooks of s.
func (s *security) options() []broker.Option {
	if s.chain == nil {
		return nil
	}
	return []broker.Option{broker.WithAuthenticator(s.chain), broker.WithAuthorizer(s.chain)}
}

// reload reads the password file, the ACL file and the certificates again
// (SIGHUP). A file that does not load keeps its previous version, and the
// error is logged; connections are not dropped.
func (s *security) reload() {
	start := time.Now()
	failed := 0
	if s.passwords != nil {
		if err := s.passwords.Reload(); err != nil {
			failed++
			s.log.Error("reload: password file kept as it was", "err", err)
		}
	}
	if s.acl != nil {
		if err := s.acl.Reload(); err != nil {
			failed++
			s.log.Error("reload: acl file kept as it was", "err", err)
		}
	}
	for _, r := range s.reloaders {
		if err := r(); err != nil {
			failed++
			s.log.Error("reload: certificate kept as it was", "err", err)
		}
	}
	s.log.Info("reloaded on SIGHUP", "failed", failed, "took", time.Since(start).Round(time.Microsecond))
}

// serveStd starts the TLS, WebSocket and secure WebSocket listeners the
// options ask for, on the standard library's network stack (nil when none
// is asked for). The certificate is reloaded on SIGHUP with the rest.
func serveStd(b *broker.Broker, cfg nodeConfig, sec *security, log *slog.Logger) (*eventloop.StdServer, error) {
	if cfg.TLSListen == "" && cfg.WSListen == "" && cfg.WSSListen == "" {
		return nil, nil
	}
	var tcfg *tls.Config
	if cfg.TLSListen != "" || cfg.WSSListen != "" {
		var store *eventloop.CertStore
		var err error
		tcfg, store, err = eventloop.LoadServerTLS(eventloop.TLSFiles{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey,
			ClientCAFile: cfg.TLSCA}, cfg.TLSClientAuth)
		if err != nil {
			return nil, err
		}
		sec.reloaders = append(sec.reloaders, store.Reload)
	}
	std := eventloop.NewStdServer(b, eventloop.StdOptions{Loops: cfg.Loops, Logger: log})
	fail := func(err error) (*eventloop.StdServer, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = std.Stop(ctx)
		return nil, err
	}
	if cfg.TLSListen != "" {
		a, err := std.ListenTLS(cfg.TLSListen, tcfg)
		if err != nil {
			return fail(err)
		}
		log.Info("flockmq serving MQTT over TLS", "listen", a.String(), "client-auth", cfg.TLSClientAuth)
	}
	if cfg.WSListen != "" {
		a, err := std.ListenWS(cfg.WSListen, cfg.WSPath, nil)
		if err != nil {
			return fail(err)
		}
		log.Info("flockmq serving MQTT over WebSocket", "listen", a.String(), "path", cfg.WSPath)
	}
	if cfg.WSSListen != "" {
		a, err := std.ListenWS(cfg.WSSListen, cfg.WSPath, tcfg)
		if err != nil {
			return fail(err)
		}
		log.Info("flockmq serving MQTT over secure WebSocket", "listen", a.String(), "path", cfg.WSPath)
	}
	return std, nil
}
