package cluster

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flockmq/flockmq/broker"
)

// The cluster key (-cluster-key) keeps the cluster's ports to its nodes:
//
//   - Gossip: memberlist encrypts and authenticates every packet and stream
//     with the key (AES-GCM, its keyring); a message that does not decrypt
//     is dropped, so a node without the key, or with another, cannot join.
//   - Peer link and raft port (raft and the forwarding RPC): every new TCP
//     connection starts with a mutual challenge-response handshake proving
//     that both ends hold the key; the accepting side reads nothing else
//     from a connection that fails it. The key authenticates connections
//     only: the data on these two ports is NOT encrypted (TLS is a later
//     item), so keep them on a private network all the same.
//
// Handshake, before any other byte of the connection:
//
//	dialer   -> acceptor  magic:4 "\xf0FK1"  nc:32
//	acceptor -> dialer    ns:32  mac(k, 'S', ns, nc):32
//	dialer   -> acceptor  mac(k, 'C', nc, ns):32
//
// nc and ns are random nonces, mac is HMAC-SHA256 keyed with k, a key
// derived from the cluster key (HKDF-SHA256), over magic, the port's
// purpose ("peer-link" or "raft"), the role byte and both nonces. The role
// byte keeps an acceptor's answer from being replayed as a dialer's, the
// nonces keep any answer from being replayed on another connection, and the
// purpose keeps one port's handshake from opening the other. The dialer
// checks the acceptor's mac before it sends its own, so a dialer with the
// wrong key learns it at once and never sends anything the acceptor would
// take; the acceptor checks the dialer's before it reads on. The magic's
// first byte is neither a peer link hello nor a raft port stream type, so a
// node without a key refuses a keyed dialer at its first byte, and a keyed
// acceptor tells a dialer without a key by the same byte.

// ErrClusterKey is wrapped by the errors of a cluster key that is not valid.
var ErrClusterKey = errors.New("cluster: invalid cluster key")

// ErrKeyHandshake is wrapped by the errors of a connection whose cluster key
// handshake failed.
var ErrKeyHandshake = errors.New("cluster: cluster key handshake failed")

// ParseClusterKey decodes a cluster key given in base64 (standard encoding,
// padded, as `openssl rand -base64 32` or `consul keygen` print it): 16, 24
// or 32 bytes, for AES-128, AES-192 or AES-256. Surrounding white space (a
// key file's newline) is ignored.
func ParseClusterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty (make one with `openssl rand -base64 32`)", ErrClusterKey)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 (make one with `openssl rand -base64 32`): %v", ErrClusterKey, err)
	}
	if err := checkClusterKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// checkClusterKey accepts a nil key (no key: nothing is checked) and keys
