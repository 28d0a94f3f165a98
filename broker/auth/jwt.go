package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWT verifies JSON Web Tokens carried in the CONNECT's password field:
// HS256 with a shared secret, or RS256 or ES256 with a public key. The
// signature and the time claims (exp, nbf) are checked by golang-jwt; a
// token without exp is accepted and never expires. Safe for concurrent use.
type JWT struct {
	key     any
	methods []string
}

// JWTClaims is what a verified token says, for the authorizer: its
// subject, its expiry, and the topic lists of its "acl" claim (EMQX's
// format: {"acl": {"pub": [...], "sub": [...], "all": [...]}}), if any.
type JWTClaims struct {
	Subject   string
	ExpiresAt time.Time // zero when the token has no exp
	HasACL    bool
	Pub, Sub  []string // filters the client may publish to / subscribe to
}

// NewJWT returns a verifier for HS256 tokens signed with secret, or, when
// publicKeyPEM is given instead, RS256 or ES256 tokens signed with the
// matching private key.
func NewJWT(secret []byte, publicKeyPEM []byte) (*JWT, error) {
	switch {
	case len(secret) > 0 && len(publicKeyPEM) > 0:
		return nil, errors.New("jwt: give a secret (HS256) or a public key (RS256, ES256), not both")
	case len(secret) > 0:
		if len(secret) < 32 {
			return nil, fmt.Errorf("jwt: the HS256 secret is %d bytes; use at least 32", len(secret))
		}
		return &JWT{key: secret, methods: []string{"HS256"}}, nil
	case len(publicKeyPEM) > 0:
		if k, err := jwt.ParseRSAPublicKeyFromPEM(publicKeyPEM); err == nil {
			return &JWT{key: k, methods: []string{"RS256"}}, nil
		}
		if k, err := jwt.ParseECPublicKeyFromPEM(publicKeyPEM); err == nil {
			return &JWT{key: k, methods: []string{"ES256"}}, nil
		}
		return nil, errors.New("jwt: the public key is not an RSA or EC public key in PEM")
	}
	return nil, errors.New("jwt: no secret or public key")
}

// LooksLikeJWT reports whether password has the shape of a JWT (three
// base64url parts), so that a chain asks this source only for tokens.
func LooksLikeJWT(password []byte) bool {
	s := string(password)
	return strings.Count(s, ".") == 2 && len(s) > 10 && !strings.ContainsAny(s, " \t\r\n")
}

// tokenClaims is the claims set decoded from a token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Username string `json:"username,omitempty"`
	ClientID string `json:"clientid,omitempty"`
	ACL      *struct {
		Pub []string `json:"pub,omitempty"`
		Sub []string `json:"sub,omitempty"`
		All []string `json:"all,omitempty"`
	} `json:"acl,omitempty"`
}

// Verify checks token for a client: the signature, exp and nbf, and, when
// the token names them, that its username (or sub) claim is the CONNECT's
// user name and its clientid claim the client id. The error says which
// check failed.
func (j *JWT) Verify(token, username, clientID string) (*JWTClaims, error) {
	var c tokenClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return j.key, nil },
		jwt.WithValidMethods(j.methods), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("jwt: %w", err)
	}
	name := c.Username
	if name == "" {
		name = c.Subject
	}
	if name != "" && username != "" && name != username {
		return nil, fmt.Errorf("jwt: the token is for user %q, not %q", name, username)
	}
	if c.ClientID != "" && c.ClientID != clientID {
		return nil, fmt.Errorf("jwt: the token is for client %q, not %q", c.ClientID, clientID)
	}
	out := &JWTClaims{Subject: name}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	if a := c.ACL; a != nil {
		out.HasACL = true
		out.Pub = append(append(out.Pub, a.Pub...), a.All...)
		out.Sub = append(append(out.Sub, a.Sub...), a.All...)
	}
	return out, nil
}

// canPublish reports whether the token's acl lets its client publish to
// topic.
func (c *JWTClaims) canPublish(topic string) bool {
	for _, f := range c.Pub {
		if TopicMatch(f, topic) {
			return true
		}
	}
	return false
}

// canSubscribe reports whether the token's acl covers filter.
func (c *JWTClaims) canSubscribe(filter string) bool {
	for _, f := range c.Sub {
		if FilterCovers(f, filter) {
			return true
		}
	}
	return false
}

// canRead reports whether the token's acl lets its client receive topic.
func (c *JWTClaims) canRead(topic string) bool {
	for _, f := range c.Sub {
		if TopicMatch(f, topic) {
			return true
		}
	}
	return false
}
