//go:build linux

package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/codec"
)

// Claims that the server answers late: the connection waits for a raft
// quorum, or for its session's state from the node it was on, and may close
// before its CONNACK.

// stopNodes stops the processes of nodes (SIGSTOP) and returns the function
// that resumes them; cleanup resumes them too, should the test fail first.
func stopNodes(t *testing.T, nodes ...*clusterNode) (resume func()) {
	t.Helper()
	for _, cn := range nodes {
		if err := cn.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	resumed := false
	resume = func() {
		if resumed {
			return
		}
		resumed = true
		for _, cn := range nodes {
			if err := cn.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	return resume
}

// waitLog polls the log of cn until it holds every one of parts on one line.
func waitLog(t *testing.T, cn *clusterNode, timeout time.Duration, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(cn.Log.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged a line with %q within %v; its log:\n%s", cn.id, parts, timeout, cn.Log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// persistent300 is a v5 CONNECT resuming (clean start 0) a session with
// expiry 300 s.
func persistent300() *paho.Connect {
	return &paho.Connect{CleanStart: false, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(300))}}
}

// sendAndClose connects to addr, sends a v5 CONNECT resuming clientID's
// session (expiry 300 s) and closes the connection without reading.
func sendAndClose(t *testing.T, addr, clientID string) {
	t.Helper()
	m := dialMQTT(t, addr, clientID, codec.V5)
	props := codec.Properties{}
	props.Set(codec.PropSessionExpiry)
	props.SessionExpiry = 300
	m.send(codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V5, ClientID: []byte(clientID),
		KeepAlive: 30, Props: props}))
	m.conn.Close()
}

// queueFor leaves a persistent QoS 1 subscriber of topic with id offline on
// home, and n QoS 1 messages queued for it there, published on home too.
func queueFor(t *testing.T, home *clusterNode, id, topic string, n int) {
	t.Helper()
	c, _ := dial5(t, home.Addr, id, &paho.Connect{CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(300))}})
	c.sub(t, paho.SubscribeOptions{Topic: topic, QoS: 1})
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	c.conn.Close()
	pub, _ := dial5(t, home.Addr, id+"-pub", nil)
	for i := range n {
		pub.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(fmt.Sprintf("%s-%d", id, i))})
	}
}

