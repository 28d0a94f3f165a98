//go:build linux

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/bench"
	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
)

// Cluster tests: several flockmq processes on loopback that find each other
// through gossip (-join, -bootstrap-expect), with paho clients on every node.

// clusterNode is one node of a test cluster.
type clusterNode struct {
	*node
	id     string
	dir    string
	gossip string // host:port
	args   []string
}

// freePort returns a loopback port free for TCP and UDP at the time of the
// call (gossip uses both). It is drawn below the kernel's ephemeral range
// (32768 and up on Linux): the nodes bind their raft and peer ports with port
// 0, and a port the kernel handed out here and took back could be handed to
// one of them before the node it was meant for binds it.
func freePort(t *testing.T) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// startCluster starts n nodes that bootstrap raft together through gossip
// and waits until every one serves MQTT.
func startCluster(t *testing.T, n int, extra ...string) []*clusterNode {
	t.Helper()
	bin := nodetest.Build(t)
	nodes := make([]*clusterNode, n)
	var seeds []string
	for i := range nodes {
		nodes[i] = &clusterNode{id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(t.TempDir(), "data"),
			gossip: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))}
		seeds = append(seeds, nodes[i].gossip)
	}
	for _, cn := range nodes {
		_, gport, _ := net.SplitHostPort(cn.gossip)
		cn.args = append([]string{"-node-id", cn.id, "-data-dir", cn.dir, "-cluster-bind", "127.0.0.1",
			"-gossip-port", gport, "-raft-port", "0", "-peer-port", "0", "-join", strings.Join(seeds, ","),
			"-bootstrap-expect", strconv.Itoa(n), "-sys-interval", "0", "-dead-node-grace", "3s"}, extra...)
		cn.start(t, bin, "")
	}
	for _, cn := range nodes {
		if !cn.WaitServing(40 * time.Second) {
			t.Fatalf("%s did not start serving:\n%s", cn.id, cn.Log.String())
		}
	}
	return nodes
}

// start execs the node on a free MQTT port (or addr) without waiting.
func (cn *clusterNode) start(t *testing.T, bin, addr string) {
	t.Helper()
	if addr == "" {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	}
	cn.node = nodetest.Exec(t, bin, append([]string{"-listen", addr}, cn.args...)...)
	cn.Addr = addr
}

// v5c is a paho.golang client that collects what it receives.
type v5c struct {
	*paho.Client
	conn  net.Conn
	msgs  chan *paho.Publish
	gone  chan *paho.Disconnect
	mu    sync.Mutex
	count map[string]int // payloads received
}

// dial5 connects a v5 client to addr; cp may set session options.
func dial5(t *testing.T, addr, id string, cp *paho.Connect) (*v5c, *paho.Connack) {
	t.Helper()
	c, ca, err := tryDial5(addr, id, cp)
	if err != nil {
		t.Fatalf("connect %s to %s: %v (connack %+v)", id, addr, err, ca)
	}
	t.Cleanup(func() { c.conn.Close() })
	return c, ca
}

func tryDial5(addr, id string, cp *paho.Connect) (*v5c, *paho.Connack, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c := &v5c{conn: conn, msgs: make(chan *paho.Publish, 100000), gone: make(chan *paho.Disconnect, 1), count: map[string]int{}}
	c.Client = paho.NewClient(paho.ClientConfig{Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.mu.Lock()
			c.count[string(pr.Packet.Payload)]++
			c.mu.Unlock()
			c.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.gone <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	if cp == nil {
		cp = &paho.Connect{CleanStart: true, KeepAlive: 30}
	}
	cp.ClientID = id
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	return c, ca, nil
}

// disconnected waits up to timeout for the server's DISCONNECT to c and
// fails unless it carries rc; what names the situation.
func (c *v5c) disconnected(t *testing.T, rc byte, timeout time.Duration, what string) {
	t.Helper()
	select {
	case d := <-c.gone:
		if d.ReasonCode != rc {
			t.Fatalf("%s: DISCONNECT %#x, want %#x", what, d.ReasonCode, rc)
		}
	case <-time.After(timeout):
		t.Fatalf("%s: no DISCONNECT within %v", what, timeout)
	}
}

func (c *v5c) sub(t *testing.T, opts ...paho.SubscribeOptions) *paho.Suback {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if err != nil {
		t.Fatalf("subscribe %v: %v", opts, err)
	}
	for i, r := range sa.Reasons {
		if r >= 0x80 {
			t.Fatalf("subscribe %v: reason %#x for %d", opts, r, i)
		}
	}
	return sa
}

func (c *v5c) subID(t *testing.T, id int, opts ...paho.SubscribeOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts, Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &id}}); err != nil {
		t.Fatalf("subscribe %v: %v", opts, err)
	}
}

func (c *v5c) pub(t *testing.T, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
	return r
}

func (c *v5c) next(t *testing.T, timeout time.Duration) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
		return nil
	}
}

