package broker

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flockmq/flockmq/codec"
	"github.com/flockmq/flockmq/routing"
)

// Version is the broker version reported in $SYS/broker/version.
const Version = "0.1.0"

// Broker is one node's MQTT broker: the session registry, the subscription
// index, the loops that own sessions, and the counters. Its exported methods
// are safe for concurrent use.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	store Store
	authn Authenticator
	authz Authorizer
	eauth EnhancedAuthenticator

	aauthz AccessAuthorizer   // authz, when it is one
	asyncn AsyncAuthenticator // authn, when it is one

	remote  Remote                   // nil on a node outside a cluster
	msgBase uint64                   // random base of message IDs (takeover.go)
	early   map[string]*SessionState // handovers before their claim's result; mu held

	trie     *routing.Trie
	nextID   atomic.Uint64
	subGen   atomic.Uint32 // install generations of persistent subscriptions (subscribe.go)
	sessions *sessionTable // by routing identity

	mu          sync.Mutex // guards clients, loops
	clients     clientIndex
	loops       []*Loop
	closing     bool
	ext         *router // for publishes from outside any loop; guarded by extMu
	extMu       sync.Mutex
	started     time.Time
	sysStop     chan struct{}
	sysDone     chan struct{}
	stopOnce    sync.Once
	park        *parkLoop  // offline sessions restored after a restart; guarded by mu
	parkMu      sync.Mutex // serializes starting and stopping park
	parkStopped bool       // guarded by parkMu

	sysMu       sync.Mutex
	sysRetained map[string]*Message // this node's $SYS values

	stats Stats
	abuse abuseLogs // rate limits of the log lines about misbehaving clients
}

// Stats are the broker's counters. Fields are updated atomically.
type Stats struct {
	ConnectionsOpen    atomic.Int64
	ClientsConnected   atomic.Int64
	ConnectsTotal      atomic.Uint64
	MessagesReceived   atomic.Uint64
	MessagesSent       atomic.Uint64
	BytesReceived      atomic.Uint64
	BytesSent          atomic.Uint64
	PublishReceived    [3]atomic.Uint64 // PUBLISH packets from clients, by QoS
	PublishSent        [3]atomic.Uint64 // PUBLISH packets to clients, by QoS
	PayloadReceived    [3]atomic.Uint64 // their payload bytes, by QoS
	PayloadSent        [3]atomic.Uint64
	DroppedQoS0        atomic.Uint64 // QoS 0 dropped for a slow consumer or full mailbox
	DroppedQoS0Slow    atomic.Uint64 // of DroppedQoS0, those dropped because the client did not read (outbound-high-water)
	DroppedQueueFull   atomic.Uint64 // QoS 1/2 dropped because an offline session's queue was full
	DroppedTooLarge    atomic.Uint64 // dropped: larger than the client's Maximum Packet Size
	DroppedExpired     atomic.Uint64 // dropped: message expiry passed while queued
	SlowConsumerKicks  atomic.Uint64 // disconnected with 0x97
	ProtocolErrors     atomic.Uint64 // connections closed for malformed or forbidden packets
	KeepaliveTimeouts  atomic.Uint64
	WillsPublished     atomic.Uint64
	SessionsTakenOver  atomic.Uint64
	SessionsExpired    atomic.Uint64
	AuthFailures       atomic.Uint64
	PublishDenied      atomic.Uint64 // PUBLISH packets and wills the ACL refused
	SubscribeDenied    atomic.Uint64 // subscription filters the ACL refused
	ReadDenied         atomic.Uint64 // retained messages a new subscription was not allowed to read
	AuthExpired        atomic.Uint64 // connections closed when their credentials expired
	StoreFailures      atomic.Uint64
	SharedRedelivered  atomic.Uint64
	PublisherPauses    atomic.Uint64 // publishers paused by flow control
	QueuedMessagesHeld atomic.Int64
	Panics             atomic.Uint64 // panics recovered on a loop (see Loop.Recovered)
	ConnectTimeouts    atomic.Uint64 // connections closed without a CONNECT in connect-timeout
	PacketsTooLarge    atomic.Uint64 // connections closed for a packet over max-packet-size
	ForwardedOut       atomic.Uint64 // copies of messages sent to other nodes
	ForwardedIn        atomic.Uint64 // messages received from other nodes
	ForwardedUnserved  atomic.Uint64 // shared group copies that found no local member on arrival
	SessionsMoved      atomic.Uint64 // sessions handed to (or ended for) another node their client connected to
	SessionsArrived    atomic.Uint64 // sessions whose state came from another node
	TakeoverStateLost  atomic.Uint64 // sessions resumed without their state: the old node was dead, or silent past takeover-timeout
	MovedMessagesLost  atomic.Uint64 // messages sent on by a session's old node that found no session here, or a session that resumed without them
}

// Sum returns the total of a by-QoS counter.
func Sum(c *[3]atomic.Uint64) uint64 { return c[0].Load() + c[1].Load() + c[2].Load() }

// Option configures a Broker.
type Option func(*Broker)

// WithStore sets the persistent store (default: a MemoryStore).
func WithStore(s Store) Option { return func(b *Broker) { b.store = s } }

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(b *Broker) { b.log = l } }

// WithAuthenticator sets the CONNECT authentication hook (default: allow all).
func WithAuthenticator(a Authenticator) Option { return func(b *Broker) { b.authn = a } }

