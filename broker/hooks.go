package broker

import (
	"crypto/x509"

	"github.com/flockmq/flockmq/codec"
)

// ConnectInfo describes a connecting client to the authentication hook. Its
// byte fields are valid only during the call (AsyncAuthenticator gets a copy
// it owns).
type ConnectInfo struct {
	ClientID   string
	Username   []byte
	Password   []byte
	RemoteAddr string
	Version    codec.Version
	// PeerCert is the client certificate the TLS handshake verified (mTLS),
	// nil on plain TCP or without one.
	PeerCert *x509.Certificate
	// Transport names the listener: "tcp", "tls", "ws" or "wss".
	Transport string
}

// CertTransport is a Transport with a verified client certificate (a TLS
// listener with client authentication).
type CertTransport interface {
	Transport
	// PeerCertificate is the verified client certificate, nil if none.
	PeerCertificate() *x509.Certificate
	// Kind names the listener: "tls", "ws" or "wss".
	Kind() string
}

// Identity is who authentication found a connection to be. The broker keeps
// it for the connection's life and hands it to an AccessAuthorizer.
type Identity struct {
	// Username, when not nil, replaces the CONNECT's user name for
	// authorization (an mTLS certificate's name, a JWT's subject).
	Username []byte
	// Anonymous marks a connection accepted without credentials.
	Anonymous bool
	// ExpiresAt (unix nanoseconds, 0 = never) closes the connection when
	// reached, as a JWT's exp: v5 clients get DISCONNECT 0x87 with a reason
	// string.
	ExpiresAt int64
	// Claims is the authenticator's own data for the authorizer (a JWT's
	// topic lists).
	Claims any
}

// AsyncAuthenticator is an Authenticator that may take its time (an HTTP
// service): the broker holds the CONNECT, and done, called once from any
// goroutine, lets it go on. info is the callee's to keep. A nil Identity
// means the CONNECT's user name, not anonymous.
type AsyncAuthenticator interface {
	Authenticator
	AuthenticateAsync(info *ConnectInfo, done func(rc codec.ReasonCode, id *Identity))
}

// Access is what an AccessAuthorizer knows of a connection (or of the
// connection that set a will).
type Access struct {
	ClientID  string
	Username  []byte
	Anonymous bool
	Claims    any
}

// AccessAuthorizer is an Authorizer that also sees the connection's
// identity, and checks each retained message a new subscription would get
// (AllowRead). Called on event loops; safe for concurrent use; must not
// block.
type AccessAuthorizer interface {
	Authorizer
	AllowPublish(a Access, topic []byte) bool
	AllowSubscribe(a Access, filter []byte) bool
	AllowRead(a Access, topic []byte) bool
}

// Authenticator decides whether a client may connect. It is called on an event
// loop and must not block; implementations must be safe for concurrent use.
type Authenticator interface {
	// Authenticate returns codec.Success to accept, or the v5 reason code to
	// refuse with (mapped to a 3.1.1 return code for older clients).
	Authenticate(info *ConnectInfo) codec.ReasonCode
}

// EnhancedAuthenticator runs v5 enhanced authentication (the AUTH packet
// exchange, section 4.12). Implementations must be safe for concurrent use
// and must not block.
type EnhancedAuthenticator interface {
	// Methods reports whether method is supported.
	Supports(method []byte) bool
	// Step consumes the client's authentication data (from CONNECT or AUTH) and
	// returns codec.Success, codec.ContinueAuthentication with data to send back,
	// or a failure reason code. state is per connection, nil on the first step.
	Step(clientID string, method, data []byte, state any) (rc codec.ReasonCode, reply []byte, newState any)
}

// Authorizer decides what a client may publish and subscribe to. Wills pass
// through CanPublish too, when they are published. Called on event loops;
// safe for concurrent use. An AccessAuthorizer is asked instead when the
// hook is one.
type Authorizer interface {
	CanPublish(clientID string, username []byte, topic []byte) bool
	CanSubscribe(clientID string, username []byte, filter []byte) bool
}

// AllowAll accepts every client and every topic: the default.
type AllowAll struct{}

// Authenticate implements Authenticator.
func (AllowAll) Authenticate(*ConnectInfo) codec.ReasonCode { return codec.Success }

// CanPublish implements Authorizer.
func (AllowAll) CanPublish(string, []byte, []byte) bool { return true }

// CanSubscribe implements Authorizer.
func (AllowAll) CanSubscribe(string, []byte, []byte) bool { return true }

// v3ConnackCode maps a v5 CONNACK reason code to the nearest 3.1.1 return code.
func v3ConnackCode(rc codec.ReasonCode) codec.ReasonCode {
	switch rc {
	case codec.Success:
		return codec.V3Accepted
	case codec.UnsupportedProtocolVersion:
		return codec.V3UnacceptableProtocolVersion
	case codec.ClientIdentifierNotValid:
		return codec.V3IdentifierRejected
	case codec.BadUserNameOrPassword:
		return codec.V3BadUsernameOrPassword
	case codec.NotAuthorized, codec.Banned, codec.BadAuthenticationMethod:
		return codec.V3NotAuthorized
	}
	return codec.V3ServerUnavailable
}
