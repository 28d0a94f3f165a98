package auth

import (
	"context"
	"crypto/x509"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// Chain is the broker's authentication and authorization as the flockmq
// binary configures it: a verified client certificate's name (with
// CertIdentity), then a JWT in the password field, then the password file,
// then the HTTP service; the first source that knows the client decides. A
// client no source knows is accepted as anonymous when it gave no user name
// and AllowAnonymous is set, and refused otherwise (0x86 with a user name,
// 0x87 without). With no credential source at all, every client is
// accepted under the user name it gave, as Mosquitto does without a
// password file (with allow-anonymous off, nobody). Authorization: a JWT's
// acl claim when its token has one, else the ACL file when there is one,
// else everything but $SYS for anonymous clients. It implements broker.AsyncAuthenticator and
// broker.AccessAuthorizer; safe for concurrent use.
type Chain struct {
	cfg ChainConfig
	log *slog.Logger

	// Counters by source, for the logs and tests.
	Allowed, Denied atomic.Uint64
}

// ChainConfig is what a Chain asks. Every field may be zero.
type ChainConfig struct {
	// CertIdentity takes the user name from a verified client certificate:
	// "cn" (its subject's common name) or "san" (its first DNS name, else
	// its first email address); "" leaves certificates out of it.
	CertIdentity   string
	JWT            *JWT
	Passwords      *PasswordSource
	HTTP           *HTTPHook
	AllowAnonymous bool
	ACL            *ACLSource
	Logger         *slog.Logger
}

// NewChain returns the chain of cfg.
func NewChain(cfg ChainConfig) *Chain {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Chain{cfg: cfg, log: cfg.Logger}
}

// sources reports whether any credential source is configured.
func (c *Chain) sources() bool {
	return c.cfg.CertIdentity != "" || c.cfg.JWT != nil || c.cfg.Passwords != nil || c.cfg.HTTP != nil
}

// Authenticate implements broker.Authenticator without the HTTP service
// (which the broker reaches through AuthenticateAsync).
func (c *Chain) Authenticate(info *broker.ConnectInfo) codec.ReasonCode {
	rc, _, _ := c.local(info)
	return rc
}

// AuthenticateAsync implements broker.AsyncAuthenticator: the local
// sources answer at once, the HTTP service from a goroutine.
func (c *Chain) AuthenticateAsync(info *broker.ConnectInfo, done func(codec.ReasonCode, *broker.Identity)) {
	rc, id, decided := c.local(info)
	if decided || c.cfg.HTTP == nil {
		c.count(rc)
		done(rc, id)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		v, err := c.cfg.HTTP.Check(ctx, HTTPRequest{ClientID: info.ClientID, Username: string(info.Username),
			Password: string(info.Password), PeerHost: host(info.RemoteAddr), Protocol: int(info.Version),
			Transport: info.Transport})
		if err != nil {
			c.log.Warn("authentication service failed", "client", info.ClientID, "err", err, "verdict", v.String())
		}
		switch v {
		case Allow:
			rc, id = codec.Success, nil
		case Deny:
			rc, id = codec.BadUserNameOrPassword, nil
		default:
			rc, id = c.fallback(info)
		}
		c.count(rc)
		done(rc, id)
	}()
}

func (c *Chain) count(rc codec.ReasonCode) {
	if rc == codec.Success {
		c.Allowed.Add(1)
	} else {
		c.Denied.Add(1)
	}
}

// local runs the sources that answer at once. decided is false when only
// the HTTP service can decide.
func (c *Chain) local(info *broker.ConnectInfo) (rc codec.ReasonCode, id *broker.Identity, decided bool) {
	if !c.sources() {
		// Nothing can check a credential: the anonymous policy decides for
		// everyone, and a user name given is kept (as in Mosquitto without
		// a password file).
		if !c.cfg.AllowAnonymous {
			rc, id := c.fallback(info)
			return rc, id, true
		}
		if len(info.Username) > 0 {
			return codec.Success, nil, true
		}
		return codec.Success, &broker.Identity{Anonymous: true}, true
	}
	if c.cfg.CertIdentity != "" && info.PeerCert != nil {
		if name := certName(info.PeerCert, c.cfg.CertIdentity); name != "" {
			return codec.Success, &broker.Identity{Username: []byte(name)}, true
		}
	}
	if j := c.cfg.JWT; j != nil && LooksLikeJWT(info.Password) {
		claims, err := j.Verify(string(info.Password), string(info.Username), info.ClientID)
		if err != nil {
			c.log.Info("connection refused: bad token", "client", info.ClientID, "remote", info.RemoteAddr, "err", err)
			return codec.BadUserNameOrPassword, nil, true
		}
		id := &broker.Identity{Claims: claims}
		if claims.Subject != "" && len(info.Username) == 0 {
			id.Username = []byte(claims.Subject)
		}
		if !claims.ExpiresAt.IsZero() {
			id.ExpiresAt = claims.ExpiresAt.UnixNano()
		}
		return codec.Success, id, true
	}
	if ps := c.cfg.Passwords; ps != nil && len(info.Username) > 0 {
		if pf := ps.Current(); pf.Has(string(info.Username)) {
			if pf.Check(info.Username, info.Password) {
				return codec.Success, nil, true
			}
			return codec.BadUserNameOrPassword, nil, true
		}
	}
	if c.cfg.HTTP != nil {
		return 0, nil, false
	}
	rc, id = c.fallback(info)
	return rc, id, true
}

// fallback decides for a client no source knew.
func (c *Chain) fallback(info *broker.ConnectInfo) (codec.ReasonCode, *broker.Identity) {
	if len(info.Username) > 0 {
		return codec.BadUserNameOrPassword, nil
	}
	if c.cfg.AllowAnonymous {
		return codec.Success, &broker.Identity{Anonymous: true}
	}
	return codec.NotAuthorized, nil
}

// certName is the user name a certificate gives under mode cn or san.
func certName(cert *x509.Certificate, mode string) string {
	if mode == "san" {
		if len(cert.DNSNames) > 0 {
			return cert.DNSNames[0]
		}
		if len(cert.EmailAddresses) > 0 {
			return cert.EmailAddresses[0]
		}
		return ""
	}
	return cert.Subject.CommonName
}

func host(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

// AllowPublish implements broker.AccessAuthorizer.
func (c *Chain) AllowPublish(a broker.Access, topic []byte) bool {
	if cl, ok := a.Claims.(*JWTClaims); ok && cl.HasACL {
		return cl.canPublish(string(topic))
	}
	if acl := c.cfg.ACL; acl != nil {
		return acl.Current().CanPublish(a.ClientID, string(a.Username), a.Anonymous, string(topic))
	}
	return true
}

// AllowSubscribe implements broker.AccessAuthorizer.
func (c *Chain) AllowSubscribe(a broker.Access, filter []byte) bool {
	if cl, ok := a.Claims.(*JWTClaims); ok && cl.HasACL {
		return cl.canSubscribe(shareless(string(filter)))
	}
	if acl := c.cfg.ACL; acl != nil {
		return acl.Current().CanSubscribe(a.ClientID, string(a.Username), a.Anonymous, string(filter))
	}
	return !(a.Anonymous && isSys(shareless(string(filter))))
}

// AllowRead implements broker.AccessAuthorizer.
func (c *Chain) AllowRead(a broker.Access, topic []byte) bool {
	if cl, ok := a.Claims.(*JWTClaims); ok && cl.HasACL {
		return cl.canRead(string(topic))
	}
	if acl := c.cfg.ACL; acl != nil {
		return acl.Current().CanRead(a.ClientID, string(a.Username), a.Anonymous, string(topic))
	}
	return !(a.Anonymous && isSys(string(topic)))
}

// isSys reports whether a topic or filter is under $SYS, which anonymous
// clients of a chain may not read unless an ACL file grants it.
func isSys(f string) bool { return f == "$SYS" || strings.HasPrefix(f, "$SYS/") }

// CanPublish implements broker.Authorizer for callers without an identity.
func (c *Chain) CanPublish(clientID string, username []byte, topic []byte) bool {
	return c.AllowPublish(broker.Access{ClientID: clientID, Username: username, Anonymous: len(username) == 0}, topic)
}

// CanSubscribe implements broker.Authorizer for callers without an
// identity.
func (c *Chain) CanSubscribe(clientID string, username []byte, filter []byte) bool {
	return c.AllowSubscribe(broker.Access{ClientID: clientID, Username: username, Anonymous: len(username) == 0}, filter)
}

// shareless strips a $share/{group}/ or $queue/ prefix.
func shareless(f string) string {
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		if _, filter, ok := strings.Cut(rest, "/"); ok {
			return filter
		}
	}
	if rest, ok := strings.CutPrefix(f, "$queue/"); ok {
		return rest
	}
	return f
}
