package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flockmq/flockmq/fsm"
)

// ErrUnavailable means a proposal found no leader that would take it within
// the hold time: the MQTT operation fails with Server Unavailable.
var ErrUnavailable = errors.New("cluster: no raft leader took the proposal in time")

// ErrBacklog means the proposer already holds MaxPending ops waiting for a
// batch: the new op fails at once, and the broker answers as for any store
// failure (CONNACK 0x88 / 3.1.1 0x03, SUBACK 0x80; see docs/threads.md).
var ErrBacklog = errors.New("cluster: too many proposals waiting for raft")

// DefaultMaxPending is the default bound of the proposer's pending ops: 256
// batches of the default MaxOps.
const DefaultMaxPending = 65536

// ProposerConfig tunes the batching proposer.
type ProposerConfig struct {
	Node string
	Boot uint64
	// MaxOps is the most ops in one log entry (default 256).
	MaxOps int
	// Linger is how long the first op of a batch waits for company (default 1 ms).
	Linger time.Duration
	// Hold is how long a batch is retried without a leader before its ops fail
	// with ErrUnavailable (default 5 s).
	Hold time.Duration
	// MaxPending bounds the ops queued and not yet taken into a batch
	// (default DefaultMaxPending); Propose fails at once with ErrBacklog
	// beyond it.
	MaxPending int
	Logger     *slog.Logger
}

// Proposer gathers the node's commands into batches, one raft log entry
// each, and submits them to the leader: directly when this node leads,
// forwarded over the raft port otherwise. A batch keeps its idempotency key
// (node, boot, seq) across retries, so a retry after a lost leadership is
// applied once. Batches are submitted one at a time, in order, so the ops of
// one node apply in the order they were proposed.
//
// Propose is safe for concurrent use.
type Proposer struct {
	r   *Raft
	cfg ProposerConfig

	mu      sync.Mutex
	pending []pendingOp
	full    bool // pending reached MaxPending and has not drained to half since
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	seq     uint64
	closed  bool

	failLogged time.Time // the last "proposal failed" log; run goroutine only

	rejected atomic.Uint64 // ops failed with ErrBacklog

	// Metrics: the ops in each batch, and the time from submitting a batch
	// to its results (nanoseconds), commit and apply on the leader included.
	batchOps     *Histogram
	applyLatency *Histogram
}

type pendingOp struct {
	cmd  fsm.Command
	done func(fsm.Result, error)
	at   time.Time // when it was proposed: it fails Hold after, batched or not
}

// NewProposer starts a proposer on r and makes r answer forwarded proposals
// while it leads.
func NewProposer(r *Raft, cfg ProposerConfig) *Proposer {
	if cfg.MaxOps <= 0 {
		cfg.MaxOps = 256
	}
	if cfg.Linger <= 0 {
		cfg.Linger = time.Millisecond
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 5 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Proposer{r: r, cfg: cfg, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		batchOps:     newHistogram(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536),
		applyLatency: newHistogram(250e3, 500e3, 1e6, 2.5e6, 5e6, 10e6, 25e6, 50e6, 100e6, 250e6, 500e6, 1e9, 2.5e9, 5e9)}
	r.SetForwardHandler(p.serveForward)
	go p.run()
	return p
}

// Propose queues cmd; done is called once with its result, from the
// proposer's goroutine. It must not block. When the proposer is closed, or
// MaxPending ops are queued already (ErrBacklog), done is called at once,
// before Propose returns.
func (p *Proposer) Propose(cmd fsm.Command, done func(fsm.Result, error)) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		done(fsm.Result{}, ErrUnavailable)
		return
	}
	if len(p.pending) >= p.cfg.MaxPending {
		first := !p.full
		p.full = true
		p.mu.Unlock()
		p.rejected.Add(1)
		if first {
			p.cfg.Logger.Warn("proposal backlog full: new operations fail until it drains",
				"pending", p.cfg.MaxPending, "rejected", p.rejected.Load())
		}
		done(fsm.Result{}, ErrBacklog)
		return
	}
	p.pending = append(p.pending, pendingOp{cmd, done, time.Now()})
	first := len(p.pending) == 1
	p.mu.Unlock()
	if first {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// Rejected is the number of ops that failed with ErrBacklog. Safe for
// concurrent use.
func (p *Proposer) Rejected() uint64 { return p.rejected.Load() }

// BatchOps is the histogram of ops per batch proposed.
func (p *Proposer) BatchOps() *Histogram { return p.batchOps }

// ApplyLatency is the histogram of the nanoseconds from proposing a batch
// to its results.
func (p *Proposer) ApplyLatency() *Histogram { return p.applyLatency }

// Close stops the proposer; ops still queued fail with ErrUnavailable.
func (p *Proposer) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	left := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, op := range left {
		op.done(fsm.Result{}, ErrUnavailable)
	}
}

