package codec

import "math/bits"

// PropID is a v5 property identifier (section 2.2.2.2).
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A

	maxPropID = 0x2A
)

// Properties holds the v5 properties of one packet. A property is present when
// Has reports it; the value fields of absent properties are zero. Binary and
// string values borrow the input when decoded. Subscription identifiers and user
// properties keep their wire order.
type Properties struct {
	present uint64 // bit i set: property i present

	PayloadFormat        byte
	MessageExpiry        uint32
	ContentType          []byte
	ResponseTopic        []byte
	CorrelationData      []byte
	SubscriptionIDs      []uint32
	SessionExpiry        uint32
	AssignedClientID     []byte
	ServerKeepAlive      uint16
	AuthMethod           []byte
	AuthData             []byte
	RequestProblemInfo   byte
	WillDelay            uint32
	RequestResponseInfo  byte
	ResponseInfo         []byte
	ServerReference      []byte
	ReasonString         []byte
	ReceiveMaximum       uint16
	TopicAliasMaximum    uint16
	TopicAlias           uint16
	MaximumQoS           byte
	RetainAvailable      byte
	User                 []UserProperty
	MaximumPacketSize    uint32
	WildcardSubAvailable byte
	SubIDAvailable       byte
	SharedSubAvailable   byte
}

// Has reports whether property id is present.
func (p *Properties) Has(id PropID) bool { return id <= maxPropID && p.present&(1<<id) != 0 }

// Set marks property id present; unknown identifiers are ignored. Set the
// value field as well; for user properties and subscription identifiers,
// appending to the slice is enough (Set is implied when the slice is non-empty
// at encoding time).
func (p *Properties) Set(id PropID) {
	if id <= maxPropID && propTable[id].typ != 0 {
		p.present |= 1 << id
	}
}

// Clear marks property id absent and zeroes its value.
func (p *Properties) Clear(id PropID) {
	if id > maxPropID {
		return
	}
	p.present &^= 1 << id
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = 0
	case PropMessageExpiry:
		p.MessageExpiry = 0
	case PropContentType:
		p.ContentType = nil
	case PropResponseTopic:
		p.ResponseTopic = nil
	case PropCorrelationData:
		p.CorrelationData = nil
	case PropSubscriptionID:
		p.SubscriptionIDs = p.SubscriptionIDs[:0]
	case PropSessionExpiry:
		p.SessionExpiry = 0
	case PropAssignedClientID:
		p.AssignedClientID = nil
	case PropServerKeepAlive:
		p.ServerKeepAlive = 0
	case PropAuthMethod:
		p.AuthMethod = nil
	case PropAuthData:
		p.AuthData = nil
	case PropRequestProblemInfo:
		p.RequestProblemInfo = 0
	case PropWillDelay:
		p.WillDelay = 0
	case PropRequestResponseInfo:
		p.RequestResponseInfo = 0
	case PropResponseInfo:
		p.ResponseInfo = nil
	case PropServerReference:
		p.ServerReference = nil
	case PropReasonString:
		p.ReasonString = nil
	case PropReceiveMaximum:
		p.ReceiveMaximum = 0
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = 0
	case PropTopicAlias:
		p.TopicAlias = 0
	case PropMaximumQoS:
		p.MaximumQoS = 0
	case PropRetainAvailable:
		p.RetainAvailable = 0
	case PropUser:
		p.User = p.User[:0]
	case PropMaximumPacketSize:
		p.MaximumPacketSize = 0
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = 0
	case PropSubIDAvailable:
		p.SubIDAvailable = 0
	case PropSharedSubAvailable:
		p.SharedSubAvailable = 0
	}
}

// Empty reports whether no property is present.
func (p *Properties) Empty() bool {
	return p.present == 0 && len(p.User) == 0 && len(p.SubscriptionIDs) == 0
}

// Reset clears every property, keeping slice capacity.
func (p *Properties) Reset() {
	user, ids := p.User[:0], p.SubscriptionIDs[:0]
	*p = Properties{User: user, SubscriptionIDs: ids}
}

// propKind is the bit of a packet kind in the allowed-properties table.
type propKind uint32

