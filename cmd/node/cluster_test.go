//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
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
// call (gossip uses both).
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
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
	for _, cn := range nodes {
		late, _ := dial5(t, cn.Addr, "late-"+cn.id, nil)
		late.sub(t, paho.SubscribeOptions{Topic: "c/r/x", QoS: 1})
		if m := late.next(t, 5*time.Second); !m.Retain || string(m.Payload) != "kept" {
			t.Fatalf("%s: retained message %q retain %v", cn.id, m.Payload, m.Retain)
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
