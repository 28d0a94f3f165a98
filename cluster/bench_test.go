package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/fsm"
)

// benchNode is one raft instance with its FSM, proposer and broker store.
type benchNode struct {
	r     *Raft
	p     *Proposer
	store *Store
}

// benchCluster opens n raft instances on loopback TCP, each on its own data
// dir with the production tuning (not Fast), joins them as voters and
// starts a proposer and a store on each.
func benchCluster(b *testing.B, n int) []*benchNode {
	b.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := make([]*benchNode, n)
	for i := range nodes {
		id := fmt.Sprintf("n%d", i+1)
		f := fsm.New()
		r, err := OpenRaft(RaftConfig{NodeID: id, Dir: b.TempDir(), Bind: "127.0.0.1:0", Bootstrap: i == 0, Logger: quiet}, f)
		if err != nil {
			b.Fatal(err)
		}
		p := NewProposer(r, ProposerConfig{Node: id, Boot: uint64(i + 1), Logger: quiet})
		nodes[i] = &benchNode{r: r, p: p, store: NewStore(f, p, id, uint64(i+1), quiet)}
	}
	b.Cleanup(func() {
		for _, nd := range nodes {
			nd.p.Close()
			nd.r.Close()
		}
	})
	if _, err := nodes[0].r.WaitLeader(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	for i := 1; i < n; i++ {
		if err := nodes[0].r.AddVoter(raft.ServerID(fmt.Sprintf("n%d", i+1)), nodes[i].r.Addr(), 0, 10*time.Second).Error(); err != nil {
			b.Fatal(err)
		}
	}
	// Every node knows the leader before the clock starts.
	for _, nd := range nodes {
		if _, err := nd.r.WaitLeader(10 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
	return nodes
}

// BenchmarkClaims measures session claims (clean start 0, expiry 3600, the
// claim of a persistent session's CONNECT) through the batching proposer and
// raft to the FSM, the path every CONNECT waits for. 256 goroutines claim
// concurrently, each waiting for its claim before the next, like as many
// clients connecting at once; on three nodes they are spread over the
// nodes, so two thirds are forwarded by a follower to the leader.
func BenchmarkClaims(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) { benchClaims(b, n) })
	}
}

func benchClaims(b *testing.B, n int) {
	nodes := benchCluster(b, n)
	const clients = 256
	var (
		next    atomic.Int64
		failed  atomic.Int64
		mu      sync.Mutex
		latency []time.Duration
		wg      sync.WaitGroup
	)
	before := nodes[0].r.AppliedIndex()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			store := nodes[g%n].store
			done := make(chan error, 1)
			var mine []time.Duration
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					break
				}
				t0 := time.Now()
				store.Claim(broker.ClaimRequest{ClientID: fmt.Sprintf("bench-%d", i), Expiry: 3600, ProtocolVersion: 5},
					func(res broker.ClaimResult, err error) {
						if err == nil && res.Epoch == 0 {
							err = fmt.Errorf("claim without an epoch")
						}
						done <- err
					})
				if err := <-done; err != nil {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latency = append(latency, mine...)
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d claims failed", f, b.N)
	}
	slices.Sort(latency)
	pct := func(p float64) float64 {
		return float64(latency[int(p*float64(len(latency)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "claims/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	// Log entries are batches: how many claims one entry carried on average.
	if entries := nodes[0].r.AppliedIndex() - before; entries > 0 {
		b.ReportMetric(float64(b.N)/float64(entries), "claims/entry")
	}
}
