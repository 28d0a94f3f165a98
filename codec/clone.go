package codec

// Clone returns a copy of p that owns all of its bytes: topic, payload and
// property values are copied into one new buffer (plus the user property and
// subscription identifier lists, when present). Use it for what must outlive
// the input buffer: retained and queued messages, inflight windows, raft
// proposals.
func (p *PublishPacket) Clone() PublishPacket {
	n := len(p.Topic) + len(p.Payload) + p.Props.bytesLen()
	buf := make([]byte, 0, n)
	c := *p
	c.Topic, buf = own(buf, p.Topic)
	c.Payload, buf = own(buf, p.Payload)
	c.Props, _ = p.Props.cloneInto(buf)
	return c
}

// Clone returns a deep copy of p, sharing no memory with it.
func (p *Properties) Clone() Properties {
	c, _ := p.cloneInto(make([]byte, 0, p.bytesLen()))
	return c
}

// Clone returns a deep copy of pk for protocol version v: the packet is encoded
// into a new buffer and decoded from it, so the copy's views point into memory
// of its own. It fails only if pk does not encode to a valid packet.
func (pk *Packet) Clone(v Version) (*Packet, error) {
	if pk.Type == Connect {
		v = pk.Connect.Version
	}
	buf := Append(nil, pk, v)
	c := new(Packet)
	if _, err := Decode(buf, v, 0, c); err != nil {
		return nil, err
	}
	return c, nil
}

// own copies b into the spare capacity of buf and returns the copy and buf
// extended by it. A nil b stays nil.
func own(buf, b []byte) ([]byte, []byte) {
	if b == nil {
		return nil, buf
	}
	start := len(buf)
	buf = append(buf, b...)
	return buf[start:len(buf):len(buf)], buf
}

// bytesLen is the number of bytes the properties' binary and string values hold.
func (p *Properties) bytesLen() int {
	n := len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData) +
		len(p.AssignedClientID) + len(p.AuthMethod) + len(p.AuthData) +
		len(p.ResponseInfo) + len(p.ServerReference) + len(p.ReasonString)
	for _, u := range p.User {
		n += len(u.Key) + len(u.Value)
	}
	return n
}

// cloneInto copies p, moving its byte values into buf's spare capacity.
func (p *Properties) cloneInto(buf []byte) (Properties, []byte) {
	c := *p
	c.ContentType, buf = own(buf, p.ContentType)
	c.ResponseTopic, buf = own(buf, p.ResponseTopic)
	c.CorrelationData, buf = own(buf, p.CorrelationData)
	c.AssignedClientID, buf = own(buf, p.AssignedClientID)
	c.AuthMethod, buf = own(buf, p.AuthMethod)
	c.AuthData, buf = own(buf, p.AuthData)
	c.ResponseInfo, buf = own(buf, p.ResponseInfo)
	c.ServerReference, buf = own(buf, p.ServerReference)
	c.ReasonString, buf = own(buf, p.ReasonString)
	c.SubscriptionIDs = nil
	if len(p.SubscriptionIDs) > 0 {
		c.SubscriptionIDs = append([]uint32(nil), p.SubscriptionIDs...)
	}
	c.User = nil
	if len(p.User) > 0 {
		c.User = make([]UserProperty, len(p.User))
		for i, u := range p.User {
			c.User[i].Key, buf = own(buf, u.Key)
			c.User[i].Value, buf = own(buf, u.Value)
		}
	}
	return c, buf
}