// WithAuthorizer sets the publish/subscribe ACL hook (default: allow all).
func WithAuthorizer(a Authorizer) Option { return func(b *Broker) { b.authz = a } }

// WithEnhancedAuth sets the v5 enhanced authentication hook (default: none,
// so a CONNECT with an Authentication Method gets 0x8C).
func WithEnhancedAuth(e EnhancedAuthenticator) Option { return func(b *Broker) { b.eauth = e } }

// New returns a broker with cfg, which must be valid.
func New(cfg Config, opts ...Option) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:      cfg,
		log:      slog.Default(),
		authn:    AllowAll{},
		authz:    AllowAll{},
		sessions: newSessionTable(),
		clients:  newClientIndex(),
		started:  time.Now(),
		sysStop:  make(chan struct{}),
		sysDone:  make(chan struct{}),
		msgBase:  newMsgBase(),
	}
	for _, o := range opts {
		o(b)
	}
	if b.store == nil {
		b.store = NewMemoryStore()
	}
	b.aauthz, _ = b.authz.(AccessAuthorizer)
	b.asyncn, _ = b.authn.(AsyncAuthenticator)
	strategy := routing.ShareRoundRobin
	switch cfg.SharedStrategy {
	case "random":
		strategy = routing.ShareRandom
	case "hash":
		strategy = routing.ShareHash
	}
	ropts := routing.DefaultOptions()
	ropts.Strategy = strategy
	if b.remote != nil {
		ropts.OnLocal = b.remote.LocalRoute
	}
	b.trie = routing.New(ropts)
	b.ext = newRouter(b)
	if cfg.SysInterval > 0 {
		go b.sysLoop()
	} else {
		close(b.sysDone)
	}
	return b, nil
}

// Config returns the broker's configuration.
func (b *Broker) Config() Config { return b.cfg }

// Stats returns the live counters.
func (b *Broker) Stats() *Stats { return &b.stats }

// SubscriptionCount is the number of subscriptions indexed.
func (b *Broker) SubscriptionCount() int { return b.trie.Subscriptions() }

// RetainedCount is the number of retained messages.
func (b *Broker) RetainedCount() int { return b.store.RetainedCount() }

// NewLoop registers a loop whose closures run through exec, which must run f
// on the loop's goroutine later and report false if the loop has stopped.
// exec is safe for concurrent use.
func (b *Broker) NewLoop(exec func(f func()) bool) *Loop {
	l := newLoop(b, exec)
	b.mu.Lock()
	l.idx = len(b.loops)
	b.loops = append(b.loops, l)
	b.mu.Unlock()
	return l
}

// onOwner runs f on the loop that owns s, following s if it moves.
func (b *Broker) onOwner(s *Session, f func(l *Loop)) {
	l := s.loop.Load()
	l.exec(func() {
		if cur := s.loop.Load(); cur != l {
			b.onOwner(s, f)
			return
		}
		f(l)
	})
}

// Publish routes a message from outside any client (the broker's own
// messages, a delayed will). Safe for concurrent use.
func (b *Broker) Publish(m *Message) {
	b.extMu.Lock()
	defer b.extMu.Unlock()
	b.ext.route(m)
	b.ext.dispatch()
	b.ext.forgetCongestion()
}

// PublishRetained routes m and stores it as retained when its Retain is set.
// Safe for concurrent use.
func (b *Broker) PublishRetained(m *Message) {
	if m.Retain && b.cfg.RetainAvailable {
		b.store.Retain(m, func(error) {})
	}
	b.Publish(m)
}

// Shutdown sends v5 clients DISCONNECT 0x8B (server shutting down), closes
// every connection and stops the $SYS publisher. It returns when every loop
// has run its part or the timeout passes.
func (b *Broker) Shutdown(timeout time.Duration) error {
	b.stopOnce.Do(func() { close(b.sysStop) })
	<-b.sysDone
	defer b.stopPark()
	b.mu.Lock()
	b.closing = true
	loops := append([]*Loop(nil), b.loops...)
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		if !l.exec(func() { defer wg.Done(); l.closeAll(codec.ServerShuttingDown) }) {
			wg.Done()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return errors.New("broker: shutdown timed out waiting for loops")
	}
}

func (b *Broker) isClosing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing
}

// assignClientID makes a unique client id for a client that sent none
// [MQTT-3.1.3-6].
func (b *Broker) assignClientID() string {
	return "flockmq-" + strconv.FormatUint(uint64(time.Now().UnixNano()), 36) + "-" + strconv.FormatUint(b.nextID.Add(1), 36)
}

// AllowedToPublish asks the ACL hook whether clientID may publish to topic;
// wills published on another node's behalf pass through it too. Safe for
// concurrent use.
func (b *Broker) AllowedToPublish(clientID string, username []byte, topic []byte) bool {
	return b.allowPublish(Access{ClientID: clientID, Username: username, Anonymous: len(username) == 0}, topic)
}

// allowPublish asks the ACL hook about a publish by a.
func (b *Broker) allowPublish(a Access, topic []byte) bool {
	if b.aauthz != nil {
		return b.aauthz.AllowPublish(a, topic)
	}
	return b.authz.CanPublish(a.ClientID, a.Username, topic)
}