// of 16, 24 or 32 bytes.
func checkClusterKey(key []byte) error {
	switch len(key) {
	case 0:
		if key != nil {
			return fmt.Errorf("%w: empty", ErrClusterKey)
		}
		return nil
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%w: %d bytes; it must be 16, 24 or 32 (AES-128, AES-192 or AES-256)", ErrClusterKey, len(key))
}

const (
	keyMagic      = "\xf0FK1"
	keyNonceLen   = 32
	keyMACLen     = sha256.Size
	keyHelloLen   = len(keyMagic) + keyNonceLen
	keyReplyLen   = keyNonceLen + keyMACLen
	keyDeriveInfo = "flockmq cluster connection auth v1"

	purposePeerLink = "peer-link"
	purposeRaft     = "raft"
)

// connAuth runs the cluster key handshake of one port. A nil *connAuth is
// no key: both sides do nothing. Safe for concurrent use.
type connAuth struct {
	mac     []byte // HMAC key derived from the cluster key
	purpose string
}

// newConnAuth returns the handshake of the port purpose with key, or nil
// when key is empty.
func newConnAuth(key []byte, purpose string) *connAuth {
	if len(key) == 0 {
		return nil
	}
	k, err := hkdf.Key(sha256.New, key, nil, keyDeriveInfo, sha256.Size)
	if err != nil {
		panic("BUG: hkdf: " + err.Error())
	}
	return &connAuth{mac: k, purpose: purpose}
}

// sum is the mac of role over its own nonce and the other side's.
func (a *connAuth) sum(role byte, own, other []byte) []byte {
	h := hmac.New(sha256.New, a.mac)
	h.Write([]byte(keyMagic))
	h.Write([]byte{byte(len(a.purpose))})
	h.Write([]byte(a.purpose))
	h.Write([]byte{role})
	h.Write(own)
	h.Write(other)
	return h.Sum(nil)
}

// clientHandshake runs the dialing side on rw.
func (a *connAuth) clientHandshake(rw io.ReadWriter) error {
	var hello [keyHelloLen]byte
	copy(hello[:], keyMagic)
	nc := hello[len(keyMagic):]
	_, _ = rand.Read(nc)
	if _, err := rw.Write(hello[:]); err != nil {
		return fmt.Errorf("%w: sending the challenge: %w", ErrKeyHandshake, err)
	}
	var reply [keyReplyLen]byte
	if _, err := io.ReadFull(rw, reply[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return fmt.Errorf("%w: the remote closed the connection (has it the same cluster key?): %w", ErrKeyHandshake, err)
		}
		return fmt.Errorf("%w: no answer: %w", ErrKeyHandshake, err)
	}
	ns, macS := reply[:keyNonceLen], reply[keyNonceLen:]
	if !hmac.Equal(macS, a.sum('S', ns, nc)) {
		return fmt.Errorf("%w: the remote answered with another cluster key", ErrKeyHandshake)
	}
	if _, err := rw.Write(a.sum('C', nc, ns)); err != nil {
		return fmt.Errorf("%w: sending the answer: %w", ErrKeyHandshake, err)
	}
	return nil
}

// serverHandshake runs the accepting side on rw: nil only when the dialer
// proved it holds the key.
func (a *connAuth) serverHandshake(rw io.ReadWriter) error {
	var hello [keyHelloLen]byte
	if _, err := io.ReadFull(rw, hello[:len(keyMagic)]); err != nil {
		return fmt.Errorf("%w: no challenge: %w", ErrKeyHandshake, err)
	}
	if string(hello[:len(keyMagic)]) != keyMagic {
		return fmt.Errorf("%w: not a cluster key handshake (the remote has no cluster key, or is not a node)", ErrKeyHandshake)
	}
	if _, err := io.ReadFull(rw, hello[len(keyMagic):]); err != nil {
		return fmt.Errorf("%w: truncated challenge: %w", ErrKeyHandshake, err)
	}
	nc := hello[len(keyMagic):]
	var reply [keyReplyLen]byte
	ns := reply[:keyNonceLen]
	_, _ = rand.Read(ns)
	copy(reply[keyNonceLen:], a.sum('S', ns, nc))
	if _, err := rw.Write(reply[:]); err != nil {
		return fmt.Errorf("%w: sending the answer: %w", ErrKeyHandshake, err)
	}
	var macC [keyMACLen]byte
	if _, err := io.ReadFull(rw, macC[:]); err != nil {
		return fmt.Errorf("%w: no answer (the remote may have another cluster key): %w", ErrKeyHandshake, err)
	}
	if !hmac.Equal(macC[:], a.sum('C', nc, ns)) {
		return fmt.Errorf("%w: wrong cluster key", ErrKeyHandshake)
	}
	return nil
}

// dialSide runs the dialing side on c, bounded by deadline; the deadline is
// cleared again after a success.
func (a *connAuth) dialSide(c net.Conn, deadline time.Time) error {
	if a == nil {
		return nil
	}
	_ = c.SetDeadline(deadline)
	if err := a.clientHandshake(c); err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

// keyGate is the accepting side of a port with a cluster key: it runs the
// handshake of each new connection, and closes, logs (rate limited) and
// counts the ones that fail. A nil *keyGate lets every connection through.
// Safe for concurrent use.
type keyGate struct {
	auth    *connAuth
	what    string // the port, for the log line: "peer link", "raft port"
	timeout time.Duration
	log     *slog.Logger
	pending chan struct{} // handshakes in progress, bounded
	limit   broker.LogLimit

	refused atomic.Uint64
}

// maxPendingHandshakes bounds the handshakes in progress on one port. Over
// it a new connection is refused at once (counted): a flood of strangers
// that connect and stay silent then holds at most this many goroutines, for
// at most the handshake timeout each, and delays the nodes' own connections
// only while it lasts.
const maxPendingHandshakes = 256

// newKeyGate returns the gate of a port with key, or nil without a key.
func newKeyGate(key []byte, purpose, what string, timeout time.Duration, log *slog.Logger) *keyGate {
	a := newConnAuth(key, purpose)
	if a == nil {
		return nil
	}
	return &keyGate{auth: a, what: what, timeout: timeout, log: log, pending: make(chan struct{}, maxPendingHandshakes)}
}

// admit runs the handshake on a connection just accepted, before anything
// else is read from it. It reports whether c may be served; when it may
// not, c is closed. It blocks for at most the gate's timeout, so call it on
// the connection's own goroutine, never on the accept loop.
func (g *keyGate) admit(c net.Conn) bool {
	if g == nil {
		return true
	}
	select {
	case g.pending <- struct{}{}:
	default:
		g.refuse(c, fmt.Errorf("%w: %d handshakes already in progress", ErrKeyHandshake, maxPendingHandshakes))
		return false
	}
	defer func() { <-g.pending }()
	_ = c.SetDeadline(time.Now().Add(g.timeout))
	if err := g.auth.serverHandshake(c); err != nil {
		g.refuse(c, err)
		return false
	}
	_ = c.SetDeadline(time.Time{})
	return true
}

// refuse counts, logs (rate limited) and closes c.
func (g *keyGate) refuse(c net.Conn, err error) {
	g.refused.Add(1)
	if held, ok := g.limit.Allow(time.Now().UnixNano()); ok {
		remote := c.RemoteAddr().String()
		broker.LogHeld(g.log, slog.LevelWarn, held, g.what+": connection from "+remote+" refused: bad cluster key handshake",
			"remote", remote, "err", err)
	}
	c.Close()
}

// Refused is the number of connections refused. Safe for concurrent use.
func (g *keyGate) Refused() uint64 {
	if g == nil {
		return 0
	}
	return g.refused.Load()
}