// none checks that nothing arrives within d.
func (c *v5c) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.msgs:
		t.Fatalf("unexpected message %s %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// routed publishes probes to topic from pubc until sub receives one, and
// returns how long that took; it fails after timeout.
func routed(t *testing.T, pubc, subc *v5c, topic string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for i := 0; time.Since(start) < timeout; i++ {
		pubc.pub(t, &paho.Publish{Topic: topic, Payload: []byte("probe-" + strconv.Itoa(i))})
		select {
		case m := <-subc.msgs:
			if strings.HasPrefix(string(m.Payload), "probe-") {
				d := time.Since(start)
				drainProbes(subc)
				return d
			}
			t.Fatalf("unexpected message %s %q while probing", m.Topic, m.Payload)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("%s not routed within %v", topic, timeout)
	return 0
}

// drainProbes drops probe messages still arriving.
func drainProbes(c *v5c) {
	for {
		select {
		case m := <-c.msgs:
			if !strings.HasPrefix(string(m.Payload), "probe-") {
				c.msgs <- m // not ours: keep it (order is lost only for probes)
				return
			}
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}

// TestClusterPublishAcrossNodes checks, across three node processes, that a
// publish on one node reaches the subscribers of every node once, in order,
// with its QoS, properties, subscription identifiers, No Local and Retain As
// Published; that retained messages are served on every node; and that
// shared groups deliver each message once cluster-wide.
func TestClusterPublishAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	pub, _ := dial5(t, n1.Addr, "pub", nil)
	s2, _ := dial5(t, n2.Addr, "s2", nil)
	s2.subID(t, 7, paho.SubscribeOptions{Topic: "c/#", QoS: 1})
	took := routed(t, pub, s2, "c/probe", 5*time.Second)
	t.Logf("subscription on n2 routable from n1 after %v", took)
	if took > 2*time.Second {
		t.Errorf("route took %v, want within a second or two on loopback", took)
	}
	s3, _ := dial5(t, n3.Addr, "s3", nil)
	s3.sub(t, paho.SubscribeOptions{Topic: "c/+/x", QoS: 2, RetainAsPublished: true})
	routed(t, pub, s3, "c/probe/x", 5*time.Second)
	drainProbes(s2)
	// No Local: the publisher's own subscription skips its messages, on
	// its node, while the other nodes still get them.
	pub.sub(t, paho.SubscribeOptions{Topic: "c/#", QoS: 1, NoLocal: true})

	const n = 200
	expiry := uint32(600)
	for i := range n {
		pub.pub(t, &paho.Publish{Topic: "c/a/x", QoS: 1, Payload: []byte(strconv.Itoa(i)),
			Properties: &paho.PublishProperties{MessageExpiry: &expiry, ContentType: "text/plain",
				User: paho.UserProperties{{Key: "k", Value: "v" + strconv.Itoa(i)}}}})
	}
	for i := range n {
		m := s2.next(t, 10*time.Second)
		if string(m.Payload) != strconv.Itoa(i) || m.QoS != 1 {
			t.Fatalf("n2 message %d: %q qos %d, want %d in order at QoS 1", i, m.Payload, m.QoS, i)
		}
		if m.Properties == nil || m.Properties.SubscriptionIdentifier == nil || *m.Properties.SubscriptionIdentifier != 7 {
			t.Fatalf("n2 message %d: subscription identifier %+v, want 7", i, m.Properties)
		}
		if m.Properties.ContentType != "text/plain" || m.Properties.User.Get("k") != "v"+strconv.Itoa(i) ||
			m.Properties.MessageExpiry == nil || *m.Properties.MessageExpiry > expiry || *m.Properties.MessageExpiry < expiry-5 {
			t.Fatalf("n2 message %d: properties %+v", i, m.Properties)
		}
		m3 := s3.next(t, 10*time.Second)
		if string(m3.Payload) != strconv.Itoa(i) || m3.QoS != 1 {
			t.Fatalf("n3 message %d: %q qos %d", i, m3.Payload, m3.QoS)
		}
	}
	pub.none(t, 200*time.Millisecond) // No Local

	// QoS 2 end to end: granted 2 on n3, 1 on n2.
	pub.pub(t, &paho.Publish{Topic: "c/q2/x", QoS: 2, Payload: []byte("two")})
	if m := s3.next(t, 5*time.Second); m.QoS != 2 || string(m.Payload) != "two" {
		t.Fatalf("n3 got %q at QoS %d, want two at 2", m.Payload, m.QoS)
	}
	if m := s2.next(t, 5*time.Second); m.QoS != 1 || string(m.Payload) != "two" {
		t.Fatalf("n2 got %q at QoS %d, want two at 1", m.Payload, m.QoS)
	}

	// Retained: stored once through raft, flagged per Retain As Published.
	pub.pub(t, &paho.Publish{Topic: "c/r/x", QoS: 1, Retain: true, Payload: []byte("kept")})
	if m := s3.next(t, 5*time.Second); !m.Retain || string(m.Payload) != "kept" {
		t.Fatalf("n3 (retain as published) got %q retain %v", m.Payload, m.Retain)
	}
	if m := s2.next(t, 5*time.Second); m.Retain || string(m.Payload) != "kept" {
		t.Fatalf("n2 got %q retain %v, want retain 0", m.Payload, m.Retain)
	}
	// Another node serves it once it has applied the entry (the PUBACK
	// waited for the commit on n1 only): poll with new subscribers.
	for _, cn := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			late, _ := dial5(t, cn.Addr, "late-"+cn.id+"-"+strconv.Itoa(i), nil)
			late.sub(t, paho.SubscribeOptions{Topic: "c/r/x", QoS: 1})
			select {
			case m := <-late.msgs:
				if !m.Retain || string(m.Payload) != "kept" {
					t.Fatalf("%s: retained message %q retain %v", cn.id, m.Payload, m.Retain)
				}
			case <-time.After(200 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatalf("%s never served the retained message", cn.id)
				}
				late.conn.Close()
				continue
			}
			break
		}
	}

	// No subscriber anywhere: 0x10; one on another node only: success.
	if r := pub.pub(t, &paho.Publish{Topic: "nobody/x", QoS: 1}); r.ReasonCode != 0x10 {
		t.Fatalf("publish to nobody: reason %#x, want 0x10", r.ReasonCode)
	}
	if r := pub.pub(t, &paho.Publish{Topic: "c/z", QoS: 1, Payload: []byte("z")}); r.ReasonCode != 0 {
		t.Fatalf("publish to a subscriber on n2: reason %#x, want 0", r.ReasonCode)
	}
	s2.next(t, 5*time.Second)
}

// TestClusterSharedSubscriptions checks that $share and $queue groups with
// members on several nodes get each message once per group.
func TestClusterSharedSubscriptions(t *testing.T) {
	nodes := startCluster(t, 3)
	var members []*v5c
	for i, cn := range nodes {
		m, _ := dial5(t, cn.Addr, "m"+strconv.Itoa(i), nil)
		m.sub(t, paho.SubscribeOptions{Topic: "$share/g/s/#", QoS: 1})
		members = append(members, m)
	}
	q, _ := dial5(t, nodes[1].Addr, "queue", nil)
	q.sub(t, paho.SubscribeOptions{Topic: "$queue/s/#", QoS: 1})
	pub, _ := dial5(t, nodes[2].Addr, "pub", nil)
	// Wait until the group's remote members are routable from the
	// publisher's node: a message to it reaches each member in turn.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pub.pub(t, &paho.Publish{Topic: "s/warm", QoS: 1, Payload: []byte("probe-w")})
		time.Sleep(20 * time.Millisecond)
		ok := true
		for _, m := range members {
			m.mu.Lock()
			ok = ok && m.count["probe-w"] > 0
			m.mu.Unlock()
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("shared group members on every node never all received")
		}
	}
	const n = 90
	for i := range n {
		pub.pub(t, &paho.Publish{Topic: "s/x", QoS: 1, Payload: []byte("m" + strconv.Itoa(i))})
	}
	// Count the deliveries of m0..m89 to the group (probes are left out);
	// wait until n arrived, then for anything extra to show up.
	got := map[string]int{}
	perMember := make([]int, len(members))
	count := func() int {
		clear(got)
		total := 0
		for i, m := range members {
			m.mu.Lock()
			perMember[i] = 0
			for p, c := range m.count {
				if strings.HasPrefix(p, "m") {
					got[p] += c
					perMember[i] += c
					total += c
				}
			}
			m.mu.Unlock()
		}
		return total
	}
	deadline = time.Now().Add(10 * time.Second)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("group g delivered %d of %d", count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // an absence check: a duplicate would have come by now
	count()
	for i := range n {
		if c := got["m"+strconv.Itoa(i)]; c != 1 {
			t.Fatalf("message m%d delivered %d times to group g, want once", i, c)
		}
	}
	for i, c := range perMember {
		if c == 0 {
			t.Errorf("member on %s got none of %d messages", nodes[i].id, n)
		}
	}
	t.Logf("group g members on n1..n3 got %v", perMember)
	for i := range n {
		m := q.next(t, 5*time.Second)
		for strings.HasPrefix(string(m.Payload), "probe-") {
			m = q.next(t, 5*time.Second)
		}
		if string(m.Payload) != "m"+strconv.Itoa(i) {
			t.Fatalf("$queue member got %q, want m%d", m.Payload, i)
		}
	}
	q.none(t, 200*time.Millisecond)
}

// TestClusterOneConnectionPerClientID races two clients with one client id
// on two nodes: after both connects, exactly one connection stays.
func TestClusterOneConnectionPerClientID(t *testing.T) {
	nodes := startCluster(t, 3)
	for round := range 5 {
		id := "twin-" + strconv.Itoa(round)
		var wg sync.WaitGroup
		cs := make([]*v5c, 2)
		for i := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, _, err := tryDial5(nodes[i].Addr, id, &paho.Connect{CleanStart: false, KeepAlive: 30,
					Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(60))}})
				if err == nil {
					cs[i] = c
				}
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for {
			alive := 0
			for _, c := range cs {
				if c != nil && connected(c) {
					alive++
				}
			}
			if alive == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d connections of %s still served", round, alive, id)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, c := range cs {
			if c != nil {
				c.conn.Close()
			}
		}
	}
}

