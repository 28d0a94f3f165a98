package codec

// AppendMessageProperties appends the property block (length and
// properties) of an application message: the properties a PUBLISH may carry.
// It is how the broker stores a message's properties outside a packet, in a
// retained message or a will. Safe for concurrent use.
func AppendMessageProperties(dst []byte, p *Properties) []byte {
	return appendProperties(dst, p, p.size())
}

// DecodeMessageProperties decodes a block written by AppendMessageProperties
// into p and reports its length. Values borrow b. Only PUBLISH properties are
// accepted. Safe for concurrent use.
func DecodeMessageProperties(b []byte, p *Properties) (int, error) {
	if len(b) == 0 {
		p.Reset()
		return 0, nil
	}
	return decodeProperties(b, kindPublish, p)
}