// expectQueued checks that c receives the n messages of queueFor(id), each
// once.
func expectQueued(t *testing.T, c *v5c, id string, n int) {
	t.Helper()
	for i := range n {
		want := fmt.Sprintf("%s-%d", id, i)
		select {
		case p := <-c.msgs:
			if string(p.Payload) != want {
				t.Fatalf("got %q, want %q", p.Payload, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: message %d of %d never came: the queued messages were lost", id, i, n)
		}
	}
	c.none(t, 500*time.Millisecond)
}

// neverLed returns the nodes that have not led raft since they started.
func neverLed(nodes []*clusterNode) []*clusterNode {
	var out []*clusterNode
	for _, cn := range nodes {
		if !strings.Contains(cn.Log.String(), `msg="entering leader state"`) {
			out = append(out, cn)
		}
	}
	return out
}

// roles picks, for a test that stops one node, a home for the session that
// is a follower (stopping it costs no election) and the two others.
func roles(t *testing.T, nodes []*clusterNode) (home, a, b *clusterNode) {
	t.Helper()
	f := neverLed(nodes)
	if len(f) == 0 {
		t.Fatal("every node has led raft: no follower to stop")
	}
	home = f[0]
	var rest []*clusterNode
	for _, cn := range nodes {
		if cn != home {
			rest = append(rest, cn)
		}
	}
	return home, rest[0], rest[1]
}

type dialed struct {
	c   *v5c
	ca  *paho.Connack
	err error
}

// dialAsync resumes clientID's session on addr in the background.
func dialAsync(addr, clientID string) <-chan dialed {
	done := make(chan dialed, 1)
	go func() {
		c, ca, err := tryDial5(addr, clientID, persistent300())
		done <- dialed{c, ca, err}
	}()
	return done
}

// TestClusterSlowClaimKeepsItsConnection: a client resumes on b the session
// that waits on its home node, which is stopped: alive to gossip, so b waits
// for its state, longer than connect-timeout. The client sent its CONNECT in
// time; the server is the one waiting. The connection gets its CONNACK, with
// the messages, once home is back (the connect timeout used to close it,
// leaving the committed claim without its connection).
func TestClusterSlowClaimKeepsItsConnection(t *testing.T) {
	nodes := startCluster(t, 3, "-connect-timeout", "500ms")
	home, b, _ := roles(t, nodes)
	queueFor(t, home, "slow-claim", "slow/t", 10)
	resume := stopNodes(t, home)
	done := dialAsync(b.Addr, "slow-claim")
	// home stays stopped for four times the connect timeout: the fault's
	// length.
	select {
	case d := <-done:
		t.Fatalf("answered while the session's node was stopped: %+v, %v", d.ca, d.err)
	case <-time.After(2 * time.Second):
	}
	resume()
	d := <-done
	if d.err != nil {
		t.Fatalf("the connection that waited for its session's state: %v (CONNACK %+v)", d.err, d.ca)
	}
	t.Cleanup(func() { d.c.conn.Close() })
	if d.ca.ReasonCode != 0 || !d.ca.SessionPresent {
		t.Fatalf("CONNACK %#x, session present %v; want success with the session", d.ca.ReasonCode, d.ca.SessionPresent)
	}
	expectQueued(t, d.c, "slow-claim", 10)
}

// claimAndClose starts a cluster (debug logs) where id holds a persistent
// session with 10 queued messages (queueFor) on home, a follower, stops
// home, and resumes the session on a with a connection that closes before
// its CONNACK; it returns once a has the claim's result (session present,
// previous owner home), with the function that resumes home.
func claimAndClose(t *testing.T, id string) (home, a, b *clusterNode, resume func()) {
	t.Helper()
	nodes := startCluster(t, 3, "-log-level", "debug")
	home, a, b = roles(t, nodes)
	queueFor(t, home, id, id+"/t", 10)
	resume = stopNodes(t, home)
	sendAndClose(t, a.Addr, id)
	waitLog(t, a, 20*time.Second, `msg="session claim answered"`, "client="+id, "present=true", "prev_node="+home.id)
	return home, a, b, resume
}

// TestClusterClaimOfClosedConnectionKeepsSession: the client resumes on a
// the session held with queued messages on its home node, which is stopped,
// and the connection closes before its CONNACK. The committed claim made a
// the session's owner, and home hands it the messages once back: a keeps the
// session parked with the expiry the client asked for (it used to end it,
// or to keep nothing of it, and the messages were lost). The client then
// resumes on b and gets them all.
func TestClusterClaimOfClosedConnectionKeepsSession(t *testing.T) {
	_, a, b, resume := claimAndClose(t, "orphan")
	resume()
	// Parked once home's state is in: its disconnection goes to the
	// registry.
	waitLog(t, a, 20*time.Second, `msg="session disconnect applied"`, "client=orphan", "code=OK")
	c, ca := dial5(t, b.Addr, "orphan", persistent300())
	if !ca.SessionPresent {
		t.Fatal("the session resumed without session present: the claim of the closed connection ended it")
	}
	expectQueued(t, c, "orphan", 10)
}

// TestClusterSessionMovesOnBeforeItsState: a session moves from its home
// node, stopped, to a (which waits for its state: home is alive to gossip),
// and the client, tired of waiting, goes on to b. a hands the session on to
// b once home's state is in, so that the client gets every queued message on
// b (a used to hand on an empty session and drop home's state when it came).
func TestClusterSessionMovesOnBeforeItsState(t *testing.T) {
	_, a, b, resume := claimAndClose(t, "mover-on")
	done := dialAsync(b.Addr, "mover-on")
	waitLog(t, b, 20*time.Second, `msg="session claim answered"`, "client=mover-on", "prev_node="+a.id)
	resume()
	d := <-done
	if d.err != nil {
		t.Fatalf("resume on %s: %v (CONNACK %+v)", b.id, d.err, d.ca)
	}
	t.Cleanup(func() { d.c.conn.Close() })
	if !d.ca.SessionPresent {
		t.Fatalf("the session resumed on %s without session present", b.id)
	}
	expectQueued(t, d.c, "mover-on", 10)
}

// TestClusterLateCommittedClaimKeepsSession: a client resumes its session on
// the raft leader while both followers are stopped. The claim is in the
// leader's log but cannot commit: after 5 s the client gets CONNACK 0x88.
// One follower comes back, the old leader wins the election (its log is the
// longer one) and commits the claim after all: the registry names that node
// as the session's owner, connected. The node adopts the session, parked
// and recorded as disconnected (it used to stay "connected" with nothing
// behind it, never expiring), and the client resumes it with every message
// published meanwhile.
func TestClusterLateCommittedClaimKeepsSession(t *testing.T) {
	nodes := startCluster(t, 3, "-admin-listen", "127.0.0.1:0", "-log-level", "debug")
	admins := map[string]string{}
	for _, cn := range nodes {
		if admins[cn.id] = cn.AdminAddr(10 * time.Second); admins[cn.id] == "" {
			t.Fatalf("%s logged no admin address", cn.id)
		}
	}
	_, body := api(t, admins[nodes[0].id], "", "GET", "/api/v1/cluster/leader", nil)
	var x *clusterNode
	var followers []*clusterNode
	for _, cn := range nodes {
		if cn.id == body["id"] {
			x = cn
		} else {
			followers = append(followers, cn)
		}
	}
	if x == nil {
		t.Fatalf("no leader named: %v", body)
	}
	c, _ := dial5(t, x.Addr, "late", &paho.Connect{CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(300))}})
	c.sub(t, paho.SubscribeOptions{Topic: "late/t", QoS: 1})
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	c.conn.Close()
	registryShows := func(connected bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, body := api(t, admins[x.id], "", "GET", "/api/v1/sessions?prefix=late", nil)
			sess := items(body)
			if len(sess) == 1 && sess[0]["connected"] == connected {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the registry never showed the session with connected=%v: %v", connected, sess)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	registryShows(false) // committed: what the followers are stopped for is the claim alone

	resumeF1 := stopNodes(t, followers[0])
	resumeF2 := stopNodes(t, followers[1])
	if _, ca, err := tryDial5(x.Addr, "late", persistent300()); err == nil || ca == nil || ca.ReasonCode != 0x88 {
		t.Fatalf("resume without a quorum: CONNACK %+v, %v; want 0x88", ca, err)
	}
	resumeF1()
	// The claim in x's log commits once x leads again.
	waitLog(t, x, 30*time.Second, `msg="session claim applied"`, "client=late", "resumed=true")
	resumeF2()

	pub, _ := dial5(t, x.Addr, "late-pub", nil)
	for i := range 5 {
		pub.pub(t, &paho.Publish{Topic: "late/t", QoS: 1, Payload: []byte(fmt.Sprintf("late-%d", i))})
	}
	// Adopted and parked: recorded as disconnected, so that it expires.
	registryShows(false)
	again, ca := dial5(t, x.Addr, "late", persistent300())
	if !ca.SessionPresent {
		t.Fatal("the adopted session resumed without session present")
	}
	expectQueued(t, again, "late", 5)
}