// connected reports whether the broker still serves c: a ping round trip
// succeeds and no DISCONNECT came.
func connected(c *v5c) bool {
	select {
	case <-c.gone:
		return false
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ping/" + strconv.Itoa(int(time.Now().UnixNano()%1000)), QoS: 0}}})
	return err == nil
}

func ptr[T any](v T) *T { return &v }

// TestClusterSessionTakeover moves a persistent session between live nodes:
// the reconnect on another node gets session present, its unacknowledged
// messages again with DUP and their packet ids, PUBREL for a QoS 2 message
// past PUBREC, its inbound QoS 2 state, its offline queue, and the messages
// published during the move, each once and in order.
func TestClusterSessionTakeover(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	expiry := codec.Properties{}
	expiry.Set(codec.PropSessionExpiry)
	expiry.SessionExpiry = 300

	m := dialMQTT(t, n1.Addr, "mover", codec.V5)
	m.connect(codec.ConnectPacket{ClientID: []byte("mover"), CleanStart: true, Props: expiry})
	m.subscribe(1, 0, codec.Subscription{Filter: []byte("mv/#"), QoS: 1}, codec.Subscription{Filter: []byte("mv2/#"), QoS: 2})
	pub, _ := dial5(t, n3.Addr, "pub", nil)
	// Until the subscription is routable from n3.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pub.pub(t, &paho.Publish{Topic: "mv/probe", Payload: []byte("probe")})
		if pk := m.next(50 * time.Millisecond); pk != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mover's subscription never routable from n3")
		}
	}
	for pk := m.next(200 * time.Millisecond); pk != nil; pk = m.next(200 * time.Millisecond) {
	}

	for i := range 20 {
		pub.pub(t, &paho.Publish{Topic: "mv/a", QoS: 1, Payload: []byte("a" + strconv.Itoa(i))})
	}
	ids := map[string]uint16{}
	for i := range 20 {
		p := m.expect(codec.Publish, 10*time.Second).Publish
		if string(p.Payload) != "a"+strconv.Itoa(i) {
			t.Fatalf("got %q, want a%d", p.Payload, i)
		}
		ids[string(p.Payload)] = p.PacketID
		if i < 5 {
			m.ack(codec.Puback, p.PacketID)
		}
	}
	pub.pub(t, &paho.Publish{Topic: "mv2/a", QoS: 2, Payload: []byte("b0")})
	pub.pub(t, &paho.Publish{Topic: "mv2/a", QoS: 2, Payload: []byte("b1")})
	b0 := m.expect(codec.Publish, 10*time.Second).Publish
	b1 := m.expect(codec.Publish, 10*time.Second).Publish
	if string(b0.Payload) != "b0" || string(b1.Payload) != "b1" || b0.QoS != 2 {
		t.Fatalf("got %q %q", b0.Payload, b1.Payload)
	}
	m.ack(codec.Pubrec, b0.PacketID)
	if rel := m.expect(codec.Pubrel, 10*time.Second); rel.Ack.PacketID != b0.PacketID {
		t.Fatalf("PUBREL %d, want %d", rel.Ack.PacketID, b0.PacketID)
	}
	// An inbound QoS 2 publish left before its PUBREL.
	m.send(codec.AppendPublish(nil, &codec.PublishPacket{Topic: []byte("in/q2"), QoS: 2, PacketID: 77, Payload: []byte("x")}, codec.V5))
	if rec := m.expect(codec.Pubrec, 10*time.Second); rec.Ack.PacketID != 77 {
		t.Fatalf("PUBREC %d, want 77", rec.Ack.PacketID)
	}
	m.conn.Close() // gone without DISCONNECT: the session stays on n1

	for i := range 10 {
		pub.pub(t, &paho.Publish{Topic: "mv/a", QoS: 1, Payload: []byte("c" + strconv.Itoa(i))})
	}
	// Publish all through the move, from a node that is neither side.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 100 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := pub.Publish(ctx, &paho.Publish{Topic: "mv/e", QoS: 1, Payload: []byte("e" + strconv.Itoa(i))})
			cancel()
			if err != nil {
				t.Errorf("publish e%d: %v", i, err)
				return
			}
		}
	}()

	m2 := dialMQTT(t, n2.Addr, "mover-2", codec.V5)
	ack := m2.connect(codec.ConnectPacket{ClientID: []byte("mover"), CleanStart: false, Props: expiry})
	if !ack.SessionPresent {
		t.Fatal("session present 0 after moving to n2")
	}
	// The inflight messages again, with DUP and their ids, then PUBREL.
	for i := 5; i < 20; i++ {
		p := m2.expect(codec.Publish, 10*time.Second).Publish
		want := "a" + strconv.Itoa(i)
		if string(p.Payload) != want || !p.Dup || p.PacketID != ids[want] {
			t.Fatalf("resent %q dup %v id %d, want %s with DUP and id %d", p.Payload, p.Dup, p.PacketID, want, ids[want])
		}
		m2.ack(codec.Puback, p.PacketID)
	}
	var rest []*codec.Packet
	gotRel, gotB1 := false, false
	for !gotRel || !gotB1 {
		pk := m2.next(10 * time.Second)
		if pk == nil {
			t.Fatalf("PUBREL %v, b1 %v after the move", gotRel, gotB1)
		}
		switch {
		case pk.Type == codec.Pubrel && pk.Ack.PacketID == b0.PacketID:
			gotRel = true
			m2.ack(codec.Pubcomp, b0.PacketID)
		case pk.Type == codec.Publish && string(pk.Publish.Payload) == "b1":
			if !pk.Publish.Dup || pk.Publish.PacketID != b1.PacketID {
				t.Fatalf("b1 resent dup %v id %d, want DUP id %d", pk.Publish.Dup, pk.Publish.PacketID, b1.PacketID)
			}
			gotB1 = true
			m2.ack(codec.Pubrec, b1.PacketID)
		default:
			rest = append(rest, pk)
		}
	}
	m2.held = append(rest, m2.held...)
	// The inbound QoS 2 state came along: PUBREL 77 completes.
	m2.ack(codec.Pubrel, 77)
	// Then the queue, in order, and what was published during the move,
	// each once: a message that reached only the old node (the publisher's
	// node had not learnt the new route yet) comes on through the stub, and
	// may come after a later one that took the direct path (docs/cluster.md).
	next := map[string]int{"c": 0}
	gotE := map[string]int{}
	reordered := 0
	for next["c"] < 10 || len(gotE) < 100 {
		pk := m2.next(10 * time.Second)
		if pk == nil {
			t.Fatalf("after the move got c0..c%d and %d of the 100 e messages, then nothing", next["c"]-1, len(gotE))
		}
		switch pk.Type {
		case codec.Pubcomp:
			if pk.Ack.PacketID != 77 || pk.Ack.Reason != codec.Success {
				t.Fatalf("PUBCOMP %d reason %#x, want 77 success: the inbound QoS 2 state was lost", pk.Ack.PacketID, byte(pk.Ack.Reason))
			}
			continue
		case codec.Pubrel:
			m2.ack(codec.Pubcomp, pk.Ack.PacketID)
			continue
		case codec.Publish:
		default:
			t.Fatalf("unexpected %s", pkString(pk))
		}
		p := pk.Publish
		if key := string(p.Payload[:1]); key == "c" {
			if want := key + strconv.Itoa(next[key]); string(p.Payload) != want {
				t.Fatalf("got %q, want %s (the queue once, in order)", p.Payload, want)
			}
			next[key]++
		} else {
			if gotE[string(p.Payload)]++; gotE[string(p.Payload)] > 1 {
				t.Fatalf("%q twice", p.Payload)
			}
			if string(p.Payload) != "e"+strconv.Itoa(len(gotE)-1) {
				reordered++
			}
		}
		if p.QoS == 1 {
			m2.ack(codec.Puback, p.PacketID)
		}
	}
	if reordered > 0 {
		t.Logf("%d of the messages published during the move came out of order", reordered)
	}
	wg.Wait()
	pub.pub(t, &paho.Publish{Topic: "mv/a", QoS: 1, Payload: []byte("d0")})
	for {
		pk := m2.next(10 * time.Second)
		if pk == nil {
			t.Fatal("no message after the move completed")
		}
		if pk.Type == codec.Pubcomp {
			continue
		}
		if pk.Type == codec.Pubrel { // b1's, after our PUBREC
			m2.ack(codec.Pubcomp, pk.Ack.PacketID)
			continue
		}
		if pk.Type != codec.Publish || string(pk.Publish.Payload) != "d0" {
			t.Fatalf("got %s, want d0", pkString(pk))
		}
		m2.ack(codec.Puback, pk.Publish.PacketID)
		break
	}
	m2.quiet(500 * time.Millisecond) // nothing twice
}

