package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// The history the checks read: every acknowledged publish, every delivery,
// every connection of the clients, every acknowledged retained write.
type ackRec struct {
	pub  string
	seq  int
	node string // ingress node
	at   time.Time
}

type delivRec struct {
	sub, pub string
	seq      int
	node     string
	at       time.Time
}

type connRec struct {
	client, node string
	from, to     time.Time // to is zero while connected
	present      bool      // CONNACK session present
}

type history struct {
	mu        sync.Mutex
	acks      []ackRec
	delivs    []delivRec
	conns     []*connRec
	pubFail   int               // publishes not acknowledged (error, timeout)
	pubRef    map[string]int    // PUBACK reason >= 0x80, by node and code
	retained  map[string]string // acknowledged retained writes: topic -> payload
	retRef    map[string]int    // retained writes refused, by node and reason
	lostSess  []string          // a persistent session resumed without its state
	subRefuse map[string]int    // subscriber CONNECT/SUBSCRIBE refusals by node and code
	discs     []discRec         // DISCONNECTs sent by the servers
	roams     []*roamConn       // the roamers' connections, in the order of their CONNACKs
}

// discRec is a DISCONNECT a server sent to one of the checker's clients.
type discRec struct {
	client, node string
	code         byte
	at           time.Time
}

// roamConn is one connection of a roamer: a persistent session that connects
// to another node every few seconds without closing its old connection,
// which the cluster must close. Its beacons are the send times of the
// messages it received.
type roamConn struct {
	client  string
	node    string
	ackAt   time.Time // CONNACK received
	closed  time.Time // zero while open
	forced  bool      // closed by the checker, not by the server
	present bool
	sends   []time.Time
}

func newHistory() *history {
	return &history{pubRef: map[string]int{}, retained: map[string]string{}, retRef: map[string]int{}, subRefuse: map[string]int{}}
}

func (h *history) conn(client, node string, present bool) *connRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := &connRec{client: client, node: node, from: time.Now(), present: present}
	h.conns = append(h.conns, c)
	return c
}

func (h *history) closeConn(c *connRec) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.to.IsZero() {
		c.to = time.Now()
	}
}

// client is one MQTT v5 connection.
type client struct {
	*paho.Client
	conn net.Conn
	node *node
	dead chan struct{}
	once sync.Once
}

func (c *client) kill() {
	c.once.Do(func() { close(c.dead) })
	c.conn.Close()
}

// serverDisconnect, when set, is told of every DISCONNECT a server sends.
var serverDisconnect atomic.Pointer[func(client, node string, code byte)]

// dial connects; onMsg, if set, gets every PUBLISH (auto-acknowledged after
// it returns). It returns the CONNACK also when the server refused.
func dial(n *node, id string, cp *paho.Connect, onMsg func(*paho.Publish)) (*client, *paho.Connack, error) {
	return dialSession(n, id, cp, onMsg, nil)
}

// dialSession is dial with the client's session state kept by the caller
// across connections (nil: a new one). The previous connection using sess
// must be Done first.
func dialSession(n *node, id string, cp *paho.Connect, onMsg func(*paho.Publish), sess session.SessionManager) (*client, *paho.Connack, error) {
	conn, err := net.DialTimeout("tcp", n.mqtt(), 2*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c := &client{conn: conn, node: n, dead: make(chan struct{})}
	cfg := paho.ClientConfig{Conn: conn, Session: sess,
		OnClientError: func(error) { c.kill() },
		OnServerDisconnect: func(d *paho.Disconnect) {
			if f := serverDisconnect.Load(); f != nil {
				(*f)(id, n.name, d.ReasonCode)
			}
			c.kill()
		},
	}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMsg(pr.Packet)
			return true, nil
		}}
	}
	c.Client = paho.NewClient(cfg)
	cp.ClientID = id
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	go func() {
		select {
		case <-c.Done():
			c.kill()
		case <-c.dead:
		}
	}()
	return c, ca, nil
}

func persistent(keepAlive uint16) *paho.Connect {
	exp := uint32(300)
	return &paho.Connect{CleanStart: false, KeepAlive: keepAlive, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}
}

type workload struct {
	cl          *cluster
	h           *history
	nPub        int
	stopping    atomic.Bool
	wg          sync.WaitGroup
	measureFrom time.Time
	retN        atomic.Int64
}

