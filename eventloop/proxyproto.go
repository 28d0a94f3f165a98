package eventloop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): a load
// balancer that terminates TLS in front of the broker (HAProxy, nginx
// stream, AWS NLB) opens each connection with a header naming the client's
// address, and the broker reports that address (Transport.RemoteAddr: the
// authenticator, logs, the admin views) instead of the balancer's.
//
// With Options.ProxyProtocol every connection must begin with a header
// ("the receiver MUST NOT try to guess whether the protocol header is
// present", section 2): one that does not, or whose header is malformed,
// is closed, logged (once a second at most) and counted (ProxyRejected).
// The header is taken from gnet's buffer before anything reaches the
// broker; a header that has not arrived whole waits there, at most
// proxyV1Max or proxyV2Max bytes, since a prefix that no header can begin
// with is refused at once. The wait is bounded by the broker's
// ConnectTimeout: the client is opened, and its timer armed, when the
// connection is (section 2 asks for "at least 3 seconds").
//
// The state lives in the connection's extension (connExt): hdr while the
// header is awaited, src once it named a source address. Connections
// proxied for a client keep their extension for their whole life;
// LOCAL (the balancer's health checks) and UNKNOWN headers name no address,
// and those connections report their own peer, as do all connections when
// the option is off, at no cost.

const (
	// proxyV1Max is the longest version 1 line, CRLF included (section 2.1).
	proxyV1Max = 107
	// proxyV2Max bounds a version 2 header, TLVs included: 16 bytes, the
	// largest address block (216, AF_UNIX) and room for TLVs. The length
	// field would allow 65,551.
	proxyV2Max = 4096

	proxyV1Prefix = "PROXY "
	proxyV2Sig    = "\r\n\r\n\x00\r\nQUIT\n"

	pp2CmdLocal  = 0x0
	pp2CmdProxy  = 0x1
	pp2FamUnspec = 0x0
	pp2FamInet   = 0x1
	pp2FamInet6  = 0x2
	pp2FamUnix   = 0x3
	pp2ProtoTCP  = 0x1 // STREAM
	pp2TypeCRC32 = 0x03
)

var (
	// errProxyIncomplete: the bytes are the start of a header, not yet all
	// of it. More may make it whole.
	errProxyIncomplete = errors.New("eventloop: PROXY header incomplete")
	// errProxyHeader: the bytes do not begin with a PROXY protocol header
	// or begin with a malformed one. More bytes cannot fix it.
	errProxyHeader = errors.New("eventloop: bad PROXY header")
)

// parseProxyHeader reads the PROXY protocol header at the start of b (v1 or
// v2) and returns its length and the source address it names, nil for a
// LOCAL or UNKNOWN header, or for a family other than TCP over IPv4 or IPv6
// (the connection's own address applies then). The error is
// errProxyIncomplete while b is a proper prefix of a header, and wraps
// errProxyHeader when b cannot begin with one.
func parseProxyHeader(b []byte) (n int, src net.Addr, err error) {
	n, ap, err := readProxyHeader(b)
	if err != nil || !ap.IsValid() {
		return n, nil, err
	}
	return n, net.TCPAddrFromAddrPort(ap), nil
}

// readProxyHeader is parseProxyHeader without an allocation for the
// address: src is the zero AddrPort where parseProxyHeader returns nil.
func readProxyHeader(b []byte) (n int, src netip.AddrPort, err error) {
	switch {
	case len(b) == 0:
		return 0, src, errProxyIncomplete
	case b[0] == proxyV1Prefix[0]:
		return readProxyV1(b)
	case b[0] == proxyV2Sig[0]:
		return readProxyV2(b)
	}
	return 0, src, badProxy("not a PROXY protocol header")
}

// badProxy is a malformed-header error.
func badProxy(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errProxyHeader}, a...)...)
}