const (
	kindConnect propKind = 1 << iota
	kindConnack
	kindPublish
	kindPuback // also PUBREC, PUBREL, PUBCOMP
	kindSubscribe
	kindSuback
	kindUnsubscribe
	kindUnsuback
	kindDisconnect
	kindAuth
	kindWill
)

const kindAcks = kindPuback | kindSuback | kindUnsuback

// propType is how a property's value is encoded.
type propType byte

const (
	ptByte propType = iota + 1
	ptUint16
	ptUint32
	ptVarint
	ptString
	ptBinary
	ptPair
)

type propInfo struct {
	typ     propType
	allowed propKind
}

// propTable is indexed by property identifier; typ 0 marks an unknown id.
var propTable = [maxPropID + 1]propInfo{
	PropPayloadFormat:        {ptByte, kindPublish | kindWill},
	PropMessageExpiry:        {ptUint32, kindPublish | kindWill},
	PropContentType:          {ptString, kindPublish | kindWill},
	PropResponseTopic:        {ptString, kindPublish | kindWill},
	PropCorrelationData:      {ptBinary, kindPublish | kindWill},
	PropSubscriptionID:       {ptVarint, kindPublish | kindSubscribe},
	PropSessionExpiry:        {ptUint32, kindConnect | kindConnack | kindDisconnect},
	PropAssignedClientID:     {ptString, kindConnack},
	PropServerKeepAlive:      {ptUint16, kindConnack},
	PropAuthMethod:           {ptString, kindConnect | kindConnack | kindAuth},
	PropAuthData:             {ptBinary, kindConnect | kindConnack | kindAuth},
	PropRequestProblemInfo:   {ptByte, kindConnect},
	PropWillDelay:            {ptUint32, kindWill},
	PropRequestResponseInfo:  {ptByte, kindConnect},
	PropResponseInfo:         {ptString, kindConnack},
	PropServerReference:      {ptString, kindConnack | kindDisconnect},
	PropReasonString:         {ptString, kindConnack | kindAcks | kindDisconnect | kindAuth},
	PropReceiveMaximum:       {ptUint16, kindConnect | kindConnack},
	PropTopicAliasMaximum:    {ptUint16, kindConnect | kindConnack},
	PropTopicAlias:           {ptUint16, kindPublish},
	PropMaximumQoS:           {ptByte, kindConnack},
	PropRetainAvailable:      {ptByte, kindConnack},
	PropUser:                 {ptPair, kindConnect | kindConnack | kindPublish | kindAcks | kindSubscribe | kindUnsubscribe | kindDisconnect | kindAuth | kindWill},
	PropMaximumPacketSize:    {ptUint32, kindConnect | kindConnack},
	PropWildcardSubAvailable: {ptByte, kindConnack},
	PropSubIDAvailable:       {ptByte, kindConnack},
	PropSharedSubAvailable:   {ptByte, kindConnack},
}

