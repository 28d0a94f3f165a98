package codec

import "strconv"

// PacketType is the MQTT control packet type, the high nibble of the first byte.
type PacketType byte

// Control packet types (section 2.1.2).
const (
	Reserved    PacketType = 0
	Connect     PacketType = 1
	Connack     PacketType = 2
	Publish     PacketType = 3
	Puback      PacketType = 4
	Pubrec      PacketType = 5
	Pubrel      PacketType = 6
	Pubcomp     PacketType = 7
	Subscribe   PacketType = 8
	Suback      PacketType = 9
	Unsubscribe PacketType = 10
	Unsuback    PacketType = 11
	Pingreq     PacketType = 12
	Pingresp    PacketType = 13
	Disconnect  PacketType = 14
	Auth        PacketType = 15
)

var packetNames = [16]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK",
	"PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK",
	"PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

// String returns the packet type's name, e.g. "PUBLISH".
func (t PacketType) String() string { return packetNames[t&0xF] }

// Version is the protocol level carried in CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

// String returns "3.1", "3.1.1", "5.0" or "level N".
func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "level " + strconv.Itoa(int(v))
}

// Limits fixed by the specification.
const (
	MaxRemainingLength = 268435455 // largest value of a four-byte variable byte integer
	MaxStringLength    = 65535
	MaxSubscriptionID  = 268435455
)

// UserProperty is one v5 User Property name/value pair. Both borrow the input
// when decoded.
type UserProperty struct {
	Key, Value []byte
}

// Packet holds one decoded packet of any type. Type says which of the per-type
// fields is valid. A Packet is meant to be reused: Decode resets the field it
// fills and keeps the capacity of its slices, so decoding into a warm Packet does
// not allocate. Decoded fields borrow the input buffer; see Clone.
type Packet struct {
	Type PacketType
	// Flags is the low nibble of the fixed header as received.
	Flags byte

	Connect     ConnectPacket
	Connack     ConnackPacket
	Publish     PublishPacket
	Ack         AckPacket // PUBACK, PUBREC, PUBREL, PUBCOMP
	Subscribe   SubscribePacket
	Suback      SubackPacket // SUBACK and UNSUBACK
	Unsubscribe UnsubscribePacket
	Disconnect  DisconnectPacket
	Auth        AuthPacket
}

// ConnectPacket is CONNECT (section 3.1).
type ConnectPacket struct {
	ProtocolName []byte
	Version      Version
	CleanStart   bool // Clean Session in 3.1 and 3.1.1
	KeepAlive    uint16
	Props        Properties
	ClientID     []byte

	WillFlag    bool
	WillQoS     byte
	WillRetain  bool
	WillProps   Properties // v5 only
	WillTopic   []byte
	WillPayload []byte

	UsernameFlag bool
	Username     []byte
	PasswordFlag bool
	Password     []byte
}

// ConnackPacket is CONNACK (section 3.2). Reason holds the 3.1.1 return code for
// older versions.
type ConnackPacket struct {
	SessionPresent bool
	Reason         ReasonCode
	Props          Properties
}

// PublishPacket is PUBLISH (section 3.3).
type PublishPacket struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    []byte
	PacketID uint16 // 0 for QoS 0
	Props    Properties
	Payload  []byte
}

// AckPacket is PUBACK, PUBREC, PUBREL or PUBCOMP (sections 3.4 to 3.7).
type AckPacket struct {
	PacketID uint16
	Reason   ReasonCode // v5; Success otherwise
	Props    Properties
}

// Subscription is one topic filter of a SUBSCRIBE with its options.
type Subscription struct {
	Filter            []byte
	QoS               byte
	NoLocal           bool // v5
	RetainAsPublished bool // v5
	RetainHandling    byte // v5: 0 send, 1 send if new, 2 do not send
}

// SubscribePacket is SUBSCRIBE (section 3.8).
type SubscribePacket struct {
	PacketID      uint16
	Props         Properties
	Subscriptions []Subscription
}

// SubackPacket is SUBACK or UNSUBACK (sections 3.9 and 3.11). For SUBACK in 3.1
// and 3.1.1, Reasons holds the return codes (granted QoS or 0x80). UNSUBACK has
// no Reasons before v5.
type SubackPacket struct {
	PacketID uint16
	Props    Properties
	Reasons  []ReasonCode
}

// UnsubscribePacket is UNSUBSCRIBE (section 3.10).
type UnsubscribePacket struct {
	PacketID uint16
	Props    Properties
	Filters  [][]byte
}

// DisconnectPacket is DISCONNECT (section 3.14). Only v5 carries a reason and
// properties.
type DisconnectPacket struct {
	Reason ReasonCode
	Props  Properties
}

// AuthPacket is AUTH (section 3.15, v5 only).
type AuthPacket struct {
	Reason ReasonCode
	Props  Properties
}