func newWorkload(cl *cluster, h *history) *workload {
	return &workload{cl: cl, h: h, nPub: 3}
}

const (
	topicPrefix  = "chaos/p/"    // the QoS 1 publishers' topics
	q2Prefix     = "chaos/q/"    // the QoS 2 publisher's
	roamPrefix   = "chaos/roam/" // the roamers' beacons
	q2Publisher  = "q1"
	q2Subscriber = "chaos-qs"
	roamers      = 3
)

// subscribersOf are the subscribers that get every message of publisher pub.
func subscribersOf(pub string) []string {
	if pub == q2Publisher {
		return []string{q2Subscriber}
	}
	return []string{"chaos-s1", "chaos-s2", "chaos-s3"}
}

// start connects the subscribers (s1 on n2, s2 on n3, s3 on n1, the QoS 2
// subscriber on n3), waits for their routes, then starts the QoS 1
// publishers (p1 on n1, p2 on n2, p3 on n3), the QoS 2 publisher (on n2), the
// roamers with their beacons, and the retained writer.
func (w *workload) start(ctx context.Context) error {
	ready := make(chan error, 4)
	for i := 0; i < 3; i++ {
		w.wg.Add(1)
		go w.subscriber("chaos-s"+strconv.Itoa(i+1), (i+1)%3, topicPrefix, 1, nil, ready)
	}
	w.wg.Add(1)
	go w.subscriber(q2Subscriber, 2, q2Prefix, 2, state.NewInMemory(), ready)
	for i := 0; i < 4; i++ {
		if err := <-ready; err != nil {
			return err
		}
	}
	f := func(client, node string, code byte) {
		w.h.mu.Lock()
		w.h.discs = append(w.h.discs, discRec{client: client, node: node, code: code, at: time.Now()})
		w.h.mu.Unlock()
	}
	serverDisconnect.Store(&f)
	time.Sleep(2 * time.Second) // routes gossiped and linked
	w.measureFrom = time.Now()
	interval := time.Duration(float64(time.Second) * float64(w.nPub) / float64(w.cl.cfg.rate))
	for i := 0; i < w.nPub; i++ {
		w.wg.Add(1)
		go w.publisher("p"+strconv.Itoa(i+1), i, interval, topicPrefix, 1)
	}
	w.wg.Add(1)
	go w.publisher(q2Publisher, 1, 50*time.Millisecond, q2Prefix, 2)
	for i := 0; i < roamers; i++ {
		w.wg.Add(1)
		go w.roamer("chaos-roam-"+strconv.Itoa(i+1), i)
	}
	w.wg.Add(1)
	go w.beacons()
	w.wg.Add(1)
	go w.retainedWriter()
	w.cl.logf("workload: 3 QoS 1 subscribers, %d QoS 1 publishers at %d msg/s in all, a QoS 2 publisher at 20 msg/s and its subscriber, %d roamers, retained writes every 2 s", w.nPub, w.cl.cfg.rate, roamers)
	return nil
}

