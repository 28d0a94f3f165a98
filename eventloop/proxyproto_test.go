package eventloop

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// ppV2 builds a version 2 header: verCmd (0x20 LOCAL, 0x21 PROXY), the
// family/protocol byte, the address block and the TLVs.
func ppV2(verCmd, fam byte, addr, tlvs []byte) []byte {
	b := []byte(proxyV2Sig)
	b = append(b, verCmd, fam, 0, 0)
	binary.BigEndian.PutUint16(b[14:], uint16(len(addr)+len(tlvs)))
	b = append(b, addr...)
	return append(b, tlvs...)
}

// ppTLV is one TLV.
func ppTLV(typ byte, v []byte) []byte {
	return append([]byte{typ, byte(len(v) >> 8), byte(len(v))}, v...)
}

// ppV4Block is an IPv4 address block: src, dst, sport, dport.
func ppV4Block(src, dst [4]byte, sport, dport uint16) []byte {
	b := append(src[:], dst[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

// ppV6Block is an IPv6 address block.
func ppV6Block(src, dst [16]byte, sport, dport uint16) []byte {
	b := append(src[:], dst[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

var (
	ppSrc4 = [4]byte{203, 0, 113, 7}
	ppDst4 = [4]byte{192, 0, 2, 1}
	ppSrc6 = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 7}
	ppDst6 = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
)

// ppWithCRC returns a v2 header like ppV2's with a CRC32C TLV (after the
// others), its checksum right unless spoil.
func ppWithCRC(addr, tlvs []byte, spoil bool) []byte {
	h := ppV2(0x21, 0x11, addr, append(append([]byte(nil), tlvs...), ppTLV(pp2TypeCRC32, make([]byte, 4))...))
	sum := crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli))
	if spoil {
		sum++
	}
	binary.BigEndian.PutUint32(h[len(h)-4:], sum)
	return h
}

type ppCase struct {
	name string
	in   []byte
	src  string // the source address reported, "" for none
}

// ppValid are well-formed headers with the address each reports.
func ppValid() []ppCase {
	tlvs := append(ppTLV(0x01, []byte("mqtt")), ppTLV(0x04, nil)...)
	tlvs = append(tlvs, ppTLV(0xe0, bytes.Repeat([]byte{0xaa}, 300))...)
	unix := bytes.Repeat([]byte{'/'}, 216)
	return []ppCase{
		{"v1 TCP4", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883\r\n"), "203.0.113.7:51234"},
		{"v1 TCP4 longest", []byte("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"), "255.255.255.255:65535"},
		{"v1 TCP4 port 0", []byte("PROXY TCP4 0.0.0.0 192.0.2.1 0 1883\r\n"), "0.0.0.0:0"},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 51234 1883\r\n"), "[2001:db8::7]:51234"},
		{"v1 TCP6 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), ""},
		{"v1 UNKNOWN longest", []byte("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), ""},
		{"v1 UNKNOWN anything", []byte("PROXY UNKNOWN whatever \x00 it says\r\n"), ""},
		{"v2 IPv4", ppV2(0x21, 0x11, ppV4Block(ppSrc4, ppDst4, 51234, 1883), nil), "203.0.113.7:51234"},
		{"v2 IPv6", ppV2(0x21, 0x21, ppV6Block(ppSrc6, ppDst6, 51234, 1883), nil), "[2001:db8::7]:51234"},
		{"v2 LOCAL", ppV2(0x20, 0x00, nil, nil), ""},
		{"v2 LOCAL with addresses", ppV2(0x20, 0x11, ppV4Block(ppSrc4, ppDst4, 1, 2), nil), ""},
		{"v2 LOCAL odd family", ppV2(0x20, 0xff, []byte{1, 2, 3}, nil), ""},
		{"v2 IPv4 with TLVs", ppV2(0x21, 0x11, ppV4Block(ppSrc4, ppDst4, 51234, 1883), tlvs), "203.0.113.7:51234"},
		{"v2 IPv6 with TLVs", ppV2(0x21, 0x21, ppV6Block(ppSrc6, ppDst6, 51234, 1883), tlvs), "[2001:db8::7]:51234"},
		{"v2 CRC32C", ppWithCRC(ppV4Block(ppSrc4, ppDst4, 51234, 1883), tlvs, false), "203.0.113.7:51234"},
		{"v2 UDP over IPv4", ppV2(0x21, 0x12, ppV4Block(ppSrc4, ppDst4, 51234, 1883), nil), ""},
		{"v2 UNIX stream", ppV2(0x21, 0x31, unix, nil), ""},
		{"v2 UNSPEC", ppV2(0x21, 0x00, nil, nil), ""},
		{"v2 longest", ppV2(0x21, 0x11, ppV4Block(ppSrc4, ppDst4, 51234, 1883), ppTLV(0x04, make([]byte, proxyV2Max-16-12-3))), "203.0.113.7:51234"},
	}
}

// ppMalformed are byte strings no header begins with.
func ppMalformed() []ppCase {
	good4 := ppV4Block(ppSrc4, ppDst4, 51234, 1883)
	badSig := ppV2(0x21, 0x11, good4, nil)
	badSig[11] = 'X'
	return []ppCase{
		{"MQTT CONNECT", codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V311, ClientID: []byte("x")}), ""},
		{"HTTP", []byte("GET / HTTP/1.1\r\n\r\n"), ""},
		{"v1 bad signature", []byte("PROXX TCP4 203.0.113.7 192.0.2.1 51234 1883\r\n"), ""},
		{"v1 lower case", []byte("proxy TCP4 203.0.113.7 192.0.2.1 51234 1883\r\n"), ""},
		{"v1 bad protocol", []byte("PROXY TCP5 203.0.113.7 192.0.2.1 51234 1883\r\n"), ""},
		{"v1 UNKNOWN glued", []byte("PROXY UNKNOWNX\r\n"), ""},
		{"v1 no fields", []byte("PROXY TCP4\r\n"), ""},
		{"v1 empty", []byte("PROXY \r\n"), ""},
		{"v1 missing port", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n"), ""},
		{"v1 extra field", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883 x\r\n"), ""},
		{"v1 trailing space", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883 \r\n"), ""},
		{"v1 double space", []byte("PROXY TCP4  203.0.113.7 192.0.2.1 51234 1883\r\n"), ""},
		{"v1 TCP4 with IPv6", []byte("PROXY TCP4 2001:db8::7 2001:db8::1 51234 1883\r\n"), ""},
		{"v1 TCP6 with IPv4", []byte("PROXY TCP6 203.0.113.7 192.0.2.1 51234 1883\r\n"), ""},
		{"v1 bad destination", []byte("PROXY TCP4 203.0.113.7 192.0.2 51234 1883\r\n"), ""},
		{"v1 leading zero address", []byte("PROXY TCP4 203.0.113.07 192.0.2.1 51234 1883\r\n"), ""},
		{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 2001:db8::1 51234 1883\r\n"), ""},
		{"v1 port too big", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 65536 1883\r\n"), ""},
		{"v1 port far too big", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 1000000 1883\r\n"), ""},
		{"v1 port leading zero", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 01883\r\n"), ""},
		{"v1 port negative", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 -1 1883\r\n"), ""},
		{"v1 port not a number", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 mqtt\r\n"), ""},
		{"v1 LF only", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883\n"), ""},
		{"v1 CR only", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883\rX"), ""},
		{"v1 no CRLF in 107 bytes", []byte("PROXY UNKNOWN " + strings.Repeat("a", 120) + "\r\n"), ""},
		{"v1 CRLF at 108", []byte("PROXY UNKNOWN " + strings.Repeat("a", proxyV1Max-len("PROXY UNKNOWN ")-1) + "\r\n"), ""},
		{"v2 bad signature", badSig, ""},
		{"v2 version 1", ppV2(0x11, 0x11, good4, nil), ""},
		{"v2 version 3", ppV2(0x31, 0x11, good4, nil), ""},
		{"v2 command 2", ppV2(0x22, 0x11, good4, nil), ""},
		{"v2 family 4", ppV2(0x21, 0x41, good4, nil), ""},
		{"v2 protocol 3", ppV2(0x21, 0x13, good4, nil), ""},
		{"v2 too long", ppV2(0x21, 0x11, good4, ppTLV(0x04, make([]byte, proxyV2Max-16-12-3+1))), ""},
		{"v2 longest length field", append(ppV2(0x21, 0x11, nil, nil)[:14], 0xff, 0xff), ""},
		{"v2 short IPv4 block", ppV2(0x21, 0x11, good4[:8], nil), ""},
		{"v2 short IPv6 block", ppV2(0x21, 0x21, ppV6Block(ppSrc6, ppDst6, 1, 2)[:35], nil), ""},
		{"v2 short UNIX block", ppV2(0x21, 0x31, make([]byte, 215), nil), ""},
		{"v2 truncated TLV", ppV2(0x21, 0x11, good4, []byte{0x04, 0x00}), ""},
		{"v2 TLV overrun", ppV2(0x21, 0x11, good4, []byte{0x04, 0x00, 0x05, 1, 2}), ""},
		{"v2 CRC32C mismatch", ppWithCRC(good4, nil, true), ""},
		{"v2 CRC32C of 3 bytes", ppV2(0x21, 0x11, good4, ppTLV(pp2TypeCRC32, []byte{1, 2, 3})), ""},
	}
}

func ppSrcString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// TestProxyHeaderParse: each valid header is read whole, with the address
// it names, whatever follows it; each shorter prefix is incomplete.
func TestProxyHeaderParse(t *testing.T) {
	tail := codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V311, ClientID: []byte("x")})
	for _, tc := range ppValid() {
		t.Run(tc.name, func(t *testing.T) {
			for _, in := range [][]byte{tc.in, append(append([]byte(nil), tc.in...), tail...)} {
				n, src, err := parseProxyHeader(in)
				if err != nil {
					t.Fatalf("%q: %v", in, err)
				}
				if n != len(tc.in) {
					t.Fatalf("read %d bytes, want %d", n, len(tc.in))
				}
				if got := ppSrcString(src); got != tc.src {
					t.Fatalf("source %q, want %q", got, tc.src)
				}
			}
			// Split at every offset: incomplete until the last byte.
			for k := range len(tc.in) {
				n, src, err := parseProxyHeader(tc.in[:k])
				if err != errProxyIncomplete || n != 0 || src != nil {
					t.Fatalf("first %d of %d bytes: n=%d src=%v err=%v, want incomplete", k, len(tc.in), n, src, err)
				}
			}
		})
	}
}

// TestProxyHeaderMalformed: malformed headers are refused, and no prefix
// of one is taken for a header (each is incomplete or refused; once
// refused, refused for every longer prefix).
func TestProxyHeaderMalformed(t *testing.T) {
	for _, tc := range ppMalformed() {
		t.Run(tc.name, func(t *testing.T) {
			if n, src, err := parseProxyHeader(tc.in); !errors.Is(err, errProxyHeader) || n != 0 || src != nil {
				t.Fatalf("%q: n=%d src=%v err=%v, want errProxyHeader", tc.in, n, src, err)
			}
			refused := false
			for k := range len(tc.in) {
				_, _, err := parseProxyHeader(tc.in[:k])
				switch {
				case errors.Is(err, errProxyHeader):
					refused = true
				case err == errProxyIncomplete && !refused:
				default:
					t.Fatalf("first %d bytes: %v (refused before: %v)", k, err, refused)
				}
			}
		})
	}
}

// TestProxyHeaderRefusedEarly: what cannot begin a header is refused at
// its first wrong byte, not after waiting for more: a client that speaks
// MQTT straight away is closed at once.
func TestProxyHeaderRefusedEarly(t *testing.T) {
	for _, in := range []string{"\x10", "P\x00", "PROXY\t", "\r\n\r\n\x00\r\nQUIX", "\r\n\r\n\x00\r\nQUIT\n\x10", "\r\n\r\n\x00\r\nQUIT\n\x23",
		"\r\n\r\n\x00\r\nQUIT\n\x21\x51", "PROXY TCP4 1.2.3.4\n"} {
		if _, _, err := parseProxyHeader([]byte(in)); !errors.Is(err, errProxyHeader) {
			t.Errorf("%q: %v, want errProxyHeader", in, err)
		}
	}
}

// FuzzProxyHeader: no input panics; a header read is never longer than the
// input nor than the limits, reads the same from its own bytes, and each of
// its proper prefixes is incomplete.
func FuzzProxyHeader(f *testing.F) {
	for _, tc := range append(ppValid(), ppMalformed()...) {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		n, src, err := parseProxyHeader(in)
		switch {
		case err == errProxyIncomplete:
			if n != 0 || src != nil {
				t.Fatalf("incomplete with n=%d src=%v", n, src)
			}
			return
		case err != nil:
			if !errors.Is(err, errProxyHeader) || n != 0 || src != nil {
				t.Fatalf("error %v with n=%d src=%v", err, n, src)
			}
			return
		}
		if n <= 0 || n > len(in) || n > proxyV2Max || in[0] == 'P' && n > proxyV1Max {
			t.Fatalf("read %d bytes of %d", n, len(in))
		}
		n2, src2, err := parseProxyHeader(in[:n])
		if err != nil || n2 != n || ppSrcString(src2) != ppSrcString(src) {
			t.Fatalf("header alone: n=%d src=%v err=%v, want n=%d src=%v", n2, src2, err, n, src)
		}
		for _, k := range []int{0, n / 2, n - 1, len(in) % n} {
			if _, _, err := parseProxyHeader(in[:k]); err != errProxyIncomplete {
				t.Fatalf("first %d of a %d-byte header: %v, want incomplete", k, n, err)
			}
		}
	})
}

// ppAuth records the remote address each client connected with.
type ppAuth struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (a *ppAuth) Authenticate(info *broker.ConnectInfo) codec.ReasonCode {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addrs[info.ClientID] = info.RemoteAddr
	return codec.Success
}

func (a *ppAuth) addr(id string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.addrs[id]
	return s, ok
}

// ppLogs is a log sink safe for concurrent use.
type ppLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *ppLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *ppLogs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

type ppServer struct {
	srv  *Server
	b    *broker.Broker
	auth *ppAuth
	logs *ppLogs
	addr string
}

// startPPServer runs a broker with a recording authenticator on a gnet
// server with the PROXY protocol on or off.
func startPPServer(t *testing.T, proxy bool, connectTimeout time.Duration) *ppServer {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.SysInterval = 0
	if connectTimeout > 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	logs := &ppLogs{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	auth := &ppAuth{addrs: make(map[string]string)}
	b, err := broker.New(cfg, broker.WithLogger(log), broker.WithAuthenticator(auth))
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(b, "127.0.0.1:0", Options{Loops: 1, Logger: log, ProxyProtocol: proxy})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Shutdown(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	return &ppServer{srv: srv, b: b, auth: auth, logs: logs, addr: srv.Addr().String()}
}

// ppSend dials addr and writes each piece separately, pausing between
// them so that the server reads them one at a time.
func ppSend(t *testing.T, addr string, pieces ...[]byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(5 * time.Millisecond) // not a wait for a state: keeps the writes apart
		}
		if _, err := c.Write(p); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	return c
}

func ppConnect(id string) []byte {
	return codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte(id), KeepAlive: 60})
}

func ppCat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// splitAt cuts b at the given offsets.
func splitAt(b []byte, at ...int) [][]byte {
	var out [][]byte
	prev := 0
	for _, k := range at {
		out = append(out, b[prev:k])
		prev = k
	}
	return append(out, b[prev:])
}

// TestProxyProtocolServer: with the option on, the broker sees the address
// from the PROXY header (the authenticator's RemoteAddr), however the
// header and the packets after it arrive; a LOCAL or UNKNOWN header leaves
// the connection's own address.
func TestProxyProtocolServer(t *testing.T) {
	s := startPPServer(t, true, 0)
	v1 := []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883\r\n")
	v2 := ppV2(0x21, 0x21, ppV6Block(ppSrc6, ppDst6, 443, 1883),
		append(ppTLV(0x01, []byte("mqtt")), ppTLV(0xea, []byte("vpce-0123"))...))
	ping := []byte{byte(codec.Pingreq) << 4, 0}
	cases := []struct {
		name   string
		pieces func(id string) [][]byte
		want   string // "" = the client's own address
	}{
		{"v1 and CONNECT in one write", func(id string) [][]byte { return [][]byte{ppCat(v1, ppConnect(id), ping)} }, "203.0.113.7:51234"},
		{"v1 split mid-header", func(id string) [][]byte {
			return splitAt(ppCat(v1, ppConnect(id), ping), 1, 9, 30, len(v1)-1, len(v1)+3)
		}, "203.0.113.7:51234"},
		{"v1 then CONNECT", func(id string) [][]byte { return [][]byte{v1, ppCat(ppConnect(id), ping)} }, "203.0.113.7:51234"},
		{"v1 TCP6", func(id string) [][]byte {
			return [][]byte{ppCat([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 40000 1883\r\n"), ppConnect(id), ping)}
		}, "[2001:db8::7]:40000"},
		{"v1 UNKNOWN", func(id string) [][]byte { return [][]byte{ppCat([]byte("PROXY UNKNOWN\r\n"), ppConnect(id), ping)} }, ""},
		{"v2 IPv6 with TLVs", func(id string) [][]byte { return [][]byte{ppCat(v2, ppConnect(id), ping)} }, "[2001:db8::7]:443"},
		{"v2 split", func(id string) [][]byte { return splitAt(ppCat(v2, ppConnect(id), ping), 5, 13, 15, 40, len(v2)) }, "[2001:db8::7]:443"},
		{"v2 IPv4", func(id string) [][]byte {
			return [][]byte{ppCat(ppV2(0x21, 0x11, ppV4Block(ppSrc4, ppDst4, 51234, 1883), nil), ppConnect(id), ping)}
		}, "203.0.113.7:51234"},
		{"v2 LOCAL", func(id string) [][]byte { return [][]byte{ppCat(ppV2(0x20, 0x00, nil, nil), ppConnect(id), ping)} }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			c := ppSend(t, s.addr, tc.pieces(id)...)
			if p := readPacket(t, c); p != codec.Connack {
				t.Fatalf("got %v, want CONNACK", p)
			}
			if p := readPacket(t, c); p != codec.Pingresp {
				t.Fatalf("got %v after CONNACK, want PINGRESP", p)
			}
			want := tc.want
			if want == "" {
				want = c.LocalAddr().String()
			}
			if got, _ := s.auth.addr(id); got != want {
				t.Fatalf("the broker saw %q, want %q", got, want)
			}
		})
	}
	if n := s.srv.ProxyRejected(); n != 0 {
		t.Fatalf("ProxyRejected = %d, want 0", n)
	}
}

// TestProxyProtocolRefused: with the option on, a connection that does not
// begin with a valid header (a client that bypassed the balancer, a
// malformed header) is closed before the broker reads it, counted and
// logged once a second at most.
func TestProxyProtocolRefused(t *testing.T) {
	s := startPPServer(t, true, 0)
	cases := []struct {
		name string
		in   []byte
	}{
		{"no header", ppConnect("bypass")},
		{"v1 bad port", ppCat([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 99999 1883\r\n"), ppConnect("badport"))},
		{"v1 no CRLF", ppCat([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883\n"), ppConnect("nocrlf"))},
		{"v2 bad version", ppCat(ppV2(0x11, 0x11, ppV4Block(ppSrc4, ppDst4, 1, 2), nil), ppConnect("badversion"))},
		{"v2 too long", ppCat(ppV2(0x21, 0x11, nil, nil)[:14], []byte{0x10, 0x00})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ppSend(t, s.addr, tc.in)
			if p := readPacket(t, c); p != 0 {
				t.Fatalf("got %v, want the connection closed", p)
			}
		})
	}
	if n := s.srv.ProxyRejected(); n != uint64(len(cases)) {
		t.Fatalf("ProxyRejected = %d, want %d", n, len(cases))
	}
	const msg = "no valid PROXY protocol header"
	if n := s.logs.count(msg); n < 1 || n >= len(cases) {
		t.Fatalf("%d warnings for %d refused connections, want at least one and fewer (once a second)", n, len(cases))
	}
	for _, id := range []string{"bypass", "badport", "nocrlf", "badversion"} {
		if got, ok := s.auth.addr(id); ok {
			t.Fatalf("client %s reached the broker (from %s)", id, got)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.srv.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", s.srv.open.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestProxyProtocolHeaderTimeout: a header that never completes is closed
// at the broker's connect timeout.
func TestProxyProtocolHeaderTimeout(t *testing.T) {
	s := startPPServer(t, true, time.Second)
	start := time.Now()
	c := ppSend(t, s.addr, []byte("PROXY TCP4 203.0.113.7 19"))
	if p := readPacket(t, c); p != 0 {
		t.Fatalf("got %v, want the connection closed", p)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("closed after %v, before the connect timeout", d)
	}
	if n := s.b.Stats().ConnectTimeouts.Load(); n != 1 {
		t.Fatalf("ConnectTimeouts = %d, want 1", n)
	}
	if n := s.srv.ProxyRejected(); n != 0 {
		t.Fatalf("ProxyRejected = %d, want 0", n)
	}
}

// TestProxyProtocolOff: without the option a PROXY header is not MQTT: the
// connection is closed as for any first packet that is not CONNECT, and
// the header is not taken for an address.
func TestProxyProtocolOff(t *testing.T) {
	s := startPPServer(t, false, 0)
	for _, hdr := range [][]byte{
		[]byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883\r\n"),
		ppV2(0x21, 0x11, ppV4Block(ppSrc4, ppDst4, 51234, 1883), nil),
	} {
		c := ppSend(t, s.addr, ppCat(hdr, ppConnect("off")))
		if p := readPacket(t, c); p != 0 {
			t.Fatalf("%q: got %v, want the connection closed", hdr, p)
		}
	}
	if _, ok := s.auth.addr("off"); ok {
		t.Fatal("a client behind a PROXY header reached the authenticator")
	}
	// A plain client is served with its own address.
	c := ppSend(t, s.addr, ppConnect("plain"))
	if p := readPacket(t, c); p != codec.Connack {
		t.Fatalf("got %v, want CONNACK", p)
	}
	if got, _ := s.auth.addr("plain"); got != c.LocalAddr().String() {
		t.Fatalf("the broker saw %q, want %q", got, c.LocalAddr())
	}
	if n := s.srv.ProxyRejected(); n != 0 {
		t.Fatalf("ProxyRejected = %d, want 0", n)
	}
}

// TestProxyConnExtSize: a proxied connection keeps its extension for its
// whole life, to hold the client's address: keep it in the 64-byte size
// class, and conn in its own (TestConnSize).
func TestProxyConnExtSize(t *testing.T) {
	if n := unsafe.Sizeof(connExt{}); n > 64 {
		t.Fatalf("connExt is %d bytes, over the 64-byte size class", n)
	}
	if n := unsafe.Sizeof(conn{}); n > 96 {
		t.Fatalf("conn is %d bytes, over the 96-byte size class", n)
	}
}
