package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/flockmq/flockmq/codec"
)

// ErrConnect is returned when the connect phase does not complete.
var ErrConnect = errors.New("bench: connections failed")

// Runner owns one transport, a gnet client or (--tls) the std-net
// transport, and the connections opened through it. A scenario opens
// clients, publishes, drains and stops; a storm uses one Runner per phase.
// Methods are for the scenario goroutine only unless noted.
type Runner struct {
	cfg    *Config
	clk    clock
	cli    *gnet.Client // nil with --tls
	std    *stdNet      // --tls only
	runID  uint32       // stamped into payloads
	anyRun bool         // accept other runs' messages (the sub scenario)

	// prober, while routes are probed, accounts for the probes that reach
	// this Runner's clients. Safe for concurrent use.
	prober atomic.Pointer[routeProber]

	loopsMu sync.Mutex
	byEL    map[executor]*loopState      // under loopsMu
	loops   atomic.Pointer[[]*loopState] // copy on write, read lock-free
	clients []*client

	// Gates and counters: safe for concurrent use.
	connected, ready, closedG, pubsDone, complete *gate
	connFailed, dropped                           atomic.Int64
	closing                                       atomic.Bool

	errMu sync.Mutex
	errs  map[string]int // distinct error texts, under errMu

	sampler  *sampler
	stopOnce sync.Once
	stopDrv  chan struct{}
	drvDone  chan struct{}
	nextDial atomic.Uint64 // round-robin source address
}

// NewRunner starts the transport with cfg.Loops event loops, a gnet client
// or with cfg.TLS the std-net transport, and the driver.
func NewRunner(cfg *Config, clk clock, smp *sampler, runID uint32) (*Runner, error) {
	r := &Runner{cfg: cfg, clk: clk, runID: runID, anyRun: cfg.Scenario == "sub", byEL: make(map[executor]*loopState),
		connected: newGate(), ready: newGate(), closedG: newGate(), pubsDone: newGate(),
		complete: newGate(), errs: make(map[string]int), sampler: smp,
		stopDrv: make(chan struct{}), drvDone: make(chan struct{})}
	empty := []*loopState{}
	r.loops.Store(&empty)
	if cfg.TLS {
		std, err := newStdNet(r)
		if err != nil {
			return nil, err
		}
		r.std = std
		go r.drive()
		return r, nil
	}
	cli, err := gnet.NewClient(&handler{r: r},
		gnet.WithNumEventLoop(cfg.Loops),
		gnet.WithLogger(nopLogger{}),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
	)
	if err != nil {
		return nil, fmt.Errorf("bench: gnet client: %w", err)
	}
	if err := cli.Start(); err != nil {
		return nil, fmt.Errorf("bench: gnet client: %w", err)
	}
	r.cli = cli
	go r.drive()
	return r, nil
}

// loopFor returns the state of event loop el, creating it on first use.
// Called on el, as a connection opens.
func (r *Runner) loopFor(el executor) *loopState {
	r.loopsMu.Lock()
	defer r.loopsMu.Unlock()
	if l, ok := r.byEL[el]; ok {
		return l
	}
	l := newLoopState(r, el)
	r.byEL[el] = l
	next := append(append([]*loopState(nil), *r.loops.Load()...), l)
	r.loops.Store(&next)
	return l
}

// allLoops is a snapshot of the loops. Safe for concurrent use.
func (r *Runner) allLoops() []*loopState { return *r.loops.Load() }

// clientSpec describes a client to open.
type clientSpec struct {
	idx    int
	host   string // "" = --host round-robin on idx
	clean  bool
	subs   []string // subscription filters
	track  bool     // track deliveries without subscribing (a session that has its subscriptions)
	pub    bool
	pubIdx int
	topics []string
	retain bool
	limit  uint64
	expect uint64 // retained: messages to receive before "complete"
	empty  bool   // publish empty payloads (clearing retained topics)
}

// newClient builds a client from spec.
func (r *Runner) newClient(s clientSpec) *client {
	cfg := r.cfg
	id, _ := ExpandTemplate(cfg.ClientPrefix, s.idx, s.pubIdx) // validated
	c := &client{r: r, idx: s.idx, clean: s.clean,
		id:   fmt.Appendf(nil, "%s-%d", id, s.idx),
		host: s.host}
	if c.host == "" {
		c.host = cfg.Hosts[s.idx%len(cfg.Hosts)]
	}
	for _, f := range s.subs {
		c.subs = append(c.subs, codec.Subscription{Filter: []byte(f), QoS: cfg.QoS})
	}
	if len(s.subs) > 0 || s.track {
		c.tracker = NewTracker()
		c.expect = s.expect
	}
	if s.pub {
		c.isPub, c.pubIdx, c.retain, c.limit = true, uint32(s.pubIdx), s.retain, s.limit
		for _, t := range s.topics {
			c.topics = append(c.topics, []byte(t))
		}
		c.seqs = make([]uint64, len(c.topics))
		c.payload = NewPayload(cfg.Size)
		if s.empty {
			c.payload = []byte{}
		}
	}
	return c
}

