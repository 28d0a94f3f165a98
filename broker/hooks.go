package broker

import "github.com/flockmq/flockmq/codec"

// ConnectInfo describes a connecting client to the authentication hook. Its
// byte fields are valid only during the call.
type ConnectInfo struct {
	ClientID   string
	Username   []byte
	Password   []byte
	RemoteAddr string
	Version    codec.Version
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
// through CanPublish too. Called on event loops; safe for concurrent use.
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
