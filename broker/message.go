package broker

import (
	"time"

	"github.com/flockmq/flockmq/codec"
)

// Message is an application message owned by the broker: an immutable copy of
// a PUBLISH made once at ingress and shared by every delivery, queue entry and
// retained slot that references it. Nothing mutates a Message after creation.
type Message struct {
	Topic   []byte
	Payload []byte
	QoS     byte
	Retain  bool
	// Props holds the v5 properties forwarded to subscribers; Topic Alias and
	// Subscription Identifiers are stripped at ingress.
	Props codec.Properties
	// ExpiresAt is when the message expires (unix nanoseconds), 0 for never.
	ExpiresAt int64
	// Publisher is the client id of the sender ("" for the broker itself).
	Publisher string
	// ID identifies the message cluster-wide: made at ingress from the
	// node's random base and a counter, and carried to the other nodes, so
	// that a session moving between nodes receives each message once (see
	// takeover.go). 0 for the broker's own messages.
	ID uint64
}

// newMessage copies p into a Message. now is unix nanoseconds.
func newMessage(p *codec.PublishPacket, publisher string, now int64) *Message {
	c := p.Clone()
	m := &Message{Topic: c.Topic, Payload: c.Payload, QoS: c.QoS, Retain: c.Retain, Props: c.Props, Publisher: publisher}
	m.Props.Clear(codec.PropTopicAlias)
	m.Props.Clear(codec.PropSubscriptionID)
	m.Props.SubscriptionIDs = nil
	if m.Props.Has(codec.PropMessageExpiry) {
		m.ExpiresAt = now + int64(m.Props.MessageExpiry)*int64(time.Second)
	}
	return m
}

// expired reports whether m has expired at now (unix nanoseconds).
func (m *Message) expired(now int64) bool { return m.ExpiresAt != 0 && now >= m.ExpiresAt }

// remainingExpiry is the Message Expiry Interval to forward at now: the time
// left, rounded up, at least 1 [MQTT-3.3.2-6].
func (m *Message) remainingExpiry(now int64) uint32 {
	left := m.ExpiresAt - now
	if left <= 0 {
		return 1
	}
	return uint32((left + int64(time.Second) - 1) / int64(time.Second))
}

// SharedTarget names one shared subscription group: its share name (the
// routing package's QueueGroup for $queue/ subscriptions) and its topic
// filter. A message forwarded to another node lists the groups that node is
// to serve, one member each.
type SharedTarget struct {
	Group  string
	Filter string
}

// SessionState is the message state of a session that moves to another node
// (takeover.go): its unacknowledged and queued messages and the inbound QoS 2
// packet ids awaiting PUBREL.
type SessionState struct {
	ClientID string
	Epoch    uint64 // the claim that moved it
	// Messages holds the inflight messages in send order, then the queued
	// ones.
	Messages []MovedMessage
	InQoS2   []uint16
}

// MaxMovedSubIDs bounds the subscription identifiers a moved message keeps.
const MaxMovedSubIDs = 1024

// MovedMessage is one message of a moving session.
type MovedMessage struct {
	Msg    *Message // nil for a Released one
	QoS    byte
	Retain bool
	SubIDs []uint32
	// Group and Filter name the shared group (Filter is its topic filter)
	// the message came through; empty for a plain subscription.
	Group  string
	Filter string
	// PacketID is the packet id of an inflight message (resent with DUP
	// and the same id [MQTT-4.4.0-1]); 0 for a queued one.
	PacketID uint16
	// Released marks an outgoing QoS 2 message past PUBREC: only PUBREL
	// remains to be sent.
	Released bool
}