// decodeProperties reads a property length and the properties that follow
// from b into p, which it resets first. It returns the bytes consumed.
func decodeProperties(b []byte, kind propKind, p *Properties) (int, error) {
	p.Reset()
	plen, n, err := readVarint(b)
	if err != nil {
		// The body is whole: a length cut short is malformed, not a reason
		// to wait for more bytes.
		return 0, mapShort(err)
	}
	end := n + plen
	if end > len(b) || end < n {
		return 0, ErrPropertiesTooLong
	}
	i := n
	for i < end {
		id := PropID(b[i])
		i++
		if id > maxPropID || propTable[id].typ == 0 {
			return 0, ErrUnknownProperty
		}
		info := propTable[id]
		if info.allowed&kind == 0 {
			return 0, ErrPropertyNotAllowed // section 2.2.2.2: an identifier not valid for the packet is malformed
		}
		bit := uint64(1) << id
		if p.present&bit != 0 && id != PropUser && !(id == PropSubscriptionID && kind == kindPublish) {
			return 0, ErrDuplicateProperty
		}
		p.present |= bit
		rest := b[i:end]
		var used int
		switch info.typ {
		case ptByte:
			if len(rest) < 1 {
				return 0, ErrPropertiesTooLong
			}
			v := rest[0]
			used = 1
			if v > 1 { // every byte property is a 0/1 flag except Maximum QoS, also 0/1
				return 0, ErrPropertyValue
			}
			setByteProp(p, id, v)
		case ptUint16:
			if len(rest) < 2 {
				return 0, ErrPropertiesTooLong
			}
			v := uint16(rest[0])<<8 | uint16(rest[1])
			used = 2
			switch id {
			case PropServerKeepAlive:
				p.ServerKeepAlive = v
			case PropReceiveMaximum:
				if v == 0 { // section 3.1.2.11.3 / 3.2.2.3.3: a value of 0 is a Protocol Error
					return 0, ErrPropertyValue
				}
				p.ReceiveMaximum = v
			case PropTopicAliasMaximum:
				p.TopicAliasMaximum = v
			case PropTopicAlias:
				if v == 0 {
					return 0, ErrTopicAliasZero // [MQTT-3.3.2-8]
				}
				p.TopicAlias = v
			}
		case ptUint32:
			if len(rest) < 4 {
				return 0, ErrPropertiesTooLong
			}
			v := uint32(rest[0])<<24 | uint32(rest[1])<<16 | uint32(rest[2])<<8 | uint32(rest[3])
			used = 4
			switch id {
			case PropMessageExpiry:
				p.MessageExpiry = v
			case PropSessionExpiry:
				p.SessionExpiry = v
			case PropWillDelay:
				p.WillDelay = v
			case PropMaximumPacketSize:
				if v == 0 { // section 3.1.2.11.4: a value of 0 is a Protocol Error
					return 0, ErrPropertyValue
				}
				p.MaximumPacketSize = v
			}
		case ptVarint:
			v, m, err := readVarint(rest)
			if err != nil {
				if err == ErrIncomplete {
					return 0, ErrPropertiesTooLong
				}
				return 0, err
			}
			used = m
			if v == 0 { // section 3.8.2.1.2: a value of 0 is a Protocol Error
				return 0, ErrSubscriptionIDZero
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(v))
		case ptString, ptBinary:
			s, m, err := readBytes(rest)
			if err != nil {
				return 0, mapShort(err)
			}
			used = m
			if info.typ == ptString {
				if err := validUTF8(s); err != nil {
					return 0, err
				}
			}
			if id == PropResponseTopic && ValidateTopicName(s) != nil {
				return 0, ErrResponseTopicInvalid // [MQTT-3.3.2-14]
			}
			setBytesProp(p, id, s)
		case ptPair:
			k, m, err := readBytes(rest)
			if err != nil {
				return 0, mapShort(err)
			}
			v, m2, err := readBytes(rest[m:])
			if err != nil {
				return 0, mapShort(err)
			}
			if err := validUTF8(k); err != nil { // [MQTT-1.5.7-1]
				return 0, err
			}
			if err := validUTF8(v); err != nil {
				return 0, err
			}
			used = m + m2
			p.User = append(p.User, UserProperty{Key: k, Value: v})
		}
		i += used
	}
	return end, nil
}

func mapShort(err error) error {
	if err == ErrIncomplete || err == ErrShortPacket {
		return ErrPropertiesTooLong
	}
	return err
}

func setByteProp(p *Properties, id PropID, v byte) {
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = v
	case PropRequestProblemInfo:
		p.RequestProblemInfo = v
	case PropRequestResponseInfo:
		p.RequestResponseInfo = v
	case PropMaximumQoS:
		p.MaximumQoS = v
	case PropRetainAvailable:
		p.RetainAvailable = v
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = v
	case PropSubIDAvailable:
		p.SubIDAvailable = v
	case PropSharedSubAvailable:
		p.SharedSubAvailable = v
	}
}

func setBytesProp(p *Properties, id PropID, v []byte) {
	switch id {
	case PropContentType:
		p.ContentType = v
	case PropResponseTopic:
		p.ResponseTopic = v
	case PropCorrelationData:
		p.CorrelationData = v
	case PropAssignedClientID:
		p.AssignedClientID = v
	case PropAuthMethod:
		p.AuthMethod = v
	case PropAuthData:
		p.AuthData = v
	case PropResponseInfo:
		p.ResponseInfo = v
	case PropServerReference:
		p.ServerReference = v
	case PropReasonString:
		p.ReasonString = v
	}
}