// TestClusterNodeFailure kills nodes: the wills of a crashed node's clients
// are published once cluster-wide, delayed ones after their delay; its
// persistent sessions resume elsewhere from the registry; its routes go after
// the grace period; and with quorum lost the last node closes its claimed
// connections (0x9C, the quorum fence), refuses claims with 0x88 (v5) and
// 0x03 (3.1.1), and, with -netsplit-clean-sessions, accepts and serves clean
// sessions locally.
func TestClusterNodeFailure(t *testing.T) {
	nodes := startCluster(t, 3, "-netsplit-clean-sessions", "true")
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	w1, _ := dial5(t, n1.Addr, "watch1", nil)
	w1.sub(t, paho.SubscribeOptions{Topic: "will/#", QoS: 1})
	w2, _ := dial5(t, n2.Addr, "watch2", nil)
	w2.sub(t, paho.SubscribeOptions{Topic: "will/#", QoS: 1})
	persist := &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(300))}
	victim, _ := dial5(t, n3.Addr, "victim", &paho.Connect{CleanStart: true, KeepAlive: 30, Properties: persist,
		WillMessage: &paho.WillMessage{Topic: "will/victim", QoS: 1, Payload: []byte("gone")}})
	victim.sub(t, paho.SubscribeOptions{Topic: "fail/#", QoS: 1})
	delayed, _ := dial5(t, n3.Addr, "delayed", &paho.Connect{CleanStart: true, KeepAlive: 30, Properties: persist,
		WillMessage:    &paho.WillMessage{Topic: "will/delayed", QoS: 1, Payload: []byte("later")},
		WillProperties: &paho.WillProperties{WillDelayInterval: ptr(uint32(2))}})
	_ = delayed
	only3, _ := dial5(t, n3.Addr, "only3", nil)
	only3.sub(t, paho.SubscribeOptions{Topic: "only3/x", QoS: 1})
	pub, _ := dial5(t, n1.Addr, "pub", nil)
	routed(t, pub, victim, "fail/probe", 10*time.Second)
	routed(t, pub, only3, "only3/x", 10*time.Second)

	killed := time.Now()
	n3.Kill9(t)
	// Each will once on every other node; the delayed one not before its
	// delay.
	for _, w := range []*v5c{w1, w2} {
		got := map[string]time.Duration{}
		for len(got) < 2 {
			m := w.next(t, 30*time.Second)
			if _, dup := got[m.Topic]; dup {
				t.Fatalf("will %s delivered twice", m.Topic)
			}
			got[m.Topic] = time.Since(killed)
		}
		if got["will/delayed"] < 2*time.Second {
			t.Fatalf("delayed will after %v, before its 2s delay", got["will/delayed"])
		}
		t.Logf("wills after the kill: %v", got)
	}
	w1.none(t, 500*time.Millisecond)

	// The victim's session resumes on n1 from the registry.
	back, ca := dial5(t, n1.Addr, "victim", &paho.Connect{CleanStart: false, KeepAlive: 30, Properties: persist})
	if !ca.SessionPresent {
		t.Fatal("victim's session not present on n1 after its node died")
	}
	pub.pub(t, &paho.Publish{Topic: "fail/x", QoS: 1, Payload: []byte("after")})
	if m := back.next(t, 5*time.Second); string(m.Payload) != "after" {
		t.Fatalf("got %q", m.Payload)
	}
	// n3's routes go after the grace: nobody subscribes only3/x any more.
	deadline := time.Now().Add(20 * time.Second)
	for pub.pub(t, &paho.Publish{Topic: "only3/x", QoS: 1}).ReasonCode != 0x10 {
		if time.Now().After(deadline) {
			t.Fatal("the dead node's route was never dropped")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Quorum lost: n1 alone of three voters. Past quorum-fence (3 s) without
	// a leader, n1 closes the connections whose sessions hold a claim.
	local, _ := dial5(t, n1.Addr, "local-sub", nil)
	local.sub(t, paho.SubscribeOptions{Topic: "local/#", QoS: 1})
	lost := time.Now()
	n2.Kill9(t)
	select {
	case d := <-local.gone:
		if d.ReasonCode != byte(codec.UseAnotherServer) {
			t.Fatalf("claimed connection without quorum closed with %#x, want 0x9C", d.ReasonCode)
		}
		t.Logf("claimed connection closed %v after the quorum was lost", time.Since(lost).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("a claimed connection stayed served 20 s after the quorum was lost")
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		c, ca, err := tryDial5(n1.Addr, "late-persistent", &paho.Connect{CleanStart: false, KeepAlive: 30, Properties: persist})
		if err != nil && ca != nil && ca.ReasonCode == 0x88 {
			break
		}
		if c != nil {
			c.conn.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("persistent connect without quorum: %v %+v, want CONNACK 0x88", err, ca)
		}
	}
	raw := dialMQTT(t, n1.Addr, "v3", codec.V311)
	raw.send(codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V311, ClientID: []byte("v3-persistent"), KeepAlive: 30}))
	if ack := raw.expect(codec.Connack, 30*time.Second).Connack; ack.Reason != 0x03 {
		t.Fatalf("3.1.1 persistent connect without quorum: CONNACK %#x, want 0x03", byte(ack.Reason))
	}
	// Clean sessions are served locally (-netsplit-clean-sessions) once
	// raft has no leader; they hold no claim, so the fence leaves them be.
	cleanDial := func(id string) *v5c {
		for {
			c, ca, err := tryDial5(n1.Addr, id, nil)
			if err == nil {
				t.Cleanup(func() { c.conn.Close() })
				return c
			}
			if ca == nil || ca.ReasonCode != 0x88 || time.Now().After(deadline) {
				t.Fatalf("clean connect without quorum: %v %+v, want success once raft has no leader", err, ca)
			}
		}
	}
	localSub := cleanDial("clean-sub-in-minority")
	localSub.sub(t, paho.SubscribeOptions{Topic: "local/#", QoS: 1})
	clean := cleanDial("clean-in-minority")
	for i := range 3 { // across the fence's repeated passes (every second)
		payload := fmt.Sprintf("still-%d", i)
		clean.pub(t, &paho.Publish{Topic: "local/x", QoS: 1, Payload: []byte(payload)})
		if m := localSub.next(t, 5*time.Second); string(m.Payload) != payload {
			t.Fatalf("got %q, want %q", m.Payload, payload)
		}
		localSub.none(t, time.Second)
	}
	select {
	case d := <-localSub.gone:
		t.Fatalf("clean session of the minority closed with %#x", d.ReasonCode)
	default:
	}
}

