package fsm

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestMain fails the run if goroutines started by the tests (raft nodes,
// concurrent appliers) are still alive after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var leaked []string
		err := waitFor(5*time.Second, func() error {
			leaked = leakedGoroutines()
			if len(leaked) > 0 {
				return fmt.Errorf("%d goroutines still alive", len(leaked))
			}
			return nil
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n%s\n", err, strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines other than the main one
// and the runtime's signal handler (which the fuzzing engine starts).
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "fsm.TestMain") || strings.Contains(g, "os/signal.") {
			continue
		}
		out = append(out, g)
	}
	return out
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}

// applier feeds batches to an FSM as consecutive raft log entries.
type applier struct {
	t     testing.TB
	f     *FSM
	index uint64
	seq   uint64
}

func newApplier(t testing.TB) *applier { return &applier{t: t, f: New()} }

func (a *applier) log(b *Batch) *raft.Log {
	a.index++
	return &raft.Log{Index: a.index, Term: 1, Type: raft.LogCommand, Data: EncodeBatch(b)}
}

// do applies ops as one batch from node "n1" boot 1 and returns the results.
func (a *applier) do(ops ...Command) []Result {
	a.t.Helper()
	a.seq++
	return a.batch(&Batch{Node: "n1", Boot: 1, Seq: a.seq, Ops: ops})
}

func (a *applier) batch(b *Batch) []Result {
	a.t.Helper()
	out := a.f.Apply(a.log(b))
	resp, ok := out.(*Response)
	if !ok {
		a.t.Fatalf("apply: response %T %v", out, out)
	}
	res := resp.Take()
	if len(res) != len(b.Ops) {
		a.t.Fatalf("apply: %d results for %d ops", len(res), len(b.Ops))
	}
	return res
}

// one applies a single op and returns its result.
func (a *applier) one(op Command) Result {
	a.t.Helper()
	return a.do(op)[0]
}

func (a *applier) claim(id string, clean bool, expiry uint32, now int64) Result {
	a.t.Helper()
	r := a.one(&SessionClaim{ClientID: id, Node: "n1", Boot: 1, CleanStart: clean, Expiry: expiry, ProtocolVersion: 5, Now: now})
	if r.Code != CodeOK {
		a.t.Fatalf("claim %s: %v", id, r.Code)
	}
	return r
}

// dumpT is a canonical view of the whole state, derived indexes included.
type dumpT struct {
	Sessions []Session
	Retained []Retained
	Boots    []string
	Owners   []string
	SessExp  []string
	Wills    []string
	RetExp   []string
	Stats    Stats
}

func dump(f *FSM) dumpT { return dumpOf(f.st.Load()) }

func dumpOf(st *state) dumpT {
	var d dumpT
	walk(st.sessions, func(_ string, s *Session) bool {
		d.Sessions = append(d.Sessions, *s)
		return true
	})
	walk(st.retained, func(_ string, m *Retained) bool {
		d.Retained = append(d.Retained, *m)
		return true
	})
	for k, e := range st.boots {
		// Slots by what they answer, not how they hold it (a restored slot
		// keeps its claim epochs as rich results).
		var window []string
		for i := range e.window {
			if w := e.window[i]; w != nil {
				window = append(window, fmt.Sprintf("%d:%d:%v", i, w.seq, w.results()))
			}
		}
		d.Boots = append(d.Boots, fmt.Sprintf("%s/%d last=%d down=%v@%d window=%v", k.node, k.boot, e.lastSeq, e.down, e.downAt, window))
	}
	sort.Strings(d.Boots)
	keys := func(dst *[]string, t *tree[string]) {
		walk(t, func(k string, v string) bool {
			*dst = append(*dst, fmt.Sprintf("%x=%v", k, v))
			return true
		})
	}
	keys(&d.Owners, st.owners)
	keys(&d.SessExp, st.sessExp)
	keys(&d.Wills, st.wills)
	keys(&d.RetExp, st.retExp)
	d.Stats = Stats{Sessions: st.sessions.Len(), Subscriptions: st.subs, Retained: st.retained.Len(), RetainedBytes: st.retBytes}
	return d
}

// requireEqualState fails unless a and b hold the same state.
func requireEqualState(t testing.TB, a, b *FSM) {
	t.Helper()
	da, db := dump(a), dump(b)
	if !reflect.DeepEqual(da, db) {
		t.Fatalf("states differ:\n%s", diffDump(da, db))
	}
}

func diffDump(a, b dumpT) string {
	var sb strings.Builder
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			fmt.Fprintf(&sb, "%s:\n  a=%+v\n  b=%+v\n", va.Type().Field(i).Name, va.Field(i).Interface(), vb.Field(i).Interface())
		}
	}
	return sb.String()
}

// persist writes f's snapshot to a byte slice.
func persist(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !sink.closed {
		t.Fatal("Persist did not close the sink")
	}
	return sink.Bytes()
}

// memSink is a raft.SnapshotSink in memory; failAfter > 0 makes writes fail
// once that many bytes were written.
type memSink struct {
	bytes.Buffer
	failAfter int
	closed    bool
	cancelled bool
}

func (s *memSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, fmt.Errorf("disk full")
	}
	return s.Buffer.Write(p)
}
func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

func restoreFrom(t testing.TB, data []byte) *FSM {
	t.Helper()
	f := New()
	if err := f.Restore(nopCloser{bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	return f
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
