package codec

import "unicode/utf8"

// readVarint decodes a variable byte integer (section 1.5.5) from the start of
// b. It returns ErrIncomplete if b ends inside it and ErrVarintTooLong if a
// fifth byte would be needed.
func readVarint(b []byte) (value, n int, err error) {
	mult := 1
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, ErrIncomplete
		}
		c := b[i]
		value += int(c&0x7F) * mult
		if c&0x80 == 0 {
			return value, i + 1, nil
		}
		mult <<= 7
	}
	return 0, 0, ErrVarintTooLong // section 1.5.5: at most four bytes
}

// varintLen is the encoded length of v, which must be at most MaxRemainingLength.
func varintLen(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

// appendVarint appends v as a variable byte integer in the fewest bytes
// [MQTT-1.5.5-1].
func appendVarint(dst []byte, v int) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v > 0 {
			c |= 0x80
		}
		dst = append(dst, c)
		if v == 0 {
			return dst
		}
	}
}

// AppendVarint appends v as an MQTT variable byte integer.
func AppendVarint(dst []byte, v int) []byte { return appendVarint(dst, v) }

// readUint16 reads a big-endian two-byte integer.
func readUint16(b []byte) (uint16, error) {
	if len(b) < 2 {
		return 0, ErrShortPacket
	}
	return uint16(b[0])<<8 | uint16(b[1]), nil
}

// readBytes reads a two-byte length and that many bytes (Binary Data, or the
// bytes of a UTF-8 Encoded String). The result borrows b.
func readBytes(b []byte) ([]byte, int, error) {
	if len(b) < 2 {
		return nil, 0, ErrShortPacket
	}
	n := int(b[0])<<8 | int(b[1])
	if len(b) < 2+n {
		return nil, 0, ErrShortPacket
	}
	return b[2 : 2+n : 2+n], 2 + n, nil
}

// readString reads a UTF-8 Encoded String and validates it.
func readString(b []byte) ([]byte, int, error) {
	s, n, err := readBytes(b)
	if err != nil {
		return nil, 0, err
	}
	if err := validUTF8(s); err != nil {
		return nil, 0, err
	}
	return s, n, nil
}

// validUTF8 checks the rules every UTF-8 Encoded String obeys: well-formed
// UTF-8 with no surrogates [MQTT-1.5.4-1] and no U+0000 [MQTT-1.5.4-2].
// A BOM is kept as it is [MQTT-1.5.4-3].
func validUTF8(s []byte) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return ErrNullCharacter
		}
		if c >= utf8.RuneSelf {
			// Slow path from the first non-ASCII byte; utf8.Valid rejects
			// surrogates and overlong forms.
			rest := s[i:]
			if !utf8.Valid(rest) {
				return ErrInvalidUTF8
			}
			for _, b := range rest {
				if b == 0 {
					return ErrNullCharacter
				}
			}
			return nil
		}
	}
	return nil
}

// ValidUTF8 reports the error, if any, of s as an MQTT UTF-8 Encoded String.
func ValidUTF8(s []byte) error {
	if len(s) > MaxStringLength {
		return ErrStringTooLong
	}
	return validUTF8(s)
}

// appendBytes appends a two-byte length and b. len(b) must be at most 65535.
func appendBytes(dst, b []byte) []byte {
	dst = append(dst, byte(len(b)>>8), byte(len(b)))
	return append(dst, b...)
}

func appendUint16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }
