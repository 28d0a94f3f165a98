package codec

// ReasonCode is an MQTT 5.0 reason code (and, for CONNACK and SUBACK, the 3.1.1
// return codes, which share the byte). It implements error, so a reason code can
// be returned and matched with errors.Is.
type ReasonCode byte

// MQTT 5.0 reason codes (section 2.4).
const (
	Success                             ReasonCode = 0x00 // also Normal disconnection, Granted QoS 0
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWill                  ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// MQTT 3.1 and 3.1.1 CONNACK return codes (3.1.1 section 3.2.2.3) and the SUBACK
// failure code (3.1.1 section 3.9.3).
const (
	V3Accepted                    ReasonCode = 0x00
	V3UnacceptableProtocolVersion ReasonCode = 0x01
	V3IdentifierRejected          ReasonCode = 0x02
	V3ServerUnavailable           ReasonCode = 0x03
	V3BadUsernameOrPassword       ReasonCode = 0x04
	V3NotAuthorized               ReasonCode = 0x05
	V3SubackFailure               ReasonCode = 0x80
)

var reasonNames = [256]string{
	0x00: "success", 0x01: "granted QoS 1", 0x02: "granted QoS 2",
	0x04: "disconnect with will message", 0x10: "no matching subscribers",
	0x11: "no subscription existed", 0x18: "continue authentication",
	0x19: "re-authenticate", 0x80: "unspecified error", 0x81: "malformed packet",
	0x82: "protocol error", 0x83: "implementation specific error",
	0x84: "unsupported protocol version", 0x85: "client identifier not valid",
	0x86: "bad user name or password", 0x87: "not authorized",
	0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned",
	0x8B: "server shutting down", 0x8C: "bad authentication method",
	0x8D: "keep alive timeout", 0x8E: "session taken over",
	0x8F: "topic filter invalid", 0x90: "topic name invalid",
	0x91: "packet identifier in use", 0x92: "packet identifier not found",
	0x93: "receive maximum exceeded", 0x94: "topic alias invalid",
	0x95: "packet too large", 0x96: "message rate too high",
	0x97: "quota exceeded", 0x98: "administrative action",
	0x99: "payload format invalid", 0x9A: "retain not supported",
	0x9B: "QoS not supported", 0x9C: "use another server", 0x9D: "server moved",
	0x9E: "shared subscriptions not supported", 0x9F: "connection rate exceeded",
	0xA0: "maximum connect time", 0xA1: "subscription identifiers not supported",
	0xA2: "wildcard subscriptions not supported",
}

// String returns the specification's name of the reason code.
func (r ReasonCode) String() string {
	if s := reasonNames[r]; s != "" {
		return s
	}
	return "reason code 0x" + string(hexDigits[r>>4]) + string(hexDigits[r&0xF])
}

// Error implements error.
func (r ReasonCode) Error() string { return "codec: " + r.String() }

// IsError reports whether r signals a failure (0x80 and above).
func (r ReasonCode) IsError() bool { return r >= 0x80 }

const hexDigits = "0123456789abcdef"

// Error is a decoding or validation failure: the reason code to answer with and
// what was wrong, with its conformance id where the specification numbers it.
// Values are static; returning one does not allocate.
type Error struct {
	Code   ReasonCode
	Reason string
}

// Error implements error.
func (e *Error) Error() string { return "codec: " + e.Code.String() + ": " + e.Reason }

// Is reports whether target is e's reason code, so that
// errors.Is(err, codec.MalformedPacket) holds for every malformed-packet error.
func (e *Error) Is(target error) bool {
	rc, ok := target.(ReasonCode)
	return ok && rc == e.Code
}

// Code returns the reason code carried by err: the Code of an *Error, err itself
// if it is a ReasonCode, or UnspecifiedError otherwise.
func Code(err error) ReasonCode {
	switch e := err.(type) {
	case *Error:
		return e.Code
	case ReasonCode:
		return e
	}
	var ce *Error
	if asError(err, &ce) {
		return ce.Code
	}
	return UnspecifiedError
}

func malformed(reason string) *Error { return &Error{Code: MalformedPacket, Reason: reason} }
func protocol(reason string) *Error  { return &Error{Code: ProtocolError, Reason: reason} }