// stop stops the publishers, waits for deliveries to stop coming (3 s quiet,
// at most 30 s), then disconnects the subscribers. It returns the time the
// publishers stopped.
func (w *workload) stop() time.Time {
	w.stopping.Store(true)
	end := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		w.h.mu.Lock()
		var last time.Time
		if n := len(w.h.delivs); n > 0 {
			last = w.h.delivs[n-1].at
		}
		w.h.mu.Unlock()
		if time.Since(last) > 3*time.Second && time.Since(end) > 3*time.Second {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	subStop.Store(true)
	w.wg.Wait()
	return end
}

var subStop atomic.Bool

func parsePayload(p []byte) (string, int, bool) {
	pub, seq, ok := strings.Cut(string(p), ":")
	if !ok {
		return "", 0, false
	}
	n, err := strconv.Atoi(seq)
	return pub, n, err == nil
}

// subscriber keeps a persistent session subscribed to prefix+"+" at qos,
// reconnecting to the next node when its connection dies. sess, if set, is
// its client-side session state, kept across connections (QoS 2: a PUBLISH
// resent with DUP after a reconnect is not handed to it twice).
func (w *workload) subscriber(id string, home int, prefix string, qos byte, sess session.SessionManager, ready chan<- error) {
	defer w.wg.Done()
	first := true
	for !subStop.Load() {
		var c *client
		for _, n := range w.cl.order(home) {
			onMsg := func(p *paho.Publish) {
				pub, seq, ok := parsePayload(p.Payload)
				if !ok || !strings.HasPrefix(p.Topic, prefix) {
					return
				}
				w.h.mu.Lock()
				w.h.delivs = append(w.h.delivs, delivRec{sub: id, pub: pub, seq: seq, node: n.name, at: time.Now()})
				w.h.mu.Unlock()
			}
			cc, ca, err := dialSession(n, id, persistent(3), onMsg, sess)
			if err != nil {
				if ca != nil {
					w.h.mu.Lock()
					w.h.subRefuse[fmt.Sprintf("%s CONNACK %#x", n.name, ca.ReasonCode)]++
					w.h.mu.Unlock()
				}
				continue
			}
			rec := w.h.conn(id, n.name, ca.SessionPresent)
			if !ca.SessionPresent {
				if !first {
					w.h.mu.Lock()
					w.h.lostSess = append(w.h.lostSess, fmt.Sprintf("%s resumed on %s at %s without session present", id, n.name, time.Now().Format("15:04:05.000")))
					w.h.mu.Unlock()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				sa, err := cc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: prefix + "+", QoS: qos}}})
				cancel()
				if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] >= 0x80 {
					w.h.mu.Lock()
					w.h.subRefuse[n.name+" SUBSCRIBE refused"]++
					w.h.mu.Unlock()
					cc.kill()
					waitDone(cc)
					w.h.closeConn(rec)
					continue
				}
			}
			c = cc
			if first {
				ready <- nil
				first = false
			}
			<-waitDeadOrStop(cc)
			w.h.closeConn(rec)
			if subStop.Load() {
				cc.Disconnect(&paho.Disconnect{})
				cc.kill()
				return
			}
			cc.kill()
			waitDone(cc)
			break
		}
		if c == nil {
			time.Sleep(300 * time.Millisecond)
		}
	}
	if first {
		ready <- fmt.Errorf("subscriber %s never connected", id)
	}
}

// waitDone waits (up to 10 s) until the paho client has shut down, so that
// its session state may serve the next connection.
func waitDone(c *client) {
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
	}
}

// waitDeadOrStop is closed when the client's connection died or the
// subscribers are to stop.
func waitDeadOrStop(c *client) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			select {
			case <-c.dead:
				return
			case <-time.After(100 * time.Millisecond):
				if subStop.Load() {
					return
				}
			}
		}
	}()
	return ch
}

// publisher publishes id:seq to prefix+id at qos every interval, on its home
// node while it is up. A publish without acknowledgement is not retried: its
// sequence number is skipped.
func (w *workload) publisher(id string, home int, interval time.Duration, prefix string, qos byte) {
	defer w.wg.Done()
	var c *client
	var rec *connRec
	seq := 0
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !w.stopping.Load() {
		if c == nil {
			for _, n := range w.cl.order(home) {
				cc, _, err := dial(n, id, &paho.Connect{CleanStart: true, KeepAlive: 3}, nil)
				if err == nil {
					c, rec = cc, w.h.conn(id, n.name, false)
					break
				}
			}
			if c == nil {
				time.Sleep(300 * time.Millisecond)
				continue
			}
		}
		<-tick.C
		seq++
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := c.Publish(ctx, &paho.Publish{Topic: prefix + id, QoS: qos, Payload: []byte(id + ":" + strconv.Itoa(seq))})
		cancel()
		switch {
		case resp != nil && resp.ReasonCode >= 0x80:
			w.h.mu.Lock()
			w.h.pubRef[fmt.Sprintf("%s PUBACK %#x", c.node.name, resp.ReasonCode)]++
			w.h.mu.Unlock()
		case err != nil:
			w.h.mu.Lock()
			w.h.pubFail++
			w.h.mu.Unlock()
			c.kill()
			w.h.closeConn(rec)
			c = nil
		default:
			w.h.mu.Lock()
			w.h.acks = append(w.h.acks, ackRec{pub: id, seq: seq, node: c.node.name, at: time.Now()})
			w.h.mu.Unlock()
		}
		if c != nil && c.node != w.cl.nodes[home] && w.cl.calm() {
			// Back home once the fault is over: publishers stay one per node.
			c.Disconnect(&paho.Disconnect{})
			c.kill()
			w.h.closeConn(rec)
			c = nil
		}
		if c != nil {
			select {
			case <-c.dead:
				w.h.closeConn(rec)
				c = nil
			default:
			}
		}
	}
	if c != nil {
		c.Disconnect(&paho.Disconnect{})
		c.kill()
		w.h.closeConn(rec)
	}
}

