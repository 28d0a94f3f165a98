package eventloop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// MQTT over WebSocket (MQTT 5.0 section 6; 3.1.1 section 6): an HTTP/1.1
// upgrade on one path, the subprotocol "mqtt" ("mqttv3.1" for clients of
// MQTT 3.1), binary messages whose payloads are one byte stream: a packet
// may span messages and a message may hold several packets. Each flush of
// the broker's output is one message.

// DefaultWSPath is the path WebSocket clients upgrade on when ListenWS is
// given none.
const DefaultWSPath = "/mqtt"

// wsSubprotocols are the subprotocols accepted, preferred first.
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

// wsReadSlack is what a WebSocket message may carry past the broker's
// MaxPacketSize: the ends of the packets around a packet of the maximum
// size, sent in the same message.
const wsReadSlack = 64 << 10

// rawConnKey is the request context key of the connection an HTTP request
// came on (http.Server.ConnContext): for wss, its *tls.Conn.
type rawConnKey struct{}

// ListenWS listens on addr ("host:port"; port 0 picks a free one) for MQTT
// over WebSocket on path (DefaultWSPath if empty), over TLS (wss) when cfg
// is not nil, and returns the bound address.
func (s *StdServer) ListenWS(addr, path string, cfg *tls.Config) (net.Addr, error) {
	if cfg != nil {
		if err := checkServerTLS(cfg); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("eventloop: listen for WebSocket on %s: %w", addr, err)
	}
	if err := s.AddWSListener(ln, path, cfg); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln.Addr(), nil
}

// AddWSListener serves MQTT over WebSocket on connections accepted from ln
// (see ListenWS), in goroutines of its own; it returns at once. Stop closes
// ln.
func (s *StdServer) AddWSListener(ln net.Listener, path string, cfg *tls.Config) error {
	if path == "" {
		path = DefaultWSPath
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("eventloop: WebSocket path %q does not begin with /", path)
	}
	kind := "ws"
	if cfg != nil {
		if err := checkServerTLS(cfg); err != nil {
			return err
		}
		kind = "wss"
		// HTTP/1.1 only: the upgrade is an HTTP/1.1 mechanism, and no ALPN
		// is offered, so that clients do not pick h2.
		cfg = tls12(cfg)
		ln = tls.NewListener(ln, cfg)
	}
	h := &wsHandler{s: s, path: path, kind: kind}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.opts.HandshakeTimeout,
		IdleTimeout:       s.opts.HandshakeTimeout,
		MaxHeaderBytes:    16 << 10,
		// An empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, rawConnKey{}, c)
		},
	}
	if err := s.addListener(ln, hs); err != nil {
		return err
	}
	go func() {
		defer s.wg.Done()
		_ = hs.Serve(ln) // http.ErrServerClosed once Stop closes it
	}()
	return nil
}

// wsHandler upgrades the requests for path and serves each connection on
// the handler's goroutine.
type wsHandler struct {
	s    *StdServer
	path string
	kind string // "ws" or "wss"
}

// ServeHTTP implements http.Handler: it upgrades r or answers with the
// reason it does not.
func (h *wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	if r.URL.Path != h.path {
		http.Error(w, fmt.Sprintf("flockmq: no MQTT WebSocket endpoint at %s (it is at %s)", r.URL.Path, h.path),
			http.StatusNotFound)
		return
	}
	// A request that is no upgrade at all gets the library's answer (426).
	if headerHasToken(r.Header, "Upgrade", "websocket") && !wsOffersMQTT(r.Header) {
		// [MQTT-6.0.0-3] The client must offer "mqtt".
		http.Error(w, fmt.Sprintf("flockmq: WebSocket subprotocol \"mqtt\" required (offered: %q)",
			r.Header.Values("Sec-WebSocket-Protocol")), http.StatusBadRequest)
		return
	}
	raw, _ := r.Context().Value(rawConnKey{}).(net.Conn)
	if raw == nil {
		http.Error(w, "flockmq: connection unknown", http.StatusInternalServerError)
		return
	}
	if !s.admit() {
		http.Error(w, "flockmq: the connection limit is reached", http.StatusServiceUnavailable)
		return
	}
	opts := &websocket.AcceptOptions{Subprotocols: wsSubprotocols, OriginPatterns: s.opts.WSOriginPatterns,
		InsecureSkipVerify: len(s.opts.WSOriginPatterns) == 0}
	ws, err := websocket.Accept(w, r, opts) // answers the client itself on error
	if err != nil {
		s.open.Add(-1)
		s.log.Debug("WebSocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	// [MQTT-6.0.0-4] The subprotocol selected is "mqtt" (or the 3.1 one).
	_ = raw.SetDeadline(time.Time{}) // net/http's request deadlines do not apply from here
	// NetConn with a context that never ends: the connection ends by kill
	// (its TCP connection closed) or by the closing handshake; a context
	// of the server's would keep two children per connection until Stop.
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	ws.SetReadLimit(int64(s.maxPacket) + wsReadSlack) // after NetConn, which lifts it
	c := s.newConn(stdSock{rw: nc, raw: raw, ws: ws}, h.kind, r.RemoteAddr, verifiedPeer(r))
	s.run(c, false)
}

// verifiedPeer is the client certificate a wss request's handshake
// verified, nil if none.
func verifiedPeer(r *http.Request) *x509.Certificate {
	if r.TLS == nil {
		return nil
	}
	return verifiedLeaf(r.TLS)
}

// wsOffersMQTT reports whether the client offers one of wsSubprotocols.
func wsOffersMQTT(hd http.Header) bool {
	for _, sp := range wsSubprotocols {
		if headerHasToken(hd, "Sec-WebSocket-Protocol", sp) {
			return true
		}
	}
	return false
}

// headerHasToken reports whether one of the comma-separated values of
// header key is token, in any case.
func headerHasToken(hd http.Header, key, token string) bool {
	for _, v := range hd.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
