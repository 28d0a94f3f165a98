package broker

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the broker's limits and options. Every field has a default in
// DefaultConfig and a one-line description; cmd/node maps flags, FLOCKMQ_*
// variables and the config file onto it.
type Config struct {
	// MaxConnections caps concurrent client connections (0 = unlimited).
	MaxConnections int
	// MaxPacketSize caps an incoming packet, fixed header included, in bytes;
	// advertised to v5 clients as Maximum Packet Size.
	MaxPacketSize int
	// ReceiveMaximum is how many QoS 1/2 publishes a client may have unacknowledged
	// towards the broker (advertised to v5 clients; exceeding it is DISCONNECT 0x93).
	ReceiveMaximum uint16
	// MaxInflight caps unacknowledged QoS 1/2 messages towards one client; a v5
	// client's own Receive Maximum lowers it.
	MaxInflight int
	// MaxQueuedMessages caps the messages held for an offline session (the
	// newest are dropped past it) and sets the flow-control marks of a
	// connected one: publishers into a queue past a quarter of it are held back.
	MaxQueuedMessages int
	// QueueQoS0 also queues QoS 0 messages for offline persistent sessions.
	QueueQoS0 bool
	// MaxTopicLevels caps the levels of a topic name or filter (0 = unlimited).
	MaxTopicLevels int
	// MaxRetainedSize caps a retained message's payload in bytes (0 = unlimited).
	MaxRetainedSize int
	// RetainAvailable enables retained messages.
	RetainAvailable bool
	// TopicAliasMaximum is the number of topic aliases a v5 client may use towards
	// the broker (0 disables them).
	TopicAliasMaximum uint16
	// ServerKeepAlive, when non-zero, overrides a v5 client's keep alive (seconds).
	ServerKeepAlive uint16
	// MaxKeepAlive caps the keep alive accepted from a client in seconds (0 = none);
	// v5 clients asking for more are told ServerKeepAlive.
	MaxKeepAlive uint16
	// MaxSessionExpiry caps a session's expiry interval in seconds; 3.1.1
	// persistent sessions get this value (0xFFFFFFFF = never expire).
	MaxSessionExpiry uint32
	// SharedStrategy picks one member of a shared subscription group:
	// "round-robin", "random" or "hash" (of the publisher's client id).
	SharedStrategy string
	// OutboundHighWater is the bytes buffered towards one client above which QoS 0
	// messages to it are dropped and QoS 1/2 wait in the session queue.
	OutboundHighWater int
	// ConnectTimeout closes a connection that has not sent CONNECT in time.
	ConnectTimeout time.Duration
	// SysInterval is the period of $SYS topic updates (0 disables them).
	SysInterval time.Duration
	// MailboxSize bounds each loop's cross-loop delivery queue; QoS 0 deliveries
	// beyond it are dropped and counted.
	MailboxSize int
	// SlowConsumerTimeout is how long a connected client may hold publishers
	// back without progress (no acknowledgement, nothing sent from its queue)
	// before it is disconnected with 0x97 (0 = never).
	SlowConsumerTimeout time.Duration
	// TakeoverTimeout bounds the wait of a reconnecting persistent session
	// for its state from the node it was on (takeover.go); past it, the
	// session resumes with its subscriptions only.
	TakeoverTimeout time.Duration
}

// DefaultConfig returns the defaults: generous limits that a single node serves
// comfortably.
func DefaultConfig() Config {
	return Config{
		MaxConnections:    0,
		MaxPacketSize:     1 << 20,
		ReceiveMaximum:    1024,
		MaxInflight:       128,
		MaxQueuedMessages: 1000,
		QueueQoS0:         false,
		MaxTopicLevels:    128,
		MaxRetainedSize:   256 << 10,
		RetainAvailable:   true,
		TopicAliasMaximum: 64,
		ServerKeepAlive:   0,
		MaxKeepAlive:      0,
		MaxSessionExpiry:  0xFFFFFFFF,
		SharedStrategy:    "round-robin",
		OutboundHighWater: 4 << 20,
		ConnectTimeout:    10 * time.Second,
		SysInterval:       10 * time.Second,
		MailboxSize:       1 << 20,

		SlowConsumerTimeout: 10 * time.Second,
		TakeoverTimeout:     5 * time.Second,
	}
}

// Validate reports the first option that is out of range.
func (c *Config) Validate() error {
	switch {
	case c.MaxConnections < 0:
		return errors.New("broker: max connections must not be negative")
	case c.MaxPacketSize < 64 || c.MaxPacketSize > 268435460:
		return fmt.Errorf("broker: max packet size %d is outside 64..268435460", c.MaxPacketSize)
	case c.ReceiveMaximum == 0:
		return errors.New("broker: receive maximum must be at least 1")
	case c.MaxInflight < 1 || c.MaxInflight > 65535:
		return fmt.Errorf("broker: max inflight %d is outside 1..65535", c.MaxInflight)
	case c.MaxQueuedMessages < 0:
		return errors.New("broker: max queued messages must not be negative")
	case c.MaxTopicLevels < 0:
		return errors.New("broker: max topic levels must not be negative")
	case c.MaxRetainedSize < 0:
		return errors.New("broker: max retained size must not be negative")
	case c.OutboundHighWater < 4096:
		return fmt.Errorf("broker: outbound high water %d is below 4096 bytes", c.OutboundHighWater)
	case c.ConnectTimeout <= 0:
		return errors.New("broker: connect timeout must be positive")
	case c.SysInterval < 0:
		return errors.New("broker: sys interval must not be negative")
	case c.SlowConsumerTimeout < 0:
		return errors.New("broker: slow consumer timeout must not be negative")
	case c.TakeoverTimeout <= 0:
		return errors.New("broker: takeover timeout must be positive")
	case c.MailboxSize < 1:
		return errors.New("broker: mailbox size must be at least 1")
	}
	switch c.SharedStrategy {
	case "round-robin", "random", "hash":
	default:
		return fmt.Errorf("broker: shared strategy %q is not round-robin, random or hash", c.SharedStrategy)
	}
	return nil
}