// open dials every spec at the configured ramp and waits until each client
// is ready (CONNACK, and SUBACK for subscribers) or has failed.
func (r *Runner) open(ctx context.Context, specs []clientSpec) ([]*client, error) {
	cls := make([]*client, len(specs))
	for i, s := range specs {
		cls[i] = r.newClient(s)
	}
	r.clients = append(r.clients, cls...)
	for _, g := range []*gate{r.connected, r.ready, r.closedG} {
		g.grow(len(cls))
	}
	for _, c := range cls {
		if c.isPub && c.limit > 0 {
			r.pubsDone.grow(1)
		}
		if c.expect > 0 {
			r.complete.grow(1)
		}
	}
	failed0 := r.connFailed.Load()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConnTimeout)
	defer cancel()
	jobs := make(chan *client)
	var wg sync.WaitGroup
	for range min(r.cfg.Dialers, len(cls)) {
		wg.Go(func() {
			for c := range jobs {
				r.dial(ctx, c)
			}
		})
	}
	start := time.Now()
	for i, c := range cls {
		if r.cfg.Ramp > 0 {
			due := start.Add(time.Duration(float64(i) / r.cfg.Ramp * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d) // pacing the ramp, not waiting for a state
				select {
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			}
		}
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	if err := r.ready.wait(ctx); err != nil {
		return cls, fmt.Errorf("%w: %d of %d ready after %v", ErrConnect,
			r.ready.count()-r.connFailed.Load(), len(r.clients), r.cfg.ConnTimeout)
	}
	if r.connFailed.Load()-failed0 == int64(len(cls)) && len(cls) > 0 {
		// Nothing to measure: say why rather than report a run of zeros.
		errs := r.errorList()
		return cls, fmt.Errorf("%w: none of %d connected (%s)", ErrConnect, len(cls), strings.Join(errs[:min(3, len(errs))], "; "))
	}
	return cls, nil
}

// dial connects c and hands it to an event loop: gnet's, or with --tls a
// std loop after the TLS handshake. Dialer goroutines only.
func (r *Runner) dial(ctx context.Context, c *client) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if ips := r.cfg.SourceIPs; len(ips) > 0 {
		ip := ips[r.nextDial.Add(1)%uint64(len(ips))]
		d.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
		d.Control = bindNoPort
	}
	nc, err := d.DialContext(ctx, "tcp", c.host)
	if err == nil {
		if r.std != nil {
			err = r.std.enroll(ctx, c, nc)
		} else {
			_, err = r.cli.EnrollContext(nc, c) // closes nc, keeps a dup
		}
	}
	if err != nil {
		r.noteErr(err)
		r.connFailed.Add(1)
		r.connected.add()
		r.ready.add()
		r.closedG.add()
		if c.isPub && c.limit > 0 {
			r.pubsDone.add()
		}
		if c.expect > 0 {
			r.complete.add()
		}
		c.failed, c.state = true, stateClosed
	}
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT so that binding a source address
// defers the port choice to connect(): ports are then unique per
// (source, destination) rather than per source, which is what lets a few
// source addresses carry hundreds of thousands of connections.
func bindNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// onLoops runs fn on every loop and waits for all of them.
func (r *Runner) onLoops(fn func(l *loopState)) {
	var wg sync.WaitGroup
	for _, l := range r.allLoops() {
		wg.Add(1)
		if l.run(func() { defer wg.Done(); fn(l) }) != nil {
			wg.Done()
		}
	}
	wg.Wait()
}

// startPublishing starts every publisher's clock and schedule.
func (r *Runner) startPublishing() {
	r.onLoops(func(l *loopState) {
		now := r.clk.now()
		for _, c := range l.pubs {
			c.pubStart = now
		}
		l.publishing = true
	})
	for _, l := range r.allLoops() {
		l.schedule()
	}
}

func (r *Runner) stopPublishing() {
	r.onLoops(func(l *loopState) { l.publishing = false })
}

// publish runs the publish phase: until every publisher with a limit is
// done (untilDone), else for limit; limit 0 with untilDone means no cap. It
// returns the phase's length.
func (r *Runner) publish(ctx context.Context, untilDone bool, limit time.Duration) time.Duration {
	r.startPublishing()
	t0 := time.Now()
	if untilDone {
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if limit > 0 {
			wctx, cancel = context.WithTimeout(ctx, limit)
		}
		_ = r.pubsDone.wait(wctx) // a timeout ends the phase early
		cancel()
	} else {
		t := time.NewTimer(limit)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	r.stopPublishing()
	return time.Since(t0)
}

// totals sums the loop counters. Safe for concurrent use.
func (r *Runner) totals() (t totals) {
	for _, l := range r.allLoops() {
		t.sent += l.st.sent.Load()
		t.acked += l.st.acked.Load()
		t.recv += l.st.recv.Load()
		t.foreign += l.st.foreign.Load()
		t.stale += l.st.stale.Load()
		t.inflight += l.st.inflight.Load()
		t.open += l.st.open.Load()
		t.protoErr += l.st.protoErr.Load()
	}
	return t
}

type totals struct{ sent, acked, recv, foreign, stale, inflight, open, protoErr int64 }

// drain waits, up to --drain, until no publish is in flight and want(t)
// holds. It returns how long it waited.
func (r *Runner) drain(ctx context.Context, want func(totals) bool) time.Duration {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Drain)
	defer cancel()
	tk := time.NewTicker(2 * time.Millisecond) // polling counters of a live run
	defer tk.Stop()
	for {
		t := r.totals()
		if t.inflight <= 0 && (want == nil || want(t)) {
			return time.Since(t0)
		}
		select {
		case <-tk.C:
		case <-ctx.Done():
			return time.Since(t0)
		}
	}
}

// disconnect sends DISCONNECT on every open connection and closes it, then
// waits (bounded) for the closes.
func (r *Runner) disconnect(ctx context.Context) {
	r.closing.Store(true)
	v := r.cfg.Version
	r.onLoops(func(l *loopState) {
		for _, c := range l.clients {
			if c.state < stateClosed {
				var d codec.DisconnectPacket
				c.flush(codec.AppendDisconnect(l.wbuf[:0], &d, v))
				_ = c.conn.Close()
			}
		}
	})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = r.closedG.wait(ctx) // stopping the transport closes whatever is left
}

// Stop disconnects, stops the transport and the driver, and folds the last
// histogram intervals into the sampler. After Stop the clients may be read
// from the calling goroutine.
// It is idempotent.
func (r *Runner) Stop(ctx context.Context) {
	r.stopOnce.Do(func() {
		r.disconnect(ctx)
		close(r.stopDrv)
		<-r.drvDone
		if r.std != nil {
			r.std.stop()
		} else {
			_ = r.cli.Stop()
		}
		r.sampler.sample(r, true)
	})
}

// noteErr remembers a distinct error. Safe for concurrent use.
func (r *Runner) noteErr(err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	if ne := (*net.OpError)(nil); errors.As(err, &ne) {
		msg = ne.Op + ": " + ne.Err.Error() // without the per-connection addresses
	}
	r.noteErrString(msg)
}

func (r *Runner) noteErrString(msg string) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if _, ok := r.errs[msg]; ok || len(r.errs) < 20 {
		r.errs[msg]++
	}
}