// retainedWriter writes a retained QoS 1 message to a new topic every 2 s,
// on each node in turn (faulted ones too: a refusal is recorded).
func (w *workload) retainedWriter() {
	defer w.wg.Done()
	for i := 0; !w.stopping.Load(); i++ {
		n := w.cl.nodes[i%len(w.cl.nodes)]
		k := w.retN.Add(1)
		topic := fmt.Sprintf("chaos/r/%04d", k)
		payload := fmt.Sprintf("r%d@%s", k, n.name)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, _, err := dial(n, fmt.Sprintf("chaos-r%d", k), &paho.Connect{CleanStart: true, KeepAlive: 10}, nil)
			if err != nil {
				w.h.mu.Lock()
				w.h.retRef[n.name+" connect failed"]++
				w.h.mu.Unlock()
				return
			}
			defer c.kill()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload)})
			w.h.mu.Lock()
			defer w.h.mu.Unlock()
			switch {
			case resp != nil && resp.ReasonCode >= 0x80:
				w.h.retRef[fmt.Sprintf("%s PUBACK %#x", n.name, resp.ReasonCode)]++
			case err != nil:
				w.h.retRef[n.name+" no PUBACK"]++
			default:
				w.h.retained[topic] = payload
			}
			c.Disconnect(&paho.Disconnect{})
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
		}
		time.Sleep(2 * time.Second)
	}
}

// checkRetained subscribes with a fresh client on each node and returns, per
// node, the acknowledged retained writes it did not get (or a wrong payload).
//
// A node that rejoined applies the entries committed without it a moment
// after it reports healthy, and a retained message reaches a subscriber when
// it subscribes: a node with missing messages is asked again, by a fresh
// subscriber every second, for up to 20 s.
func checkRetained(ctx context.Context, cl *cluster, h *history) map[string][]string {
	out := checkRetainedOn(ctx, cl.nodes, h)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		var again []*node
		for _, n := range cl.nodes {
			if len(out[n.name]) > 0 {
				again = append(again, n)
			}
		}
		if len(again) == 0 {
			break
		}
		time.Sleep(time.Second)
		for k, v := range checkRetainedOn(ctx, again, h) {
			out[k] = v
		}
	}
	return out
}

// checkRetainedOn is one fresh subscriber's check on each of nodes.
func checkRetainedOn(ctx context.Context, nodes []*node, h *history) map[string][]string {
	h.mu.Lock()
	want := map[string]string{}
	for k, v := range h.retained {
		want[k] = v
	}
	h.mu.Unlock()
	out := map[string][]string{}
	for _, n := range nodes {
		var mu sync.Mutex
		got := map[string]string{}
		// A node just back may refuse claims for a moment (its boot fenced
		// until the leader's NodeUp): retry as a client would, up to 20 s.
		var c *client
		var err error
		for start := time.Now(); ; {
			var ca *paho.Connack
			c, ca, err = dial(n, "chaos-retained-check-"+n.name, &paho.Connect{CleanStart: true, KeepAlive: 10}, func(p *paho.Publish) {
				mu.Lock()
				got[p.Topic] = string(p.Payload)
				mu.Unlock()
			})
			if err == nil || time.Since(start) > 20*time.Second || ctx.Err() != nil {
				if ca != nil && err != nil {
					err = fmt.Errorf("%w (CONNACK %#x)", err, ca.ReasonCode)
				}
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			out[n.name] = []string{"cannot connect for 20 s: " + err.Error()}
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "chaos/r/#", QoS: 1}}})
		cancel()
		if err != nil {
			out[n.name] = []string{"subscribe: " + err.Error()}
			c.kill()
			continue
		}
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			m := len(got)
			mu.Unlock()
			if m >= len(want) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		mu.Lock()
		var missing []string
		for k, v := range want {
			if g, ok := got[k]; !ok {
				missing = append(missing, k+" missing")
			} else if g != v {
				missing = append(missing, fmt.Sprintf("%s is %q, want %q", k, g, v))
			}
		}
		mu.Unlock()
		out[n.name] = missing
		c.Disconnect(&paho.Disconnect{})
		c.kill()
	}
	return out
}

