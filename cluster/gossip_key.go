package cluster

import (
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/flockmq/flockmq/broker"
)

// memberlist (v0.6.0) drops every packet and stream that does not decrypt
// with the cluster key, and logs each at [ERR] with the sender's address:
//
//	Decrypt packet failed: no installed keys could decrypt the message from=A
//	Decrypt packet failed: payload is too small to decrypt: 37 from=A
//	failed to receive: no installed keys could decrypt the message from=A
//	failed to receive: encryption is configured but remote state is not encrypted from=A
//	failed to receive: remote state is encrypted and encryption is not configured from=A
//
// (the last on a node without a key, from a node with one). A joining node
// with another key, or none, gets the same texts back from Join. The
// refusal itself is memberlist's; gossipLogFilter only turns those lines
// into one warning of ours, rate limited, since anyone who reaches the
// gossip port could otherwise write a line per packet, and counts them.

// gossipKeyErrors are the texts of memberlist's refusals for the key.
var gossipKeyErrors = []string{
	"no installed keys could decrypt",
	"encryption is configured but remote state is not encrypted",
	"remote state is encrypted and encryption is not configured",
	"payload is too small to decrypt",
	"unsupported encryption version",
	"cannot decrypt empty payload",
}

// isGossipKeyError reports whether a memberlist error text is a refusal for
// the cluster key.
func isGossipKeyError(s string) bool {
	for _, e := range gossipKeyErrors {
		if strings.Contains(s, e) {
			return true
		}
	}
	return false
}

// gossipLogFilter is memberlist's log output: it counts and rate-limits the
// lines of messages refused for the cluster key and passes the rest on.
// Each Write is one line (log.Logger). Safe for concurrent use.
type gossipLogFilter struct {
	g    *Gossip
	next io.Writer
}

func (f gossipLogFilter) Write(p []byte) (int, error) {
	line := string(p)
	if !strings.Contains(line, "memberlist: Decrypt packet failed:") &&
		!(strings.Contains(line, "memberlist: failed to receive:") && isGossipKeyError(line)) {
		return f.next.Write(p)
	}
	g := f.g
	g.keyRefused.Add(1)
	if held, ok := g.keyLog.Allow(time.Now().UnixNano()); ok {
		from := "unknown"
		if i := strings.LastIndex(line, "from="); i >= 0 {
			from = strings.TrimSpace(line[i+len("from="):])
		}
		reason := strings.TrimSpace(line)
		if i := strings.Index(reason, "memberlist: "); i >= 0 {
			reason = reason[i+len("memberlist: "):]
		}
		broker.LogHeld(g.log, slog.LevelWarn, held, "gossip: message from "+from+" refused: bad cluster key",
			"remote", from, "err", reason)
	}
	return len(p), nil
}

// KeyRefused is the number of gossip packets and streams memberlist dropped
// because they did not decrypt with this node's cluster key (or were
// plaintext, or encrypted while this node has no key). Safe for concurrent
// use.
func (g *Gossip) KeyRefused() uint64 { return g.keyRefused.Load() }
