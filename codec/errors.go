package codec

import "errors"

// ErrIncomplete means the input does not yet hold a whole packet: read more
// bytes and call again. It is not a protocol error.
var ErrIncomplete = errors.New("codec: incomplete packet")

// Decoding errors. Each is a static *Error carrying the reason code to answer
// with; the conformance id is in the reason.
var (
	ErrPacketTooLarge       = &Error{Code: PacketTooLarge, Reason: "packet exceeds the maximum packet size"}
	ErrVarintTooLong        = malformed("variable byte integer longer than four bytes (section 1.5.5)")
	ErrReservedType         = malformed("reserved packet type")
	ErrReservedFlags        = malformed("reserved fixed header flags set [MQTT-2.1.3-1]")
	ErrShortPacket          = malformed("packet shorter than its fields")
	ErrTrailingBytes        = malformed("bytes after the last field of the packet")
	ErrInvalidUTF8          = malformed("string is not well-formed UTF-8 [MQTT-1.5.4-1]")
	ErrNullCharacter        = malformed("string contains U+0000 [MQTT-1.5.4-2]")
	ErrQoS3                 = malformed("QoS 3 is not a valid QoS [MQTT-3.3.1-4]")
	ErrDupQoS0              = malformed("DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")
	ErrPacketIDZero         = malformed("packet identifier 0 where a non-zero one is required [MQTT-2.2.1-3]")
	ErrUnknownProperty      = malformed("unknown property identifier (section 2.2.2.2)")
	ErrPropertyNotAllowed   = malformed("property not allowed in this packet (section 2.2.2.2)")
	ErrDuplicateProperty    = protocol("property included more than once")
	ErrPropertyValue        = protocol("property has a value the specification forbids (section 3.1.2.11, 3.2.2.3)")
	ErrPropertiesTooLong    = malformed("property length runs past the packet")
	ErrProtocolName         = &Error{Code: UnsupportedProtocolVersion, Reason: "protocol name is not MQTT or MQIsdp [MQTT-3.1.2-1]"}
	ErrProtocolVersion      = &Error{Code: UnsupportedProtocolVersion, Reason: "unsupported protocol level [MQTT-3.1.2-2]"}
	ErrProtocolMismatch     = &Error{Code: UnsupportedProtocolVersion, Reason: "protocol name does not match protocol level"}
	ErrConnectReserved      = malformed("CONNECT reserved flag is not 0 [MQTT-3.1.2-3]")
	ErrWillQoSNoWill        = malformed("will QoS set without the will flag [MQTT-3.1.2-11]")
	ErrWillRetainNoWill     = malformed("will retain set without the will flag [MQTT-3.1.2-13]")
	ErrWillQoS3             = malformed("will QoS is 3 [MQTT-3.1.2-12]")
	ErrPasswordNoUsername   = malformed("password flag set without the user name flag [MQTT-3.1.2-22, 3.1.1]")
	ErrConnackReserved      = malformed("CONNACK acknowledge flags reserved bits set [MQTT-3.2.2-1]")
	ErrTopicEmpty           = malformed("topic is empty [MQTT-4.7.3-1]")
	ErrTopicEmptyNoAlias    = protocol("empty topic name without a topic alias (section 3.3.2.3.4)")
	ErrTopicWildcard        = &Error{Code: TopicNameInvalid, Reason: "topic name contains a wildcard [MQTT-3.3.2-2]"}
	ErrFilterInvalid        = &Error{Code: TopicFilterInvalid, Reason: "wildcard not alone in its level or '#' not last [MQTT-4.7.1-1, MQTT-4.7.1-2]"}
	ErrShareNameInvalid     = &Error{Code: TopicFilterInvalid, Reason: "shared subscription name empty or containing '/', '+' or '#' [MQTT-4.8.2-1, MQTT-4.8.2-2]"}
	ErrNoSubscriptions      = protocol("SUBSCRIBE or UNSUBSCRIBE with no topic filter [MQTT-3.8.3-2, MQTT-3.10.3-2]")
	ErrSubOptionsReserved   = malformed("subscription options reserved bits set [MQTT-3.8.3-5]; in 3.1.1 also QoS 3 [MQTT-3-8.3-4]")
	ErrRetainHandling3      = protocol("retain handling is 3 (section 3.8.3.1)")
	ErrSubscriptionQoS3     = protocol("subscription maximum QoS is 3 (section 3.8.3.1)")
	ErrNoLocalShared        = protocol("no local set on a shared subscription [MQTT-3.8.3-4]")
	ErrSubscriptionIDZero   = protocol("subscription identifier is 0 (section 3.8.2.1.2)")
	ErrTopicAliasZero       = protocol("topic alias is 0 [MQTT-3.3.2-8]")
	ErrResponseTopicInvalid = protocol("response topic is empty or contains a wildcard [MQTT-3.3.2-14]")
	ErrReasonNotAllowed     = malformed("reason code not allowed in this packet [MQTT-3.2.2-8, MQTT-3.4.2-1, MQTT-3.5.2-1, MQTT-3.6.2-1, MQTT-3.7.2-1, MQTT-3.9.3-2, MQTT-3.11.3-2, MQTT-3.15.2-1]")
	ErrNotInVersion         = malformed("packet type does not exist in this protocol version (AUTH before 5.0)")
	ErrVersionUnknown       = protocol("packet before CONNECT: protocol version unknown [MQTT-3.1.0-1]")
	ErrStringTooLong        = malformed("string longer than 65535 bytes [MQTT-4.7.3-3]")
	ErrRemainingLenTooLarge = malformed("remaining length above 268435455 (section 2.1.4)") // four varint bytes cannot exceed it; kept for callers that frame packets themselves
)

func asError(err error, target **Error) bool { return errors.As(err, target) }