// TestClusterRoutesUnderChurn is a property test of the route tables across
// three node processes: after random subscribes, unsubscribes and
// disconnects on every node, each node routes exactly what the others'
// subscriptions need. For every topic of a fixed set and every publishing
// node, a QoS 1 publish reaches each matching client once, and a topic that
// no live subscription matches gets 0x10 (so no node keeps a stale route).
func TestClusterRoutesUnderChurn(t *testing.T) {
	nodes := startCluster(t, 3)
	filters := []string{"p/a/x", "p/+/x", "p/#", "p/b/+", "p/c/y", "+/a/x", "q/+", "$share/g/p/a/#", "$queue/q/z"}
	topics := []string{"p/a/x", "p/b/x", "p/b/y", "p/c/y", "p/c/x", "q/z", "q/w", "r/a/x"}
	type client struct {
		c    *v5c
		node int
		subs map[string]bool
		name string
	}
	var clients []*client
	connect := func(cl *client) {
		c, _ := dial5(t, nodes[cl.node].Addr, cl.name, nil)
		cl.c, cl.subs = c, map[string]bool{}
	}
	for i := range 12 {
		cl := &client{node: i % 3, name: "churn-" + strconv.Itoa(i)}
		connect(cl)
		clients = append(clients, cl)
	}
	rng := newRand(t)
	for range 300 {
		cl := clients[rng.IntN(len(clients))]
		switch op := rng.IntN(10); {
		case op < 5:
			f := filters[rng.IntN(len(filters))]
			cl.c.sub(t, paho.SubscribeOptions{Topic: f, QoS: 1})
			cl.subs[f] = true
		case op < 8 && len(cl.subs) > 0:
			for f := range cl.subs {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if _, err := cl.c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{f}}); err != nil {
					t.Fatalf("unsubscribe %s: %v", f, err)
				}
				cancel()
				delete(cl.subs, f)
				break
			}
		case op >= 8:
			cl.c.conn.Close() // a clean session: its subscriptions end
			cl.node = rng.IntN(3)
			connect(cl)
		}
	}
	pubs := make([]*v5c, len(nodes))
	for i, cn := range nodes {
		pubs[i], _ = dial5(t, cn.Addr, "churn-pub-"+strconv.Itoa(i), nil)
	}
	// Expected receivers per topic: plain matches per client; a shared
	// group ($share/g or $queue) once, by one of its members.
	matchAny := func(cl *client, topic string) (plain bool, groups []string) {
		for f := range cl.subs {
			g, tf := "", f
			switch {
			case strings.HasPrefix(f, "$share/g/"):
				g, tf = "g", strings.TrimPrefix(f, "$share/g/")
			case strings.HasPrefix(f, "$queue/"):
				g, tf = "$queue", strings.TrimPrefix(f, "$queue/")
			}
			if topicMatches(tf, topic) {
				if g == "" {
					plain = true
				} else {
					groups = append(groups, g)
				}
			}
		}
		return plain, groups
	}
	// want is, per payload of a round, the plain receivers and the number
	// of groups that must each get one copy.
	type expect struct {
		plain  map[*client]bool
		groups int
	}
	churned := time.Now()
	deadline := churned.Add(20 * time.Second)
	for round := 0; ; round++ {
		bad := ""
		want := map[string]expect{}
		for pi, p := range pubs {
			for _, topic := range topics {
				payload := fmt.Sprintf("r%d-%d-%s", round, pi, topic)
				e := expect{plain: map[*client]bool{}}
				gs := map[string]bool{}
				for _, cl := range clients {
					plain, groups := matchAny(cl, topic)
					if plain {
						e.plain[cl] = true
					}
					for _, g := range groups {
						gs[g] = true
					}
				}
				e.groups = len(gs)
				want[payload] = e
				r := p.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
				if none := len(e.plain) == 0 && e.groups == 0; none != (r.ReasonCode == 0x10) && bad == "" {
					bad = fmt.Sprintf("publish %s on n%d: reason %#x, want no subscriber: %v", topic, pi+1, r.ReasonCode, none)
				}
			}
		}
		counts := func(payload string) (total int, per map[*client]int) {
			per = map[*client]int{}
			for _, cl := range clients {
				cl.c.mu.Lock()
				per[cl] = cl.c.count[payload]
				cl.c.mu.Unlock()
				total += per[cl]
			}
			return total, per
		}
		until := time.Now().Add(5 * time.Second)
		for payload, e := range want {
			if bad != "" {
				break
			}
			need := len(e.plain) + e.groups
			for {
				total, per := counts(payload)
				if total < need && time.Now().Before(until) {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if total != need {
					bad = fmt.Sprintf("%q delivered %d times, want %d (%d plain, %d groups)", payload, total, need, len(e.plain), e.groups)
				}
				for cl := range e.plain {
					if per[cl] == 0 {
						bad = fmt.Sprintf("%s on n%d did not get %q", cl.name, cl.node+1, payload)
					}
				}
				break
			}
		}
		if bad == "" {
			t.Logf("routes right at round %d, %v after the churn", round, time.Since(churned))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes never converged: %s", bad)
		}
		t.Logf("round %d (%v after the churn): %s; again", round, time.Since(churned), bad)
	}
}

