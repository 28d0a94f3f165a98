package fsm

import (
	"bytes"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyBatch256Claims applies one log entry of 256 SessionClaims
// (distinct clients, half with a will) per iteration.
func BenchmarkApplyBatch256Claims(b *testing.B) {
	f := New()
	var logs [][]byte
	const distinct = 64 // batches of distinct client ids, then they repeat (takeovers)
	for i := 0; i < distinct; i++ {
		bt := &Batch{Node: "n1", Boot: 1}
		for j := 0; j < 256; j++ {
			c := &SessionClaim{ClientID: fmt.Sprintf("client-%d-%d", i, j), Node: "n1", Boot: 1, Expiry: 3600, ProtocolVersion: 5, Now: t0}
			if j%2 == 0 {
				c.Will = &Will{Topic: "will/" + c.ClientID, Payload: []byte("offline"), QoS: 1, Delay: 5}
			}
			bt.Ops = append(bt.Ops, c)
		}
		logs = append(logs, EncodeBatch(bt))
	}
	// Each iteration is a new batch (seq), so nothing is deduplicated.
	data := make([][]byte, b.N)
	for i := range data {
		data[i] = withSeq(logs[i%distinct], uint64(i+1))
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(logs[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data[i]})
		if res := out.(*Response).Take(); res[255].Code != CodeOK {
			b.Fatal(res[255].Code)
		}
	}
	b.ReportMetric(float64(b.N)*256/b.Elapsed().Seconds(), "claims/s")
}

// withSeq returns enc with its batch seq replaced.
func withSeq(enc []byte, seq uint64) []byte {
	b, _ := DecodeBatch(enc)
	b.Seq = seq
	return EncodeBatch(b)
}

const benchRetained = 1_000_000

var bigOnce struct {
	sync.Once
	f    *FSM
	snap []byte
}

// bigFSM returns an FSM holding 1,000,000 retained messages (64-byte
// payloads, topics like "site/17/dev/4242/temp") and its snapshot.
func bigFSM(b *testing.B) (*FSM, []byte) {
	bigOnce.Do(func() {
		f := New()
		payload := bytes.Repeat([]byte{'v'}, 64)
		idx := uint64(0)
		for i := 0; i < benchRetained; i += 4096 {
			bt := &Batch{Node: "n1", Boot: 1, Seq: uint64(i/4096 + 1)}
			for j := i; j < i+4096 && j < benchRetained; j++ {
				bt.Ops = append(bt.Ops, &RetainedSet{Topic: fmt.Sprintf("site/%d/dev/%d/temp", j%1000, j), Payload: payload, QoS: 1, Now: t0})
			}
			idx++
			f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: EncodeBatch(bt)})
		}
		if f.Stats().Retained != benchRetained {
			panic("BUG: bench setup")
		}
		sink := &memSink{}
		s, _ := f.Snapshot()
		if err := s.Persist(sink); err != nil {
			panic(err)
		}
		bigOnce.f, bigOnce.snap = f, sink.Bytes()
	})
	return bigOnce.f, bigOnce.snap
}

// heapPeak samples the live heap every millisecond until stopped, and
// returns the peak above the baseline measured at start.
type heapPeak struct {
	stop chan struct{}
	done chan uint64
	base uint64
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startPeak() *heapPeak {
	runtime.GC()
	p := &heapPeak{stop: make(chan struct{}), done: make(chan uint64), base: heapBytes()}
	go func() {
		peak := uint64(0)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if h := heapBytes(); h > peak {
				peak = h
			}
			select {
			case <-p.stop:
				p.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// end returns the peak heap growth in MiB.
func (p *heapPeak) end() float64 {
	close(p.stop)
	peak := <-p.done
	if peak < p.base {
		return 0
	}
	return float64(peak-p.base) / (1 << 20)
}

type countSink struct{ n int64 }

func (c *countSink) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
func (c *countSink) ID() string                  { return "count" }
func (c *countSink) Close() error                { return nil }
func (c *countSink) Cancel() error               { return nil }

func BenchmarkSnapshotPersist1M(b *testing.B) {
	f, data := bigFSM(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	peak := startPeak()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, _ := f.Snapshot()
		sink := &countSink{}
		if err := s.Persist(sink); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(peak.end(), "peak-heap-MiB")
	b.ReportMetric(float64(len(data))/(1<<20), "snapshot-MiB")
}

func BenchmarkSnapshotRestore1M(b *testing.B) {
	_, data := bigFSM(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var live float64
	peak := startPeak()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := New()
		if err := f.Restore(nopCloser{bytes.NewReader(data)}); err != nil {
			b.Fatal(err)
		}
		if f.Stats().Retained != benchRetained {
			b.Fatal("restored count")
		}
		if i == b.N-1 {
			b.StopTimer()
			runtime.GC()
			live = float64(heapBytes()-peak.base) / (1 << 20)
			runtime.KeepAlive(f)
		}
	}
	b.ReportMetric(peak.end(), "peak-heap-MiB")
	b.ReportMetric(live, "state-heap-MiB")
}

// BenchmarkRetainedMatch1M matches a filter with one '+' level against the
// 1M-message tree (1,000 results).
func BenchmarkRetainedMatch1M(b *testing.B) {
	f, _ := bigFSM(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n := len(f.RetainedMatch("site/17/dev/+/temp")); n != 1000 {
			b.Fatal(n)
		}
	}
}
