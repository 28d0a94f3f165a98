package codec

// Decode decodes the packet at the start of b into pk and returns its length.
// v is the protocol version of the connection (0 until CONNECT, which carries
// its own). maxSize, when positive, bounds the whole packet. If b does not yet
// hold the whole packet, Decode returns 0 and ErrIncomplete (or ErrPacketTooLarge
// as soon as the length is known to exceed maxSize). For a complete packet that
// fails validation it returns the packet's length with the error.
//
// The decoded fields borrow b.
func Decode(b []byte, v Version, maxSize int, pk *Packet) (int, error) {
	h, err := ReadFixedHeader(b, maxSize)
	if err != nil {
		return 0, err
	}
	total := h.Len()
	if len(b) < total {
		return 0, ErrIncomplete
	}
	// Cap the body at the packet's end so that no view (the payload above all)
	// can be appended into the bytes of the next packet.
	return total, DecodeBody(h, b[h.HeaderLen:total:total], v, pk)
}

// DecodeBody decodes a packet body whose fixed header was read by
// ReadFixedHeader. body must be exactly h.Remaining bytes. The decoded fields
// borrow body.
func DecodeBody(h FixedHeader, body []byte, v Version, pk *Packet) error {
	pk.Type, pk.Flags = h.Type, h.Flags
	if h.Type == Connect {
		return decodeConnect(body, &pk.Connect)
	}
	if v < V31 || v > V5 {
		return ErrVersionUnknown // [MQTT-3.1.0-1]
	}
	switch h.Type {
	case Connack:
		return decodeConnack(body, v, &pk.Connack)
	case Publish:
		return decodePublish(body, h.Flags, v, &pk.Publish)
	case Puback, Pubrec, Pubrel, Pubcomp:
		return decodeAck(body, h.Type, v, &pk.Ack)
	case Subscribe:
		return decodeSubscribe(body, v, &pk.Subscribe)
	case Suback:
		return decodeSuback(body, v, kindSuback, &pk.Suback)
	case Unsubscribe:
		return decodeUnsubscribe(body, v, &pk.Unsubscribe)
	case Unsuback:
		return decodeSuback(body, v, kindUnsuback, &pk.Suback)
	case Pingreq, Pingresp:
		if len(body) != 0 {
			return ErrTrailingBytes
		}
		return nil
	case Disconnect:
		return decodeDisconnect(body, v, &pk.Disconnect)
	case Auth:
		if v != V5 {
			return ErrNotInVersion
		}
		return decodeAuth(body, &pk.Auth)
	}
	return ErrReservedType
}

// reasonSet is a 256-bit set of reason codes allowed in a packet.
type reasonSet [4]uint64