func byteProp(p *Properties, id PropID) byte {
	switch id {
	case PropPayloadFormat:
		return p.PayloadFormat
	case PropRequestProblemInfo:
		return p.RequestProblemInfo
	case PropRequestResponseInfo:
		return p.RequestResponseInfo
	case PropMaximumQoS:
		return p.MaximumQoS
	case PropRetainAvailable:
		return p.RetainAvailable
	case PropWildcardSubAvailable:
		return p.WildcardSubAvailable
	case PropSubIDAvailable:
		return p.SubIDAvailable
	case PropSharedSubAvailable:
		return p.SharedSubAvailable
	}
	return 0
}

func bytesProp(p *Properties, id PropID) []byte {
	switch id {
	case PropContentType:
		return p.ContentType
	case PropResponseTopic:
		return p.ResponseTopic
	case PropCorrelationData:
		return p.CorrelationData
	case PropAssignedClientID:
		return p.AssignedClientID
	case PropAuthMethod:
		return p.AuthMethod
	case PropAuthData:
		return p.AuthData
	case PropResponseInfo:
		return p.ResponseInfo
	case PropServerReference:
		return p.ServerReference
	case PropReasonString:
		return p.ReasonString
	}
	return nil
}

func intProp(p *Properties, id PropID) uint32 {
	switch id {
	case PropServerKeepAlive:
		return uint32(p.ServerKeepAlive)
	case PropReceiveMaximum:
		return uint32(p.ReceiveMaximum)
	case PropTopicAliasMaximum:
		return uint32(p.TopicAliasMaximum)
	case PropTopicAlias:
		return uint32(p.TopicAlias)
	case PropMessageExpiry:
		return p.MessageExpiry
	case PropSessionExpiry:
		return p.SessionExpiry
	case PropWillDelay:
		return p.WillDelay
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	}
	return 0
}

// encodeMask is the set of properties to encode, one bit per identifier:
// those marked present, with subscription identifiers and user properties
// decided by their lists instead. Properties are written in ascending
// identifier order, user properties last, after the fixed ones.
func (p *Properties) encodeMask() uint64 {
	m := p.present &^ (1<<PropUser | 1<<PropSubscriptionID)
	if len(p.SubscriptionIDs) > 0 {
		m |= 1 << PropSubscriptionID
	}
	return m
}

// size returns the encoded length of the properties, without the length prefix.
func (p *Properties) size() int {
	n := 0
	for m := p.encodeMask(); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		switch propTable[id].typ {
		case ptByte:
			n += 2
		case ptUint16:
			n += 3
		case ptUint32:
			n += 5
		case ptVarint:
			for _, v := range p.SubscriptionIDs {
				n += 1 + varintLen(int(v))
			}
		case ptString, ptBinary:
			n += 3 + len(bytesProp(p, id))
		}
	}
	for _, u := range p.User {
		n += 5 + len(u.Key) + len(u.Value)
	}
	return n
}

// appendProperties writes the property length (size) and the properties.
func appendProperties(dst []byte, p *Properties, size int) []byte {
	dst = appendVarint(dst, size)
	if size == 0 {
		return dst
	}
	for m := p.encodeMask(); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		switch propTable[id].typ {
		case ptByte:
			dst = append(dst, byte(id), byteProp(p, id))
		case ptUint16:
			v := intProp(p, id)
			dst = append(dst, byte(id), byte(v>>8), byte(v))
		case ptUint32:
			v := intProp(p, id)
			dst = append(dst, byte(id), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		case ptVarint:
			for _, v := range p.SubscriptionIDs {
				dst = append(dst, byte(id))
				dst = appendVarint(dst, int(v))
			}
		case ptString, ptBinary:
			dst = append(dst, byte(id))
			dst = appendBytes(dst, bytesProp(p, id))
		}
	}
	for _, u := range p.User {
		dst = append(dst, byte(PropUser))
		dst = appendBytes(dst, u.Key)
		dst = appendBytes(dst, u.Value)
	}
	return dst
}