func (p *Proposer) run() {
	defer close(p.done)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.kick:
		}
		// Let a batch fill for Linger unless it is full already.
		p.mu.Lock()
		n := len(p.pending)
		p.mu.Unlock()
		if n < p.cfg.MaxOps {
			linger.Reset(p.cfg.Linger)
			select {
			case <-p.stop:
				return
			case <-linger.C:
			}
		}
		for {
			p.mu.Lock()
			n := min(len(p.pending), p.cfg.MaxOps)
			if n == 0 {
				p.mu.Unlock()
				break
			}
			ops := append([]pendingOp(nil), p.pending[:n]...)
			left := len(p.pending) - n
			copy(p.pending, p.pending[n:])
			clear(p.pending[left:]) // pin no command the batch took
			p.pending = p.pending[:left]
			if p.full && len(p.pending) <= p.cfg.MaxPending/2 {
				p.full = false // the next overflow is logged again
			}
			p.mu.Unlock()
			p.submit(p.expire(ops))
		}
	}
}

// expire fails the ops of a batch that waited Hold already, behind batches
// held without a leader: none of them reached raft. Each op is held Hold in
// all, so that a client's request (a CONNECT's claim) gets its answer
// within Hold, not Hold per batch queued in front of it. It returns the
// others.
func (p *Proposer) expire(ops []pendingOp) []pendingOp {
	now := time.Now()
	keep := ops[:0]
	for _, op := range ops {
		if now.Sub(op.at) >= p.cfg.Hold {
			op.done(fsm.Result{}, fmt.Errorf("%w: queued behind batches no leader took", ErrUnavailable))
			continue
		}
		keep = append(keep, op)
	}
	return keep
}

// submit applies one batch and hands each op its result.
func (p *Proposer) submit(ops []pendingOp) {
	if len(ops) == 0 {
		return
	}
	p.seq++
	b := fsm.Batch{Node: p.cfg.Node, Boot: p.cfg.Boot, Seq: p.seq, Ops: make([]fsm.Command, len(ops))}
	for i, op := range ops {
		b.Ops[i] = op.cmd
	}
	data := fsm.EncodeBatch(&b)
	p.batchOps.Observe(uint64(len(ops)))
	start := time.Now()
	res, err := p.apply(data, ops[0].at.Add(p.cfg.Hold))
	p.applyLatency.Observe(uint64(time.Since(start)))
	if err == nil && len(res) != len(ops) {
		err = fmt.Errorf("cluster: %d results for %d ops", len(res), len(ops))
	}
	for i, op := range ops {
		if err != nil {
			op.done(fsm.Result{}, err)
			continue
		}
		op.done(res[i], nil)
	}
}

// apply submits data until a leader applies it or deadline passes (Hold
// after its oldest op was proposed).
func (p *Proposer) apply(data []byte, deadline time.Time) ([]fsm.Result, error) {
	backoff := 10 * time.Millisecond
	var last error
	for {
		res, err := p.applyOnce(data, time.Until(deadline))
		if err == nil {
			return res, nil
		}
		last = err
		if now := time.Now(); now.After(deadline) {
			// Once per Hold: while there is no leader, every batch fails.
			if now.Sub(p.failLogged) >= p.cfg.Hold {
				p.failLogged = now
				p.cfg.Logger.Warn("proposal failed", "err", last)
			}
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, last)
		}
		// Jittered backoff, then try whoever leads now.
		sleep := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-p.stop:
			return nil, ErrUnavailable
		case <-time.After(min(sleep, time.Until(deadline))):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

func (p *Proposer) applyOnce(data []byte, timeout time.Duration) ([]fsm.Result, error) {
	if timeout <= 0 {
		timeout = time.Millisecond
	}
	addr, id := p.r.LeaderWithID()
	switch {
	case id == "":
		return nil, errors.New("no leader")
	case p.r.State() == raft.Leader:
		return applyLocal(p.r, data, timeout)
	}
	resp, err := p.r.Forward(addr, data, timeout)
	if err != nil {
		return nil, err
	}
	return fsm.DecodeResults(resp)
}

// applyLocal applies data on this node, which must lead.
func applyLocal(r *Raft, data []byte, timeout time.Duration) ([]fsm.Result, error) {
	f := r.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return nil, err // ErrNotLeader, ErrLeadershipLost (outcome unknown: the retry is deduplicated)
	}
	switch v := f.Response().(type) {
	case *fsm.Response:
		return v.Take(), nil
	case error:
		return nil, v
	}
	return nil, fmt.Errorf("cluster: unexpected apply response %T", f.Response())
}

// serveForward applies a batch forwarded by another node.
func (p *Proposer) serveForward(req []byte) ([]byte, error) {
	if p.r.State() != raft.Leader {
		return nil, raft.ErrNotLeader
	}
	res, err := applyLocal(p.r, req, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return fsm.AppendResults(nil, res), nil
}