// newRand returns a random source whose seed is logged.
func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, 1))
}

// topicMatches is MQTT matching of a topic filter, for test models.
func topicMatches(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// TestClusterLeaveRejoinGrow stops the raft leader with SIGTERM (leadership
// moves, the others drop its routes), restarts it on its data dir (it
// rejoins as itself), then adds a fourth node, which the leader adds to raft
// as a non-voter with no manual step; $SYS/cluster/... reports each state.
func TestClusterLeaveRejoinGrow(t *testing.T) {
	nodes := startCluster(t, 3, "-sys-interval", "1s")
	sysOf := func(addr, id string) *v5c {
		c, _ := dial5(t, addr, id, nil)
		c.sub(t, paho.SubscribeOptions{Topic: "$SYS/cluster/#", QoS: 0})
		return c
	}
	// waitSys waits until topic has a value for which ok holds.
	waitSys := func(c *v5c, topic string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			select {
			case m := <-c.msgs:
				if m.Topic == topic && ok(string(m.Payload)) {
					return string(m.Payload)
				}
			case <-time.After(time.Until(deadline)):
				t.Fatalf("%s never satisfied the condition", topic)
			}
		}
	}
	watch := sysOf(nodes[0].Addr, "sys-watch")
	leader := waitSys(watch, "$SYS/cluster/raft/leader", func(v string) bool { return v != "" })
	waitSys(watch, "$SYS/cluster/nodes/alive", func(v string) bool { return v == "3" })
	var ln *clusterNode
	var other *clusterNode
	for _, cn := range nodes {
		if cn.id == leader {
			ln = cn
		} else {
			other = cn
		}
	}
	if ln == nil {
		t.Fatalf("leader %q is not a node of the test", leader)
	}
	// A subscriber on the leader only; routable from another node.
	onLeader, _ := dial5(t, ln.Addr, "on-leader", nil)
	onLeader.sub(t, paho.SubscribeOptions{Topic: "leaver/x", QoS: 1})
	pub, _ := dial5(t, other.Addr, "pub-other", nil)
	routed(t, pub, onLeader, "leaver/x", 10*time.Second)
	watch2 := sysOf(other.Addr, "sys-watch-2")

	if err := ln.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := ln.ExitStatus(t, 20*time.Second); st != 0 {
		t.Fatalf("leader exited with %d on SIGTERM", st)
	}
	if !strings.Contains(ln.Log.String(), "leadership transferred") {
		t.Errorf("the leader did not transfer leadership before leaving:\n%s", ln.Log.String())
	}
	newLeader := waitSys(watch2, "$SYS/cluster/raft/leader", func(v string) bool { return v != "" && v != leader })
	t.Logf("leader %s left; %s leads", leader, newLeader)
	deadline := time.Now().Add(2 * time.Second) // under the 3s dead-node grace: the leave dropped them
	for pub.pub(t, &paho.Publish{Topic: "leaver/x", QoS: 1}).ReasonCode != 0x10 {
		if time.Now().After(deadline) {
			t.Fatal("the leaving node's route outlived its leave")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Back on its data dir, as itself.
	bin := nodetest.Build(t)
	ln.start(t, bin, ln.Addr)
	if !ln.WaitServing(40 * time.Second) {
		t.Fatalf("%s did not come back:\n%s", ln.id, ln.Log.String())
	}
	if strings.Contains(ln.Log.String(), "raft bootstrapped") {
		t.Fatal("the restarted node bootstrapped raft again")
	}
	waitSys(watch2, "$SYS/cluster/nodes/alive", func(v string) bool { return v == "3" })
	back, _ := dial5(t, ln.Addr, "on-leader-again", nil)
	back.sub(t, paho.SubscribeOptions{Topic: "leaver/y", QoS: 1})
	routed(t, pub, back, "leaver/y", 10*time.Second)

	// A fourth node joins the running cluster.
	n4 := &clusterNode{id: "n4", dir: filepath.Join(t.TempDir(), "data"),
		gossip: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))}
	_, gport, _ := net.SplitHostPort(n4.gossip)
	n4.args = []string{"-node-id", "n4", "-data-dir", n4.dir, "-cluster-bind", "127.0.0.1", "-gossip-port", gport,
		"-raft-port", "0", "-peer-port", "0", "-join", nodes[0].gossip + "," + nodes[1].gossip,
		"-bootstrap-expect", "3", "-sys-interval", "1s", "-dead-node-grace", "3s"}
	n4.start(t, bin, "")
	if !n4.WaitServing(40 * time.Second) {
		t.Fatalf("n4 did not start serving:\n%s", n4.Log.String())
	}
	waitSys(watch2, "$SYS/cluster/nodes/alive", func(v string) bool { return v == "4" })
	added := false
	for _, cn := range append(nodes, n4) {
		log := cn.Log.String()
		added = added || (strings.Contains(log, "node added to raft") && strings.Contains(log, "node=n4") && strings.Contains(log, "voter=false"))
	}
	if !added {
		t.Fatal("no leader logged adding n4 as a non-voter")
	}
	s4, _ := dial5(t, n4.Addr, "on-n4", nil)
	s4.sub(t, paho.SubscribeOptions{Topic: "n4/x", QoS: 1})
	routed(t, pub, s4, "n4/x", 10*time.Second)
	w4 := sysOf(n4.Addr, "sys-watch-4")
	// pub and sys-watch-2 on one node, on-leader-again on another, on-n4
	// and sys-watch-4 on n4: five at least, counted across the nodes.
	if v := waitSys(w4, "$SYS/cluster/clients/connected", func(v string) bool { n, _ := strconv.Atoi(v); return n >= 5 }); v == "" {
		t.Fatal("no cluster-wide client count")
	}
}