// errorList returns the distinct errors with counts, most frequent first.
func (r *Runner) errorList() []string {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	msgs := make([]string, 0, len(r.errs))
	for m := range r.errs {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool {
		a, b := r.errs[msgs[i]], r.errs[msgs[j]]
		return a > b || (a == b && msgs[i] < msgs[j])
	})
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprintf("%dx %s", r.errs[m], m)
	}
	return out
}

// drive schedules publish ticks and samples progress until Stop.
func (r *Runner) drive() {
	defer close(r.drvDone)
	tick := time.NewTicker(r.cfg.Tick)
	defer tick.Stop()
	every := r.cfg.Interval
	if every <= 0 {
		every = time.Second // quiet: the sampler still keeps the series
	}
	pt := time.NewTicker(every)
	defer pt.Stop()
	for {
		select {
		case <-tick.C:
			for _, l := range r.allLoops() {
				l.schedule()
			}
		case <-pt.C:
			r.sampler.sample(r, false)
		case <-r.stopDrv:
			return
		}
	}
}

// nopLogger silences gnet.
type nopLogger struct{}

func (nopLogger) Debugf(string, ...any) {}
func (nopLogger) Infof(string, ...any)  {}
func (nopLogger) Warnf(string, ...any)  {}
func (nopLogger) Errorf(string, ...any) {}
func (nopLogger) Fatalf(string, ...any) {}