// readProxyV1 reads a version 1 (text) header (section 2.1).
func readProxyV1(b []byte) (int, netip.AddrPort, error) {
	var none netip.AddrPort
	if k := min(len(b), len(proxyV1Prefix)); string(b[:k]) != proxyV1Prefix[:k] {
		return 0, none, badProxy("v1: no \"PROXY \" signature")
	}
	// "The receiver must wait for the CRLF sequence before starting to
	// decode the addresses", which must come within 107 bytes; a lone CR or
	// LF does not end the line.
	end := -1
	for i, c := range b[:min(len(b), proxyV1Max)] {
		if c == '\n' {
			return 0, none, badProxy("v1: LF without CR")
		}
		if c == '\r' {
			end = i
			break
		}
	}
	switch {
	case end < 0 && len(b) >= proxyV1Max, end+2 > proxyV1Max:
		return 0, none, badProxy("v1: no CRLF within %d bytes", proxyV1Max)
	case end < 0 || end+1 == len(b):
		return 0, none, errProxyIncomplete
	case b[end+1] != '\n':
		return 0, none, badProxy("v1: CR without LF")
	}
	n := end + 2
	line := b[len(proxyV1Prefix):end]
	proto, rest, _ := cutSpace(line)
	var want6 bool
	switch string(proto) {
	case "UNKNOWN":
		// "the receiver must ignore anything presented before the CRLF"
		// and use the connection's own addresses.
		return n, none, nil
	case "TCP4":
	case "TCP6":
		want6 = true
	default:
		return 0, none, badProxy("v1: protocol %q", proto)
	}
	// Exactly one space between fields: an empty field is malformed.
	var f [4][]byte
	for i := range f {
		var ok bool
		f[i], rest, ok = cutSpace(rest)
		if len(f[i]) == 0 || ok != (i < len(f)-1) {
			return 0, none, badProxy("v1: %s line is not \"src dst sport dport\"", proto)
		}
	}
	src, err := v1Addr(f[0], want6)
	if err != nil {
		return 0, none, err
	}
	if _, err := v1Addr(f[1], want6); err != nil {
		return 0, none, err
	}
	sport, err := v1Port(f[2])
	if err != nil {
		return 0, none, err
	}
	if _, err := v1Port(f[3]); err != nil {
		return 0, none, err
	}
	return n, netip.AddrPortFrom(src, sport), nil
}

// cutSpace splits b at its first space.
func cutSpace(b []byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == ' ' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// v1Addr parses a v1 address of the family the line announced. netip
// refuses leading zeros in IPv4 fields, as the spec does; a zone is no part
// of the canonical format.
func v1Addr(b []byte, want6 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Is6() != want6 || a.Zone() != "" {
		return netip.Addr{}, badProxy("v1: address %q", b)
	}
	return a, nil
}

// v1Port parses a v1 port: decimal, 0 to 65535, no leading zero.
func v1Port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || len(b) > 1 && b[0] == '0' {
		return 0, badProxy("v1: port %q", b)
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, badProxy("v1: port %q", b)
		}
		v = v*10 + int(c-'0')
	}
	if v > 0xffff {
		return 0, badProxy("v1: port %q", b)
	}
	return uint16(v), nil
}

// readProxyV2 reads a version 2 (binary) header (section 2.2). Each byte is
// checked as soon as it is in, so that a stream that is no header is
// refused at its first wrong byte.
func readProxyV2(b []byte) (int, netip.AddrPort, error) {
	var none netip.AddrPort
	if k := min(len(b), len(proxyV2Sig)); string(b[:k]) != proxyV2Sig[:k] {
		return 0, none, badProxy("v2: bad signature")
	}
	if len(b) <= 12 {
		return 0, none, errProxyIncomplete
	}
	// "The highest four bits contains the version ... the receiver must
	// only accept this value"; unassigned commands: "Receivers must drop
	// connections presenting unexpected values here."
	if v := b[12] >> 4; v != 2 {
		return 0, none, badProxy("v2: version %d", v)
	}
	cmd := b[12] & 0xf
	if cmd != pp2CmdLocal && cmd != pp2CmdProxy {
		return 0, none, badProxy("v2: command %#x", cmd)
	}
	if len(b) <= 13 {
		return 0, none, errProxyIncomplete
	}
	// A LOCAL header's family "is ignored"; for PROXY, unspecified families
	// and protocols "must be rejected as invalid by receivers".
	fam, proto := b[13]>>4, b[13]&0xf
	if cmd == pp2CmdProxy && (fam > pp2FamUnix || proto > 2) {
		return 0, none, badProxy("v2: address family and protocol %#02x", b[13])
	}
	if len(b) < 16 {
		return 0, none, errProxyIncomplete
	}
	n := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if n > proxyV2Max {
		return 0, none, badProxy("v2: header of %d bytes, over %d", n, proxyV2Max)
	}
	if len(b) < n {
		return 0, none, errProxyIncomplete
	}
	if cmd == pp2CmdLocal {
		// "must use the real connection endpoints and discard the protocol
		// block": its length, whatever it is, is skipped.
		return n, none, nil
	}
	var alen int
	switch fam {
	case pp2FamUnspec:
		return n, none, nil // "The receiver should ignore address information."
	case pp2FamInet:
		alen = 12
	case pp2FamInet6:
		alen = 36
	case pp2FamUnix:
		alen = 216
	}
	if n-16 < alen {
		return 0, none, badProxy("v2: address block of %d bytes, want %d", n-16, alen)
	}
	if err := checkTLVs(b[:n], 16+alen); err != nil {
		return 0, none, err
	}
	a := b[16:]
	switch {
	case proto != pp2ProtoTCP:
		// UDP, unspecified: valid, but not this connection's. Fall back
		// to its own addresses, as the spec allows.
		return n, none, nil
	case fam == pp2FamInet:
		ip := netip.AddrFrom4([4]byte(a[0:4]))
		return n, netip.AddrPortFrom(ip, binary.BigEndian.Uint16(a[8:10])), nil
	case fam == pp2FamInet6:
		ip := netip.AddrFrom16([16]byte(a[0:16]))
		return n, netip.AddrPortFrom(ip, binary.BigEndian.Uint16(a[32:34])), nil
	}
	return n, none, nil // AF_UNIX: no address to report
}