// roamer keeps a persistent session that moves: every 4 to 6 s it connects
// to the next node with the same client id and does not close the
// connection it had. The cluster must close the old one (takeover, 0x8E) by
// the time it acknowledges the new one. Connections the server has not
// closed 10 s after a newer CONNACK are closed by the checker (and recorded
// as such).
func (w *workload) roamer(id string, start int) {
	defer w.wg.Done()
	type open struct {
		c   *client
		rec *roamConn
	}
	var conns []open
	first := true
	for next := start; !subStop.Load(); next++ {
		n := w.cl.nodes[next%len(w.cl.nodes)]
		rec := &roamConn{client: id, node: n.name}
		onMsg := func(p *paho.Publish) {
			ns, err := strconv.ParseInt(string(p.Payload), 10, 64)
			if err != nil || !strings.HasPrefix(p.Topic, roamPrefix) {
				return
			}
			w.h.mu.Lock()
			rec.sends = append(rec.sends, time.Unix(0, ns))
			w.h.mu.Unlock()
		}
		c, ca, err := dial(n, id, persistent(3), onMsg)
		if err == nil {
			w.h.mu.Lock()
			rec.ackAt, rec.present = time.Now(), ca.SessionPresent
			w.h.roams = append(w.h.roams, rec)
			if !ca.SessionPresent && !first {
				w.h.lostSess = append(w.h.lostSess, fmt.Sprintf("%s resumed on %s at %s without session present", id, n.name, rec.ackAt.Format("15:04:05.000")))
			}
			w.h.mu.Unlock()
			go func() {
				<-c.dead
				w.h.mu.Lock()
				if rec.closed.IsZero() {
					rec.closed = time.Now()
				}
				w.h.mu.Unlock()
			}()
			if !ca.SessionPresent {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: roamPrefix + id, QoS: 1}}})
				cancel()
				if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] >= 0x80 {
					w.h.mu.Lock()
					w.h.subRefuse[n.name+" SUBSCRIBE refused"]++
					w.h.mu.Unlock()
				}
			}
			first = false
			conns = append(conns, open{c, rec})
		}
		deadline := time.Now().Add(4*time.Second + time.Duration(next%3)*time.Second)
		for time.Now().Before(deadline) && !subStop.Load() {
			time.Sleep(100 * time.Millisecond)
		}
		// Close what the server left open 10 s after a newer CONNACK.
		keep := conns[:0]
		for i, o := range conns {
			if i < len(conns)-1 && time.Since(conns[i+1].rec.ackAt) > 10*time.Second {
				w.h.mu.Lock()
				if o.rec.closed.IsZero() {
					o.rec.closed, o.rec.forced = time.Now(), true
				}
				w.h.mu.Unlock()
				o.c.kill()
				continue
			}
			keep = append(keep, o)
		}
		conns = keep
	}
	for i, o := range conns {
		if i == len(conns)-1 {
			o.c.Disconnect(&paho.Disconnect{})
		}
		o.c.kill()
	}
}

// beacons publishes the time, at QoS 0, to every roamer's topic every
// 100 ms from a client on n1 (another node while n1 is faulted).
func (w *workload) beacons() {
	defer w.wg.Done()
	var c *client
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !subStop.Load() {
		if c == nil {
			for _, n := range w.cl.order(0) {
				if cc, _, err := dial(n, "chaos-beacon", &paho.Connect{CleanStart: true, KeepAlive: 3}, nil); err == nil {
					c = cc
					break
				}
			}
			if c == nil {
				time.Sleep(300 * time.Millisecond)
				continue
			}
		}
		<-tick.C
		for i := 1; i <= roamers && c != nil; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := c.Publish(ctx, &paho.Publish{Topic: roamPrefix + "chaos-roam-" + strconv.Itoa(i), Payload: []byte(strconv.FormatInt(time.Now().UnixNano(), 10))})
			cancel()
			if err != nil {
				c.kill()
				c = nil
			}
		}
		if c != nil && c.node != w.cl.nodes[0] && w.cl.calm() {
			c.Disconnect(&paho.Disconnect{})
			c.kill()
			c = nil
		}
		if c != nil {
			select {
			case <-c.dead:
				c = nil
			default:
			}
		}
	}
	if c != nil {
		c.Disconnect(&paho.Disconnect{})
		c.kill()
	}
}
