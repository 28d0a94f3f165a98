package codec

// FixedHeader is the first two to five bytes of every packet (section 2.1).
type FixedHeader struct {
	Type      PacketType
	Flags     byte // low nibble of the first byte
	Remaining int  // Remaining Length: the bytes after the fixed header
	HeaderLen int  // length of the fixed header itself
}

// Len is the length of the whole packet.
func (h FixedHeader) Len() int { return h.HeaderLen + h.Remaining }

// ReadFixedHeader parses the fixed header at the start of b and checks the
// flags reserved for the packet type. maxSize, when positive, bounds the whole
// packet: a larger one is refused as soon as its length is known, before its
// body is waited for. It returns ErrIncomplete when b ends inside the header.
func ReadFixedHeader(b []byte, maxSize int) (FixedHeader, error) {
	if len(b) < 2 {
		return FixedHeader{}, ErrIncomplete
	}
	h := FixedHeader{Type: PacketType(b[0] >> 4), Flags: b[0] & 0x0F}
	rem, n, err := readVarint(b[1:])
	if err != nil {
		return FixedHeader{}, err
	}
	h.Remaining, h.HeaderLen = rem, 1+n
	if err := checkFlags(h.Type, h.Flags); err != nil {
		return h, err
	}
	if maxSize > 0 && h.Len() > maxSize {
		return h, ErrPacketTooLarge
	}
	return h, nil
}

// checkFlags enforces the fixed header flag bits of section 2.1.3.
func checkFlags(t PacketType, flags byte) error {
	switch t {
	case Reserved:
		return ErrReservedType
	case Publish:
		if flags&0x06 == 0x06 {
			return ErrQoS3 // [MQTT-3.3.1-4]
		}
		return nil
	case Pubrel, Subscribe, Unsubscribe:
		if flags != 0x02 { // [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]
			return ErrReservedFlags
		}
		return nil
	}
	if flags != 0 { // [MQTT-2.1.3-1]; DISCONNECT [MQTT-3.14.1-1], AUTH [MQTT-3.15.1-1]
		return ErrReservedFlags
	}
	return nil
}

// appendFixedHeader writes the first byte and the remaining length.
func appendFixedHeader(dst []byte, first byte, remaining int) []byte {
	return appendVarint(append(dst, first), remaining)
}