func newReasonSet(codes ...ReasonCode) reasonSet {
	var s reasonSet
	for _, c := range codes {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *reasonSet) has(c ReasonCode) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// Reason codes allowed per packet (section 2.4 and each packet's section).
var (
	connackReasons = newReasonSet(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
		0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
	pubackReasons  = newReasonSet(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
	pubrelReasons  = newReasonSet(0x00, 0x92)
	subackReasons  = newReasonSet(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
	v3SubackCodes  = newReasonSet(0x00, 0x01, 0x02, 0x80)
	unsubackReason = newReasonSet(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	disconnReasons = newReasonSet(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
		0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D,
		0x9E, 0x9F, 0xA0, 0xA1, 0xA2)
	authReasons = newReasonSet(0x00, 0x18, 0x19)
)

func decodeConnect(b []byte, c *ConnectPacket) error {
	props, willProps := c.Props, c.WillProps
	*c = ConnectPacket{Props: props, WillProps: willProps}
	c.Props.Reset()
	c.WillProps.Reset()

	name, n, err := readString(b)
	if err != nil {
		return err
	}
	c.ProtocolName = name
	b = b[n:]
	if len(b) < 1 {
		return ErrShortPacket
	}
	c.Version = Version(b[0])
	switch string(name) {
	case "MQTT":
		if c.Version == V31 {
			return ErrProtocolMismatch
		}
		if c.Version != V311 && c.Version != V5 {
			return ErrProtocolVersion // [MQTT-3.1.2-2]
		}
	case "MQIsdp":
		if c.Version == V311 || c.Version == V5 {
			return ErrProtocolMismatch
		}
		if c.Version != V31 {
			return ErrProtocolVersion
		}
	default:
		return ErrProtocolName // [MQTT-3.1.2-1]
	}
	if len(b) < 4 {
		return ErrShortPacket
	}
	flags := b[1]
	if flags&0x01 != 0 {
		return ErrConnectReserved // [MQTT-3.1.2-3]
	}
	c.CleanStart = flags&0x02 != 0
	c.WillFlag = flags&0x04 != 0
	c.WillQoS = (flags >> 3) & 0x03
	c.WillRetain = flags&0x20 != 0
	c.PasswordFlag = flags&0x40 != 0
	c.UsernameFlag = flags&0x80 != 0
	if !c.WillFlag {
		if c.WillQoS != 0 {
			return ErrWillQoSNoWill // [MQTT-3.1.2-11]
		}
		if c.WillRetain {
			return ErrWillRetainNoWill // [MQTT-3.1.2-13]
		}
	} else if c.WillQoS == 3 {
		return ErrWillQoS3 // [MQTT-3.1.2-12]
	}
	if c.Version != V5 && c.PasswordFlag && !c.UsernameFlag {
		return ErrPasswordNoUsername // 3.1.1 [MQTT-3.1.2-22]
	}
	c.KeepAlive = uint16(b[2])<<8 | uint16(b[3])
	b = b[4:]
	if c.Version == V5 {
		n, err := decodeProperties(b, kindConnect, &c.Props)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	// Payload order: client id, will properties, will topic, will payload,
	// user name, password [MQTT-3.1.3-1].
	if c.ClientID, n, err = readString(b); err != nil { // [MQTT-3.1.3-3], [MQTT-3.1.3-4]
		return err
	}
	b = b[n:]
	if c.WillFlag { // [MQTT-3.1.2-9]
		if c.Version == V5 {
			n, err := decodeProperties(b, kindWill, &c.WillProps)
			if err != nil {
				return err
			}
			b = b[n:]
		}
		if c.WillTopic, n, err = readString(b); err != nil { // [MQTT-3.1.3-11]
			return err
		}
		b = b[n:]
		if err := ValidateTopicName(c.WillTopic); err != nil {
			return err
		}
		if c.WillPayload, n, err = readBytes(b); err != nil {
			return err
		}
		b = b[n:]
	}
	if c.UsernameFlag { // [MQTT-3.1.2-17]
		if c.Username, n, err = readString(b); err != nil { // [MQTT-3.1.3-12]
			return err
		}
		b = b[n:]
	}
	if c.PasswordFlag { // [MQTT-3.1.2-19]
		if c.Password, n, err = readBytes(b); err != nil {
			return err
		}
		b = b[n:]
	}
	if len(b) != 0 {
		return ErrTrailingBytes // [MQTT-3.1.2-16], [MQTT-3.1.2-18]: nothing unflagged may follow
	}
	return nil
}

func decodeConnack(b []byte, v Version, c *ConnackPacket) error {
	props := c.Props
	*c = ConnackPacket{Props: props}
	c.Props.Reset()
	if len(b) < 2 {
		return ErrShortPacket
	}
	if v != V31 {
		if b[0]&0xFE != 0 {
			return ErrConnackReserved // [MQTT-3.2.2-1]
		}
		c.SessionPresent = b[0]&0x01 != 0
	}
	c.Reason = ReasonCode(b[1])
	if v != V5 {
		if len(b) != 2 {
			return ErrTrailingBytes
		}
		if c.Reason > V3NotAuthorized {
			return ErrReasonNotAllowed // 3.1.1 section 3.2.2.3: 6-255 reserved
		}
		return nil
	}
	if !connackReasons.has(c.Reason) {
		return ErrReasonNotAllowed // [MQTT-3.2.2-8]
	}
	if len(b) == 2 {
		// Tolerated, although [MQTT-2.2.2-1] asks for a zero Property Length.
		return nil
	}
	n, err := decodeProperties(b[2:], kindConnack, &c.Props)
	if err != nil {
		return err
	}
	if 2+n != len(b) {
		return ErrTrailingBytes
	}
	return nil
}

func decodePublish(b []byte, flags byte, v Version, p *PublishPacket) error {
	p.Dup = flags&0x08 != 0
	p.QoS = (flags >> 1) & 0x03
	p.Retain = flags&0x01 != 0
	p.PacketID = 0
	p.Payload = nil
	if p.QoS == 0 && p.Dup {
		return ErrDupQoS0 // [MQTT-3.3.1-2]
	}
	topic, n, err := readString(b) // [MQTT-3.3.2-1]
	if err != nil {
		return err
	}
	p.Topic = topic
	b = b[n:]
	if p.QoS > 0 { // [MQTT-2.2.1-2]: only QoS 1 and 2 carry a packet identifier
		id, err := readUint16(b)
		if err != nil {
			return err
		}
		if id == 0 {
			return ErrPacketIDZero // [MQTT-2.2.1-3]
		}
		p.PacketID = id
		b = b[2:]
	}
	if v == V5 {
		n, err := decodeProperties(b, kindPublish, &p.Props)
		if err != nil {
			return err
		}
		b = b[n:]
	} else {
		p.Props.Reset()
	}
	if len(topic) == 0 {
		if v != V5 {
			return ErrTopicEmpty // [MQTT-4.7.3-1]
		}
		if !p.Props.Has(PropTopicAlias) {
			return ErrTopicEmptyNoAlias
		}
	} else if err := ValidateTopicName(topic); err != nil {
		return err // [MQTT-3.3.2-2]
	}
	p.Payload = b
	return nil
}

func decodeAck(b []byte, t PacketType, v Version, a *AckPacket) error {
	props := a.Props
	*a = AckPacket{Props: props}
	a.Props.Reset()
	id, err := readUint16(b)
	if err != nil {
		return err
	}
	if id == 0 {
		return ErrPacketIDZero // [MQTT-2.2.1-3]
	}
	a.PacketID = id
	if v != V5 {
		if len(b) != 2 {
			return ErrTrailingBytes
		}
		return nil
	}
	if len(b) == 2 {
		return nil // reason 0x00 and no properties may be omitted
	}
	a.Reason = ReasonCode(b[2])
	allowed := &pubackReasons // PUBACK [MQTT-3.4.2-1], PUBREC [MQTT-3.5.2-1]
	if t == Pubrel || t == Pubcomp {
		allowed = &pubrelReasons // PUBREL [MQTT-3.6.2-1], PUBCOMP [MQTT-3.7.2-1]
	}
	if !allowed.has(a.Reason) {
		return ErrReasonNotAllowed
	}
	if len(b) == 3 {
		return nil
	}
	n, err := decodeProperties(b[3:], kindPuback, &a.Props)
	if err != nil {
		return err
	}
	if 3+n != len(b) {
		return ErrTrailingBytes
	}
	return nil
}

// decodeSubscribe checks the packet's structure but not the topic filters'
// syntax: the broker calls ValidateTopicFilter on each and answers with the
// error's Code, per filter in a v5 SUBACK or by closing the connection.
func decodeSubscribe(b []byte, v Version, s *SubscribePacket) error {
	s.Subscriptions = s.Subscriptions[:0]
	id, err := readUint16(b)
	if err != nil {
		return err
	}
	if id == 0 {
		return ErrPacketIDZero // [MQTT-2.2.1-3]
	}
	s.PacketID = id
	b = b[2:]
	if v == V5 {
		n, err := decodeProperties(b, kindSubscribe, &s.Props)
		if err != nil {
			return err
		}
		if len(s.Props.SubscriptionIDs) > 1 {
			return ErrDuplicateProperty // section 3.8.2.1.2: at most one
		}
		b = b[n:]
	} else {
		s.Props.Reset()
	}
	for len(b) > 0 {
		f, n, err := readString(b) // [MQTT-3.8.3-1]
		if err != nil {
			return err
		}
		b = b[n:]
		if len(b) < 1 {
			return ErrShortPacket
		}
		o := b[0]
		b = b[1:]
		sub := Subscription{Filter: f, QoS: o & 0x03}
		if v != V5 {
			if o&0xFC != 0 || sub.QoS == 3 {
				return ErrSubOptionsReserved // 3.1.1 [MQTT-3-8.3-4] (sic)
			}
		} else {
			if o&0xC0 != 0 {
				return ErrSubOptionsReserved // [MQTT-3.8.3-5]
			}
			if sub.QoS == 3 {
				return ErrSubscriptionQoS3 // section 3.8.3.1
			}
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = (o >> 4) & 0x03
			if sub.RetainHandling == 3 {
				return ErrRetainHandling3 // section 3.8.3.1
			}
			if sub.NoLocal && hasSharePrefix(f) {
				return ErrNoLocalShared // [MQTT-3.8.3-4]
			}
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if len(s.Subscriptions) == 0 {
		return ErrNoSubscriptions // [MQTT-3.8.3-2]
	}
	return nil
}

func hasSharePrefix(f []byte) bool {
	return len(f) >= len(SharePrefix) && string(f[:len(SharePrefix)]) == SharePrefix
}

func decodeSuback(b []byte, v Version, kind propKind, s *SubackPacket) error {
	s.Reasons = s.Reasons[:0]
	id, err := readUint16(b)
	if err != nil {
		return err
	}
	if id == 0 {
		return ErrPacketIDZero
	}
	s.PacketID = id
	b = b[2:]
	if v != V5 && kind == kindUnsuback {
		s.Props.Reset()
		if len(b) != 0 {
			return ErrTrailingBytes
		}
		return nil
	}
	allowed := &v3SubackCodes
	if v == V5 {
		n, err := decodeProperties(b, kind, &s.Props)
		if err != nil {
			return err
		}
		b = b[n:]
		allowed = &subackReasons
		if kind == kindUnsuback {
			allowed = &unsubackReason
		}
	} else {
		s.Props.Reset()
	}
	for _, c := range b {
		if !allowed.has(ReasonCode(c)) {
			return ErrReasonNotAllowed // [MQTT-3.9.3-2], [MQTT-3.11.3-2]; 3.1.1 [MQTT-3.9.3-2]
		}
		s.Reasons = append(s.Reasons, ReasonCode(c))
	}
	if len(s.Reasons) == 0 {
		return ErrShortPacket
	}
	return nil
}

func decodeUnsubscribe(b []byte, v Version, u *UnsubscribePacket) error {
	u.Filters = u.Filters[:0]
	id, err := readUint16(b)
	if err != nil {
		return err
	}
	if id == 0 {
		return ErrPacketIDZero // [MQTT-2.2.1-3]
	}
	u.PacketID = id
	b = b[2:]
	if v == V5 {
		n, err := decodeProperties(b, kindUnsubscribe, &u.Props)
		if err != nil {
			return err
		}
		b = b[n:]
	} else {
		u.Props.Reset()
	}
	for len(b) > 0 {
		f, n, err := readString(b)
		if err != nil {
			return err
		}
		b = b[n:]
		u.Filters = append(u.Filters, f)
	}
	if len(u.Filters) == 0 {
		return ErrNoSubscriptions // [MQTT-3.10.3-2]
	}
	return nil
}

func decodeDisconnect(b []byte, v Version, d *DisconnectPacket) error {
	d.Reason = Success
	d.Props.Reset()
	if v != V5 {
		if len(b) != 0 {
			return ErrTrailingBytes
		}
		return nil
	}
	return decodeReasonProps(b, kindDisconnect, &disconnReasons, &d.Reason, &d.Props)
}

func decodeAuth(b []byte, a *AuthPacket) error {
	a.Reason = Success
	a.Props.Reset()
	return decodeReasonProps(b, kindAuth, &authReasons, &a.Reason, &a.Props)
}

// decodeReasonProps reads the optional reason code and properties that make
// up the whole body of a v5 DISCONNECT or AUTH.
func decodeReasonProps(b []byte, kind propKind, allowed *reasonSet, r *ReasonCode, p *Properties) error {
	if len(b) == 0 {
		return nil
	}
	*r = ReasonCode(b[0])
	if !allowed.has(*r) {
		return ErrReasonNotAllowed // section 3.14.2.1; AUTH [MQTT-3.15.2-1]
	}
	if len(b) == 1 {
		return nil
	}
	n, err := decodeProperties(b[1:], kind, p)
	if err != nil {
		return err
	}
	if 1+n != len(b) {
		return ErrTrailingBytes
	}
	return nil
}