// checkTLVs checks the TLVs of header h from off to its end: each must lie
// within the header, and a CRC32C one must match ("If the checksum is
// provided ... the receiver MUST treat the TCP connection providing the
// header as invalid" when it does not, section 2.2.3). The others are
// skipped.
func checkTLVs(h []byte, off int) error {
	crcAt := -1
	for off < len(h) {
		if len(h)-off < 3 {
			return badProxy("v2: truncated TLV at byte %d", off)
		}
		typ, l := h[off], int(binary.BigEndian.Uint16(h[off+1:off+3]))
		v := off + 3
		if l > len(h)-v {
			return badProxy("v2: TLV %#02x of %d bytes overruns the header", typ, l)
		}
		if typ == pp2TypeCRC32 {
			if l != 4 || crcAt >= 0 {
				return badProxy("v2: bad CRC32C TLV")
			}
			crcAt = v
		}
		off = v + l
	}
	if crcAt >= 0 {
		tab := crc32.MakeTable(crc32.Castagnoli) // cached by the package
		var zero [4]byte
		sum := crc32.Update(0, tab, h[:crcAt])
		sum = crc32.Update(sum, tab, zero[:])
		sum = crc32.Update(sum, tab, h[crcAt+4:])
		if sum != binary.BigEndian.Uint32(h[crcAt:]) {
			return badProxy("v2: CRC32C mismatch")
		}
	}
	return nil
}

// takeProxyHeader is OnTraffic for a connection whose PROXY header has not
// been taken yet. It reports done once the header is consumed from gnet's
// buffer, the source recorded, and what followed it is left for the
// broker; otherwise OnTraffic returns action: wait for more bytes, or
// close.
func (s *Server) takeProxyHeader(c gnet.Conn, t *conn, x *connExt) (done bool, action gnet.Action) {
	if t.client.Closed() {
		return false, gnet.Close
	}
	buf, _ := c.Peek(-1)
	n, src, err := readProxyHeader(buf)
	switch {
	case err == errProxyIncomplete:
		return false, gnet.None // a prefix: bounded by proxyV2Max, the connect timeout
	case err != nil:
		s.proxyRefused(t, err)
		return false, gnet.Close
	}
	_, _ = c.Discard(n) // n > 0: Discard(0) would drop everything
	x.hdr = false
	x.src = src
	t.shrink(x)
	return true, gnet.None
}

// proxyRefused counts and logs (once a second at most) a connection closed
// for a missing or malformed header.
func (s *Server) proxyRefused(t *conn, err error) {
	n := s.proxyRejected.Add(1)
	if now := time.Now().Unix(); s.proxyLastLog.Swap(now) != now {
		s.opts.Logger.Warn("connection closed: no valid PROXY protocol header",
			"remote", t.RemoteAddr(), "err", err.Error(), "rejected", n)
	}
}

// ProxyRejected is the number of connections closed because they did not
// begin with a valid PROXY protocol header (Options.ProxyProtocol). Safe
// for concurrent use.
func (s *Server) ProxyRejected() uint64 { return s.proxyRejected.Load() }