// TestClusterPausedNodeRecovers stops a node (SIGSTOP) until the others
// declare it dead, then resumes it: it closes the connections it served with
// a claim (0x9C, the quorum fence), serves claims again (the leader lifts the
// fence NodeDown put on its boot), and routes as before.
func TestClusterPausedNodeRecovers(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n3 := nodes[0], nodes[2]
	watch, _ := dial5(t, n1.Addr, "watch", nil)
	watch.sub(t, paho.SubscribeOptions{Topic: "paused/#", QoS: 1})
	held, _ := dial5(t, n3.Addr, "held-through-pause", &paho.Connect{CleanStart: true, KeepAlive: 0,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(60))}})
	// A persistent QoS 2 subscriber of n3, offline: what n1 forwards to it
	// queues on n3.
	persist := &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(60))}
	moved, _ := dial5(t, n3.Addr, "moved-through-pause", &paho.Connect{CleanStart: true, KeepAlive: 0, Properties: persist})
	moved.sub(t, paho.SubscribeOptions{Topic: "late/x", QoS: 2})
	pubLate, _ := dial5(t, n1.Addr, "pub-late", nil)
	routed(t, pubLate, moved, "late/x", 20*time.Second)
	moved.Disconnect(&paho.Disconnect{})
	moved.conn.Close()
	if err := n3.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		pubLate.pub(t, &paho.Publish{Topic: "late/x", QoS: 2, Payload: []byte("before-" + strconv.Itoa(i))})
	}
	// Until the leader has fenced n3's boot.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(nodes[0].Log.String()+nodes[1].Log.String(), "node lost: its boot fenced") {
		if time.Now().After(deadline) {
			t.Fatal("n3 never declared lost")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The session resumes on n2 without what n3 held (n3 is lost); n1 sends
	// the next messages to n2, and to n3 too while n3's routes last.
	again, ca := dial5(t, nodes[1].Addr, "moved-through-pause", &paho.Connect{CleanStart: false, KeepAlive: 30, Properties: persist})
	if !ca.SessionPresent {
		t.Fatal("the session of a lost node resumed elsewhere without session present")
	}
	routed(t, pubLate, again, "late/x", 20*time.Second)
	for i := 0; i < 20; i++ {
		pubLate.pub(t, &paho.Publish{Topic: "late/x", QoS: 2, Payload: []byte("after-" + strconv.Itoa(i))})
	}
	if err := n3.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Its process was stopped for longer than quorum-fence: whatever raft
	// hears first, it closes its claimed connections (the majority may have
	// handed their sessions over meanwhile).
	held.disconnected(t, byte(codec.UseAnotherServer), 10*time.Second, "the claimed connection after the pause")
	// n3 applies the claim and sends the session's state to n2 after all:
	// the session resumed without it, so n2 drops it. Delivering it would
	// duplicate the after-* messages, under packet ids the client never saw.
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(nodes[1].Log.String(), "session state came after its session resumed without it; dropped") {
		if time.Now().After(deadline) {
			t.Fatal("n3 never sent the moved session's state to n2")
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := map[string]int{}
	quiet := time.After(4 * time.Second) // n3's stub forwards for 3 s more
	for done := false; !done; {
		select {
		case m := <-again.msgs:
			got[string(m.Payload)]++
		case <-quiet:
			done = true
		}
	}
	for p, n := range got {
		if n > 1 {
			t.Errorf("%s delivered %d times to the resumed QoS 2 session", p, n)
		}
	}
	for i := 0; i < 20; i++ {
		if p := "after-" + strconv.Itoa(i); got[p] != 1 {
			t.Errorf("%s delivered %d times, want once", p, got[p])
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	var c *v5c
	for c == nil {
		cc, ca, err := tryDial5(n3.Addr, "after-pause", &paho.Connect{CleanStart: true, KeepAlive: 30, Properties: persist})
		if err == nil {
			c = cc
			t.Cleanup(func() { cc.conn.Close() })
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n3 refuses claims after it came back: %v %+v", err, ca)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pubc, _ := dial5(t, n3.Addr, "pub-after-pause", nil)
	routed(t, pubc, watch, "paused/x", 20*time.Second)
}

// TestClusterFanInAcrossNodes: eight QoS 1 publishers on n1 at full speed,
// their subscriber on n2. The link between the nodes fills faster than n2
// delivers; publishers are held (the link is congested, or n2 stops reading
// it while the subscriber's session drains), never dropped: every
// acknowledged message arrives once and in order.
func TestClusterFanInAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			cfg := bench.DefaultConfig()
			cfg.Scenario = "fanin"
			cfg.PubHosts = []string{nodes[0].Addr}
			cfg.SubHosts = []string{nodes[1].Addr}
			cfg.Version, cfg.QoS = v, 1
			cfg.Clients = 8
			cfg.Duration = 3 * time.Second
			cfg.Drain = 20 * time.Second
			cfg.Interval = 0
			sum, err := bench.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			q := sum.Seq
			t.Logf("sent %d acked %d delivered %d; lost %d duplicated %d reordered %d",
				sum.Pub.Sent, sum.Pub.Acked, sum.Pub.Delivered, q.Lost, q.Duplicated, q.Late)
			if sum.Conn.Failed != 0 || sum.Conn.Dropped != 0 || len(sum.Errors) != 0 {
				t.Fatalf("connections %+v, errors %v", sum.Conn, sum.Errors)
			}
			if sum.Pub.Acked < 10_000 {
				t.Fatalf("only %d publishes acknowledged across nodes", sum.Pub.Acked)
			}
			if q.Lost != 0 || q.Duplicated != 0 || q.Late != 0 || sum.Pub.Delivered != sum.Pub.Acked {
				t.Fatalf("acknowledged %d, delivered %d: lost %d duplicated %d reordered %d",
					sum.Pub.Acked, sum.Pub.Delivered, q.Lost, q.Duplicated, q.Late)
			}
		})
	}
}
