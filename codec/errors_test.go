package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/flockmq/flockmq/codec"
)

type errCase struct {
	name    string
	v       codec.Version
	in      []byte
	maxSize int
	want    *codec.Error
}

// connect builds a CONNECT by hand: protocol name, level, flags, keep alive 0,
// then rest (properties and payload) verbatim. Only the remaining length is
// computed, and it must fit one byte.
func connect(name string, level, flags byte, rest ...byte) []byte {
	body := append([]byte{0, byte(len(name))}, name...)
	body = append(body, level, flags, 0, 0)
	body = append(body, rest...)
	if len(body) > 127 {
		panic("BUG: test CONNECT too long")
	}
	return append([]byte{0x10, byte(len(body))}, body...)
}

// decodeErrorCases has one case or more per check the decoder makes.
func decodeErrorCases() []errCase {
	return []errCase{
		// Fixed header (section 2.1).
		{"reserved packet type 0", codec.V311, []byte{0x00, 0}, 0, codec.ErrReservedType},
		{"PUBACK flags 0001", codec.V311, []byte{0x41, 2, 0, 1}, 0, codec.ErrReservedFlags},
		{"PUBREL flags 0000", codec.V5, []byte{0x60, 2, 0, 1}, 0, codec.ErrReservedFlags},
		{"SUBSCRIBE flags 0000", codec.V311, []byte{0x80, 6, 0, 1, 0, 1, '#', 0}, 0, codec.ErrReservedFlags},
		{"UNSUBSCRIBE flags 0011", codec.V311, []byte{0xA3, 5, 0, 1, 0, 1, '#'}, 0, codec.ErrReservedFlags},
		{"DISCONNECT flags 0001", codec.V5, []byte{0xE1, 0}, 0, codec.ErrReservedFlags},
		{"AUTH flags 0001", codec.V5, []byte{0xF1, 0}, 0, codec.ErrReservedFlags},
		{"five-byte remaining length", codec.V311, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, 0, codec.ErrVarintTooLong},
		{"five-byte subscription identifier", codec.V5,
			[]byte{0x30, 10, 0, 1, 't', 6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, 0, codec.ErrVarintTooLong},
		{"too large before the body arrives", codec.V311, []byte{0x30, 0xE8, 0x07}, 100, codec.ErrPacketTooLarge},
		{"CONNECT too large before the body arrives", 0, []byte{0x10, 0x80, 0x80, 0x01}, 1 << 10, codec.ErrPacketTooLarge},
		{"QoS 3 PUBLISH", codec.V311, []byte{0x36, 5, 0, 1, 't', 0, 1}, 0, codec.ErrQoS3},
		{"DUP on QoS 0", codec.V5, []byte{0x38, 4, 0, 1, 't', 0}, 0, codec.ErrDupQoS0},

		// Versions.
		{"PINGREQ before CONNECT", 0, []byte{0xC0, 0}, 0, codec.ErrVersionUnknown},
		{"PUBLISH before CONNECT", 0, []byte{0x30, 3, 0, 1, 't'}, 0, codec.ErrVersionUnknown},
		{"AUTH in 3.1.1", codec.V311, []byte{0xF0, 0}, 0, codec.ErrNotInVersion},
		{"AUTH in 3.1", codec.V31, []byte{0xF0, 0}, 0, codec.ErrNotInVersion},

		// UTF-8 Encoded Strings (section 1.5.4).
		{"topic with 0xFF", codec.V311, []byte{0x30, 4, 0, 2, 'a', 0xFF}, 0, codec.ErrInvalidUTF8},
		{"topic with overlong NUL", codec.V311, []byte{0x30, 4, 0, 2, 0xC0, 0x80}, 0, codec.ErrInvalidUTF8},
		{"topic with surrogate U+D800", codec.V311, []byte{0x30, 5, 0, 3, 0xED, 0xA0, 0x80}, 0, codec.ErrInvalidUTF8},
		{"topic with low surrogate U+DFFF", codec.V5, []byte{0x30, 6, 0, 3, 0xED, 0xBF, 0xBF, 0}, 0, codec.ErrInvalidUTF8},
		{"topic ending inside a sequence", codec.V311, []byte{0x30, 4, 0, 2, 0xE2, 0x82}, 0, codec.ErrInvalidUTF8},
		{"user property value not UTF-8", codec.V5,
			[]byte{0x30, 11, 0, 1, 't', 7, 0x26, 0, 1, 'k', 0, 1, 0xFF}, 0, codec.ErrInvalidUTF8},
		{"reason string not UTF-8", codec.V5,
			[]byte{0x40, 8, 0, 1, 0x80, 4, 0x1F, 0, 1, 0xFE}, 0, codec.ErrInvalidUTF8},
		{"topic with U+0000", codec.V311, []byte{0x30, 4, 0, 2, 'a', 0}, 0, codec.ErrNullCharacter},
		{"U+0000 after a multibyte character", codec.V311, []byte{0x30, 5, 0, 3, 0xC3, 0xA9, 0}, 0, codec.ErrNullCharacter},
		{"client id with U+0000", codec.V311, connect("MQTT", 4, 0x02, 0, 1, 0), 0, codec.ErrNullCharacter},
		{"filter with U+0000", codec.V311, []byte{0x82, 6, 0, 1, 0, 1, 0, 0}, 0, codec.ErrNullCharacter},

		// Topic names.
		{"'+' in PUBLISH topic", codec.V311, []byte{0x30, 5, 0, 3, 'a', '/', '+'}, 0, codec.ErrTopicWildcard},
		{"'#' in PUBLISH topic", codec.V5, []byte{0x30, 4, 0, 1, '#', 0}, 0, codec.ErrTopicWildcard},
		{"'#' in will topic", codec.V311, connect("MQTT", 4, 0x06, 0, 1, 'c', 0, 3, 'a', '/', '#', 0, 0), 0, codec.ErrTopicWildcard},
		{"empty topic in 3.1.1", codec.V311, []byte{0x30, 2, 0, 0}, 0, codec.ErrTopicEmpty},
		{"empty will topic", codec.V311, connect("MQTT", 4, 0x06, 0, 1, 'c', 0, 0, 0, 0), 0, codec.ErrTopicEmpty},
		{"empty topic without alias in 5.0", codec.V5, []byte{0x30, 3, 0, 0, 0}, 0, codec.ErrTopicEmptyNoAlias},
		{"response topic with '#'", codec.V5,
			[]byte{0x30, 10, 0, 1, 't', 6, 0x08, 0, 3, 'r', '/', '#'}, 0, codec.ErrResponseTopicInvalid},
		{"empty response topic in will", codec.V5,
			connect("MQTT", 5, 0x06, 0, 0, 1, 'c', 3, 0x08, 0, 0, 0, 1, 't', 0, 0), 0, codec.ErrResponseTopicInvalid},

		// CONNECT (section 3.1).
		{"protocol name MQTX", 0, connect("MQTX", 4, 0x02, 0, 1, 'c'), 0, codec.ErrProtocolName},
		{"MQTT at level 3", 0, connect("MQTT", 3, 0x02, 0, 1, 'c'), 0, codec.ErrProtocolMismatch},
		{"MQIsdp at level 4", 0, connect("MQIsdp", 4, 0x02, 0, 1, 'c'), 0, codec.ErrProtocolMismatch},
		{"MQIsdp at level 5", 0, connect("MQIsdp", 5, 0x02, 0, 0, 1, 'c'), 0, codec.ErrProtocolMismatch},
		{"MQTT at level 6", 0, connect("MQTT", 6, 0x02, 0, 1, 'c'), 0, codec.ErrProtocolVersion},
		{"MQIsdp at level 7", 0, connect("MQIsdp", 7, 0x02, 0, 1, 'c'), 0, codec.ErrProtocolVersion},
		{"CONNECT reserved flag", 0, connect("MQTT", 4, 0x03, 0, 1, 'c'), 0, codec.ErrConnectReserved},
		{"will QoS 3", 0, connect("MQTT", 4, 0x1E, 0, 1, 'c', 0, 1, 't', 0, 0), 0, codec.ErrWillQoS3},
		{"will QoS without will flag", 0, connect("MQTT", 4, 0x0A, 0, 1, 'c'), 0, codec.ErrWillQoSNoWill},
		{"will retain without will flag", 0, connect("MQTT", 5, 0x22, 0, 0, 1, 'c'), 0, codec.ErrWillRetainNoWill},
		{"will flag without will fields", 0, connect("MQTT", 4, 0x06, 0, 1, 'c'), 0, codec.ErrShortPacket},
		{"will fields without will flag", 0, connect("MQTT", 4, 0x02, 0, 1, 'c', 0, 1, 't', 0, 0), 0, codec.ErrTrailingBytes},
		{"user name without user name flag", 0, connect("MQTT", 4, 0x02, 0, 1, 'c', 0, 1, 'u'), 0, codec.ErrTrailingBytes},
		{"user name flag without user name", 0, connect("MQTT", 4, 0x82, 0, 1, 'c'), 0, codec.ErrShortPacket},
		{"3.1.1 password without user name", 0, connect("MQTT", 4, 0x42, 0, 1, 'c', 0, 1, 'p'), 0, codec.ErrPasswordNoUsername},
		{"3.1 password without user name", 0, connect("MQIsdp", 3, 0x42, 0, 1, 'c', 0, 1, 'p'), 0, codec.ErrPasswordNoUsername},
		{"CONNECT cut in the protocol name", 0, []byte{0x10, 2, 0, 4}, 0, codec.ErrShortPacket},
		{"CONNECT cut after the level", 0, []byte{0x10, 7, 0, 4, 'M', 'Q', 'T', 'T', 4}, 0, codec.ErrShortPacket},

		// Properties (section 2.2.2).
		{"duplicate message expiry", codec.V5,
			[]byte{0x30, 14, 0, 1, 't', 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2}, 0, codec.ErrDuplicateProperty},
		{"two subscription ids in SUBSCRIBE", codec.V5,
			[]byte{0x82, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, '#', 0}, 0, codec.ErrDuplicateProperty},
		{"unknown property 0x04", codec.V5, []byte{0x30, 6, 0, 1, 't', 2, 0x04, 0}, 0, codec.ErrUnknownProperty},
		{"unknown property 0x7F", codec.V5, []byte{0x30, 6, 0, 1, 't', 2, 0x7F, 0}, 0, codec.ErrUnknownProperty},
		{"session expiry in PUBLISH", codec.V5,
			[]byte{0x30, 9, 0, 1, 't', 5, 0x11, 0, 0, 0, 1}, 0, codec.ErrPropertyNotAllowed},
		{"will delay in CONNECT properties", 0,
			connect("MQTT", 5, 0x02, 5, 0x18, 0, 0, 0, 1, 0, 1, 'c'), 0, codec.ErrPropertyNotAllowed},
		{"session expiry in will properties", 0,
			connect("MQTT", 5, 0x06, 0, 0, 1, 'c', 5, 0x11, 0, 0, 0, 1, 0, 1, 't', 0, 0), 0, codec.ErrPropertyNotAllowed},
		{"reason string in PUBLISH", codec.V5,
			[]byte{0x30, 9, 0, 1, 't', 5, 0x1F, 0, 2, 'n', 'o'}, 0, codec.ErrPropertyNotAllowed},
		{"property length past the packet", codec.V5, []byte{0x30, 6, 0, 1, 't', 10, 0x01, 1}, 0, codec.ErrPropertiesTooLong},
		{"property length cut", codec.V5, []byte{0x30, 4, 0, 1, 't', 0x80}, 0, codec.ErrPropertiesTooLong},
		{"string property past the properties", codec.V5,
			[]byte{0x30, 8, 0, 1, 't', 4, 0x03, 0, 5, 'a'}, 0, codec.ErrPropertiesTooLong},
		{"four-byte property cut", codec.V5, []byte{0x30, 7, 0, 1, 't', 3, 0x02, 0, 0}, 0, codec.ErrPropertiesTooLong},
		{"byte property without value", codec.V5, []byte{0x30, 5, 0, 1, 't', 1, 0x01}, 0, codec.ErrPropertiesTooLong},
		{"varint property cut", codec.V5, []byte{0x30, 6, 0, 1, 't', 2, 0x0B, 0x80}, 0, codec.ErrPropertiesTooLong},
		{"user property value past the properties", codec.V5,
			[]byte{0x30, 11, 0, 1, 't', 7, 0x26, 0, 1, 'k', 0, 5, 'v'}, 0, codec.ErrPropertiesTooLong},
		{"two-byte property cut in CONNACK", codec.V5, []byte{0x20, 5, 0, 0, 2, 0x21, 0}, 0, codec.ErrPropertiesTooLong},
		{"receive maximum 0 in CONNECT", 0, connect("MQTT", 5, 0x02, 3, 0x21, 0, 0, 0, 1, 'c'), 0, codec.ErrPropertyValue},
		{"receive maximum 0 in CONNACK", codec.V5, []byte{0x20, 6, 0, 0, 3, 0x21, 0, 0}, 0, codec.ErrPropertyValue},
		{"maximum packet size 0", 0, connect("MQTT", 5, 0x02, 5, 0x27, 0, 0, 0, 0, 0, 1, 'c'), 0, codec.ErrPropertyValue},
		{"request problem information 2", 0, connect("MQTT", 5, 0x02, 2, 0x17, 2, 0, 1, 'c'), 0, codec.ErrPropertyValue},
		{"maximum QoS 2", codec.V5, []byte{0x20, 5, 0, 0, 2, 0x24, 2}, 0, codec.ErrPropertyValue},
		{"topic alias 0", codec.V5, []byte{0x30, 7, 0, 1, 't', 3, 0x23, 0, 0}, 0, codec.ErrTopicAliasZero},
		{"subscription id 0 in SUBSCRIBE", codec.V5,
			[]byte{0x82, 9, 0, 1, 2, 0x0B, 0, 0, 1, '#', 0}, 0, codec.ErrSubscriptionIDZero},
		{"subscription id 0 in PUBLISH", codec.V5, []byte{0x30, 6, 0, 1, 't', 2, 0x0B, 0}, 0, codec.ErrSubscriptionIDZero},

		// Packet identifiers.
		{"PUBLISH QoS 1 id 0", codec.V311, []byte{0x32, 5, 0, 1, 't', 0, 0}, 0, codec.ErrPacketIDZero},
		{"PUBLISH QoS 2 id cut", codec.V311, []byte{0x34, 4, 0, 1, 't', 0}, 0, codec.ErrShortPacket},
		{"PUBACK id 0", codec.V311, []byte{0x40, 2, 0, 0}, 0, codec.ErrPacketIDZero},
		{"PUBREL id 0", codec.V5, []byte{0x62, 2, 0, 0}, 0, codec.ErrPacketIDZero},
		{"SUBSCRIBE id 0", codec.V311, []byte{0x82, 6, 0, 0, 0, 1, '#', 0}, 0, codec.ErrPacketIDZero},
		{"UNSUBSCRIBE id 0", codec.V5, []byte{0xA2, 6, 0, 0, 0, 0, 1, '#'}, 0, codec.ErrPacketIDZero},
		{"SUBACK id 0", codec.V311, []byte{0x90, 3, 0, 0, 0}, 0, codec.ErrPacketIDZero},
		{"UNSUBACK id 0", codec.V311, []byte{0xB0, 2, 0, 0}, 0, codec.ErrPacketIDZero},

		// SUBSCRIBE and UNSUBSCRIBE (sections 3.8, 3.10).
		{"3.1.1 subscribe QoS 3", codec.V311, []byte{0x82, 6, 0, 1, 0, 1, '#', 3}, 0, codec.ErrSubOptionsReserved},
		{"3.1.1 subscribe reserved bit", codec.V311, []byte{0x82, 6, 0, 1, 0, 1, '#', 0x04}, 0, codec.ErrSubOptionsReserved},
		{"5.0 subscribe reserved bit", codec.V5, []byte{0x82, 7, 0, 1, 0, 0, 1, '#', 0x40}, 0, codec.ErrSubOptionsReserved},
		{"5.0 subscribe QoS 3", codec.V5, []byte{0x82, 7, 0, 1, 0, 0, 1, '#', 0x03}, 0, codec.ErrSubscriptionQoS3},
		{"retain handling 3", codec.V5, []byte{0x82, 7, 0, 1, 0, 0, 1, '#', 0x30}, 0, codec.ErrRetainHandling3},
		{"no local on a shared subscription", codec.V5,
			[]byte{0x82, 16, 0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a', 0x04}, 0, codec.ErrNoLocalShared},
		{"SUBSCRIBE without filters", codec.V311, []byte{0x82, 2, 0, 1}, 0, codec.ErrNoSubscriptions},
		{"5.0 SUBSCRIBE without filters", codec.V5, []byte{0x82, 3, 0, 1, 0}, 0, codec.ErrNoSubscriptions},
		{"UNSUBSCRIBE without filters", codec.V311, []byte{0xA2, 2, 0, 1}, 0, codec.ErrNoSubscriptions},
		{"SUBSCRIBE without options byte", codec.V311, []byte{0x82, 5, 0, 1, 0, 1, '#'}, 0, codec.ErrShortPacket},
		{"UNSUBSCRIBE filter cut", codec.V311, []byte{0xA2, 5, 0, 1, 0, 2, '#'}, 0, codec.ErrShortPacket},

		// Acknowledgements and reason codes.
		{"PUBACK cut", codec.V311, []byte{0x40, 1, 0}, 0, codec.ErrShortPacket},
		{"CONNACK cut", codec.V311, []byte{0x20, 1, 0}, 0, codec.ErrShortPacket},
		{"SUBACK without codes", codec.V311, []byte{0x90, 2, 0, 1}, 0, codec.ErrShortPacket},
		{"CONNACK reserved flags 3.1.1", codec.V311, []byte{0x20, 2, 0x02, 0}, 0, codec.ErrConnackReserved},
		{"CONNACK reserved flags 5.0", codec.V5, []byte{0x20, 3, 0x80, 0, 0}, 0, codec.ErrConnackReserved},
		{"CONNACK 3.1.1 return code 6", codec.V311, []byte{0x20, 2, 0, 6}, 0, codec.ErrReasonNotAllowed},
		{"CONNACK 5.0 reason 0x04", codec.V5, []byte{0x20, 3, 0, 0x04, 0}, 0, codec.ErrReasonNotAllowed},
		{"PUBACK reason 0x92", codec.V5, []byte{0x40, 3, 0, 1, 0x92}, 0, codec.ErrReasonNotAllowed},
		{"PUBREC reason 0x92", codec.V5, []byte{0x50, 3, 0, 1, 0x92}, 0, codec.ErrReasonNotAllowed},
		{"PUBREL reason 0x10", codec.V5, []byte{0x62, 3, 0, 1, 0x10}, 0, codec.ErrReasonNotAllowed},
		{"PUBCOMP reason 0x80", codec.V5, []byte{0x70, 3, 0, 1, 0x80}, 0, codec.ErrReasonNotAllowed},
		{"SUBACK 3.1.1 code 3", codec.V311, []byte{0x90, 3, 0, 1, 3}, 0, codec.ErrReasonNotAllowed},
		{"SUBACK 5.0 reason 0x11", codec.V5, []byte{0x90, 4, 0, 1, 0, 0x11}, 0, codec.ErrReasonNotAllowed},
		{"UNSUBACK 5.0 reason 0x01", codec.V5, []byte{0xB0, 4, 0, 1, 0, 0x01}, 0, codec.ErrReasonNotAllowed},
		{"DISCONNECT reason 0x18", codec.V5, []byte{0xE0, 1, 0x18}, 0, codec.ErrReasonNotAllowed},
		{"AUTH reason 0x04", codec.V5, []byte{0xF0, 1, 0x04}, 0, codec.ErrReasonNotAllowed},

		// Trailing bytes.
		{"PINGREQ with a body", codec.V311, []byte{0xC0, 1, 0}, 0, codec.ErrTrailingBytes},
		{"PINGRESP with a body", codec.V5, []byte{0xD0, 1, 0}, 0, codec.ErrTrailingBytes},
		{"3.1.1 DISCONNECT with a body", codec.V311, []byte{0xE0, 1, 0}, 0, codec.ErrTrailingBytes},
		{"3.1.1 CONNACK of 3 bytes", codec.V311, []byte{0x20, 3, 0, 0, 0}, 0, codec.ErrTrailingBytes},
		{"3.1.1 PUBACK of 3 bytes", codec.V311, []byte{0x40, 3, 0, 1, 0}, 0, codec.ErrTrailingBytes},
		{"3.1.1 UNSUBACK of 3 bytes", codec.V311, []byte{0xB0, 3, 0, 1, 0}, 0, codec.ErrTrailingBytes},
		{"5.0 PUBACK after its properties", codec.V5, []byte{0x40, 5, 0, 1, 0x10, 0, 0xFF}, 0, codec.ErrTrailingBytes},
		{"5.0 CONNACK after its properties", codec.V5, []byte{0x20, 4, 0, 0, 0, 0xFF}, 0, codec.ErrTrailingBytes},
		{"5.0 DISCONNECT after its properties", codec.V5, []byte{0xE0, 3, 0, 0, 0xFF}, 0, codec.ErrTrailingBytes},
		{"5.0 AUTH after its properties", codec.V5, []byte{0xF0, 3, 0x18, 0, 0xFF}, 0, codec.ErrTrailingBytes},
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range decodeErrorCases() {
		t.Run(c.name, func(t *testing.T) {
			var pk codec.Packet
			n, err := codec.Decode(c.in, c.v, c.maxSize, &pk)
			wantErr(t, err, c.want)
			// A packet whose length is known is consumed whole, or not at all
			// when the fixed header itself is refused.
			if n != 0 && n != len(c.in) {
				t.Fatalf("n = %d for %d bytes", n, len(c.in))
			}
			if errors.Is(err, codec.ErrIncomplete) {
				t.Fatal("a protocol error reported as incomplete")
			}
		})
	}
}

// validatorErrorCases exercise the exported validators.
func validatorErrorCases() []struct {
	name string
	err  error
	want *codec.Error
} {
	long := bytes.Repeat([]byte{'a'}, codec.MaxStringLength+1)
	_, _, _, shareErr := codec.ParseShared([]byte("$share/g+/a"))
	return []struct {
		name string
		err  error
		want *codec.Error
	}{
		{"ValidUTF8 of 65536 bytes", codec.ValidUTF8(long), codec.ErrStringTooLong},
		{"ValidUTF8 surrogate", codec.ValidUTF8([]byte{0xED, 0xB0, 0x80}), codec.ErrInvalidUTF8},
		{"ValidUTF8 NUL", codec.ValidUTF8([]byte("a\x00")), codec.ErrNullCharacter},
		{"topic name of 65536 bytes", codec.ValidateTopicName(long), codec.ErrStringTooLong},
		{"topic filter of 65536 bytes", codec.ValidateTopicFilter(long), codec.ErrStringTooLong},
		{"filter a/#/b", codec.ValidateTopicFilter([]byte("a/#/b")), codec.ErrFilterInvalid},
		{"filter a+", codec.ValidateTopicFilter([]byte("a+")), codec.ErrFilterInvalid},
		{"filter #a", codec.ValidateTopicFilter([]byte("#a")), codec.ErrFilterInvalid},
		{"share name with '+'", shareErr, codec.ErrShareNameInvalid},
		{"empty share name", codec.ValidateTopicFilter([]byte("$share//a")), codec.ErrShareNameInvalid},
		{"empty filter", codec.ValidateTopicFilter(nil), codec.ErrTopicEmpty},
	}
}

func TestValidatorErrors(t *testing.T) {
	for _, c := range validatorErrorCases() {
		t.Run(c.name, func(t *testing.T) { wantErr(t, c.err, c.want) })
	}
}

// allSentinels lists every *Error the package exports.
var allSentinels = map[string]*codec.Error{
	"ErrPacketTooLarge": codec.ErrPacketTooLarge, "ErrVarintTooLong": codec.ErrVarintTooLong,
	"ErrReservedType": codec.ErrReservedType, "ErrReservedFlags": codec.ErrReservedFlags,
	"ErrShortPacket": codec.ErrShortPacket, "ErrTrailingBytes": codec.ErrTrailingBytes,
	"ErrInvalidUTF8": codec.ErrInvalidUTF8, "ErrNullCharacter": codec.ErrNullCharacter,
	"ErrQoS3": codec.ErrQoS3, "ErrDupQoS0": codec.ErrDupQoS0, "ErrPacketIDZero": codec.ErrPacketIDZero,
	"ErrUnknownProperty": codec.ErrUnknownProperty, "ErrPropertyNotAllowed": codec.ErrPropertyNotAllowed,
	"ErrDuplicateProperty": codec.ErrDuplicateProperty, "ErrPropertyValue": codec.ErrPropertyValue,
	"ErrPropertiesTooLong": codec.ErrPropertiesTooLong, "ErrProtocolName": codec.ErrProtocolName,
	"ErrProtocolVersion": codec.ErrProtocolVersion, "ErrProtocolMismatch": codec.ErrProtocolMismatch,
	"ErrConnectReserved": codec.ErrConnectReserved, "ErrWillQoSNoWill": codec.ErrWillQoSNoWill,
	"ErrWillRetainNoWill": codec.ErrWillRetainNoWill, "ErrWillQoS3": codec.ErrWillQoS3,
	"ErrPasswordNoUsername": codec.ErrPasswordNoUsername, "ErrConnackReserved": codec.ErrConnackReserved,
	"ErrTopicEmpty": codec.ErrTopicEmpty, "ErrTopicEmptyNoAlias": codec.ErrTopicEmptyNoAlias,
	"ErrTopicWildcard": codec.ErrTopicWildcard, "ErrFilterInvalid": codec.ErrFilterInvalid,
	"ErrShareNameInvalid": codec.ErrShareNameInvalid, "ErrNoSubscriptions": codec.ErrNoSubscriptions,
	"ErrSubOptionsReserved": codec.ErrSubOptionsReserved, "ErrRetainHandling3": codec.ErrRetainHandling3,
	"ErrSubscriptionQoS3": codec.ErrSubscriptionQoS3, "ErrNoLocalShared": codec.ErrNoLocalShared,
	"ErrSubscriptionIDZero": codec.ErrSubscriptionIDZero, "ErrTopicAliasZero": codec.ErrTopicAliasZero,
	"ErrResponseTopicInvalid": codec.ErrResponseTopicInvalid, "ErrReasonNotAllowed": codec.ErrReasonNotAllowed,
	"ErrNotInVersion": codec.ErrNotInVersion, "ErrVersionUnknown": codec.ErrVersionUnknown,
	"ErrStringTooLong": codec.ErrStringTooLong, "ErrRemainingLenTooLarge": codec.ErrRemainingLenTooLarge,
}

// unreachable are sentinels no input can produce through this package's API.
var unreachable = map[string]string{
	"ErrRemainingLenTooLarge": "four variable-byte-integer bytes cannot exceed 268435455",
}

// TestEverySentinelCovered fails when a validation check has no error case.
func TestEverySentinelCovered(t *testing.T) {
	covered := map[*codec.Error]bool{}
	for _, c := range decodeErrorCases() {
		covered[c.want] = true
	}
	for _, c := range validatorErrorCases() {
		covered[c.want] = true
	}
	for name, e := range allSentinels {
		if !covered[e] && unreachable[name] == "" {
			t.Errorf("%s has no error case", name)
		}
	}
}

// TestReasonClasses checks the reason code each class of error carries, the
// one a broker answers with.
func TestReasonClasses(t *testing.T) {
	want := map[codec.ReasonCode][]*codec.Error{
		codec.MalformedPacket: {codec.ErrReservedFlags, codec.ErrVarintTooLong, codec.ErrInvalidUTF8,
			codec.ErrNullCharacter, codec.ErrQoS3, codec.ErrPacketIDZero, codec.ErrUnknownProperty,
			codec.ErrPropertyNotAllowed, codec.ErrPropertiesTooLong, codec.ErrWillQoS3, codec.ErrTrailingBytes,
			codec.ErrTopicEmpty, codec.ErrSubOptionsReserved, codec.ErrPasswordNoUsername},
		codec.ProtocolError: {codec.ErrDuplicateProperty, codec.ErrPropertyValue, codec.ErrTopicAliasZero,
			codec.ErrSubscriptionIDZero, codec.ErrRetainHandling3, codec.ErrNoLocalShared,
			codec.ErrSubscriptionQoS3, codec.ErrNoSubscriptions, codec.ErrVersionUnknown,
			codec.ErrTopicEmptyNoAlias, codec.ErrResponseTopicInvalid},
		codec.UnsupportedProtocolVersion: {codec.ErrProtocolName, codec.ErrProtocolVersion, codec.ErrProtocolMismatch},
		codec.TopicNameInvalid:           {codec.ErrTopicWildcard},
		codec.TopicFilterInvalid:         {codec.ErrFilterInvalid, codec.ErrShareNameInvalid},
		codec.PacketTooLarge:             {codec.ErrPacketTooLarge},
	}
	for code, errs := range want {
		for _, e := range errs {
			if !errors.Is(e, code) || codec.Code(e) != code {
				t.Errorf("%v: code %v, want %v", e, e.Code, code)
			}
			for other := range want {
				if other != code && errors.Is(e, other) {
					t.Errorf("%v also matches %v", e, other)
				}
			}
		}
	}
}

func TestErrorValues(t *testing.T) {
	wrapped := fmt.Errorf("conn 7: %w", codec.ErrTopicWildcard)
	if !errors.Is(wrapped, codec.TopicNameInvalid) || codec.Code(wrapped) != codec.TopicNameInvalid {
		t.Errorf("wrapped error lost its code: %v", codec.Code(wrapped))
	}
	if got := codec.Code(errors.New("other")); got != codec.UnspecifiedError {
		t.Errorf("Code of a foreign error = %v", got)
	}
	if got := codec.Code(codec.QuotaExceeded); got != codec.QuotaExceeded {
		t.Errorf("Code of a ReasonCode = %v", got)
	}
	if incomplete := fmt.Errorf("read: %w", codec.ErrIncomplete); errors.Is(incomplete, codec.MalformedPacket) {
		t.Error("ErrIncomplete matches a reason code")
	}
	if s := codec.ErrQoS3.Error(); !strings.HasPrefix(s, "codec: malformed packet: ") || !strings.Contains(s, "MQTT-3.3.1-4") {
		t.Errorf("Error() = %q", s)
	}
	if s := codec.PacketTooLarge.Error(); s != "codec: packet too large" {
		t.Errorf("ReasonCode.Error() = %q", s)
	}
	if s := codec.ReasonCode(0x03).String(); s != "reason code 0x03" {
		t.Errorf("unknown reason String() = %q", s)
	}
	if codec.GrantedQoS2.IsError() || !codec.UnspecifiedError.IsError() {
		t.Error("IsError boundary at 0x80")
	}
	for v, s := range map[codec.Version]string{codec.V31: "3.1", codec.V311: "3.1.1", codec.V5: "5.0", 0: "level 0", 12: "level 12"} {
		if v.String() != s {
			t.Errorf("Version(%d).String() = %q, want %q", v, v.String(), s)
		}
	}
	if codec.Publish.String() != "PUBLISH" || codec.Auth.String() != "AUTH" || codec.PacketType(0x13).String() != "PUBLISH" {
		t.Error("PacketType.String")
	}
}
