package routing

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

func TestLocalRoutesRefcount(t *testing.T) {
	l := NewLocalRoutes("n1", 7, 0)
	if l.LogSize() != DefaultRouteLogSize || l.Node() != "n1" || l.Boot() != 7 {
		t.Fatalf("got %q boot %d log %d", l.Node(), l.Boot(), l.LogSize())
	}
	steps := []struct {
		add     bool
		filter  string
		changed bool
		version uint64
	}{
		{true, "a/b", true, 1},
		{true, "a/b", false, 1},
		{true, "$share/g/a/b", true, 2},       // a group is its own route
		{true, "$queue/a/b", true, 3},         // keyed $share/$queue/a/b
		{true, "$share/$queue/a/b", false, 3}, // the same group
		{true, "a/+", true, 4},
		{true, "bad/#/x", false, 4}, // invalid: ignored
		{false, "a/b", false, 4},
		{false, "$queue/a/b", false, 4},
		{false, "$share/$queue/a/b", true, 5},
		{false, "$share/g/a/b", true, 6},
		{false, "a/b", true, 7}, // the last subscription
		{false, "a/b", false, 7},
		{false, "never", false, 7},
		{false, "bad/#/x", false, 7},
		{true, "$share/g/x/#", true, 8},
	}
	for i, s := range steps {
		var got bool
		if s.add {
			got = l.Add(s.filter)
		} else {
			got = l.Remove(s.filter)
		}
		if got != s.changed || l.Version() != s.version {
			t.Fatalf("step %d (%v %q): changed %v version %d, want %v %d", i, s.add, s.filter, got, l.Version(), s.changed, s.version)
		}
	}
	want := RouteSnapshot{Node: "n1", Boot: 7, Version: 8, Filters: []string{"$share/g/x/#", "a/+"}}
	if got := l.Snapshot(); !reflect.DeepEqual(got, want) || l.Len() != 2 {
		t.Fatalf("snapshot %+v (len %d), want %+v", got, l.Len(), want)
	}
	ds, ok := l.DeltasSince(0)
	wantDs := []RouteDelta{{"a/b", true, 1}, {"$share/g/a/b", true, 2}, {"$share/$queue/a/b", true, 3}, {"a/+", true, 4},
		{"$share/$queue/a/b", false, 5}, {"$share/g/a/b", false, 6}, {"a/b", false, 7}, {"$share/g/x/#", true, 8}}
	if !ok || !reflect.DeepEqual(ds, wantDs) {
		t.Fatalf("DeltasSince(0) = %v %v, want %v", ds, ok, wantDs)
	}
}

func TestLocalRoutesDeltasSince(t *testing.T) {
	l := NewLocalRoutes("n1", 1, 4)
	for i := range 6 {
		l.Add("f/" + strconv.Itoa(i))
	}
	for _, c := range []struct {
		v     uint64
		first uint64 // version of the first delta; 0 for none
		ok    bool
	}{
		{6, 0, true}, {5, 6, true}, {2, 3, true}, {1, 0, false}, {0, 0, false}, {7, 0, false},
	} {
		ds, ok := l.DeltasSince(c.v)
		if ok != c.ok {
			t.Fatalf("DeltasSince(%d) ok %v, want %v", c.v, ok, c.ok)
		}
		if !ok {
			continue
		}
		if uint64(len(ds)) != 6-c.v {
			t.Fatalf("DeltasSince(%d) gave %d deltas", c.v, len(ds))
		}
		for i, d := range ds {
			if d.Version != c.v+1+uint64(i) || d.Filter != "f/"+strconv.Itoa(int(d.Version)-1) || !d.Add {
				t.Fatalf("DeltasSince(%d)[%d] = %+v", c.v, i, d)
			}
		}
	}
}

func deltas(from uint64, ops ...string) []RouteDelta {
	out := make([]RouteDelta, len(ops))
	for i, op := range ops {
		out[i] = RouteDelta{Filter: op[1:], Add: op[0] == '+', Version: from + 1 + uint64(i)}
	}
	return out
}

func requireTable(t *testing.T, r *RemoteRoutes, node string, boot, version uint64, filters ...string) {
	t.Helper()
	got, ok := r.Table(node)
	if filters == nil {
		filters = []string{}
	}
	want := RouteSnapshot{Node: node, Boot: boot, Version: version, Filters: filters}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("table of %s = %+v (held %v), want %+v", node, got, ok, want)
	}
}

func TestRemoteApplyDelta(t *testing.T) {
	r := NewRemoteRoutes()
	if !r.ApplyDelta("n", 1, 2, deltas(2, "+x")) {
		t.Fatal("unknown node, batch not from 0: want gap")
	}
	if r.Len() != 0 {
		t.Fatal("a gap changed the view")
	}
	if r.ApplyDelta("n", 1, 0, deltas(0, "+a", "+b")) {
		t.Fatal("batch from 0 of an unknown node: gap")
	}
	requireTable(t, r, "n", 1, 2, "a", "b")
	for _, c := range []struct {
		name          string
		boot, version uint64
		d             []RouteDelta
		gap           bool
		wantVersion   uint64
		want          []string
	}{
		{"duplicate", 1, 0, deltas(0, "+a", "+b"), false, 2, []string{"a", "b"}},
		{"stale", 1, 1, deltas(1, "+b"), false, 2, []string{"a", "b"}},
		{"gap", 1, 3, deltas(3, "+d"), true, 2, []string{"a", "b"}},
		{"older boot", 0, 2, deltas(2, "+z"), false, 2, []string{"a", "b"}},
		{"overlap", 1, 1, deltas(1, "+b", "-a", "+c"), false, 4, []string{"b", "c"}},
		{"contiguous", 1, 4, deltas(4, "-b"), false, 5, []string{"c"}},
		{"empty", 1, 5, nil, false, 5, []string{"c"}},
		{"not contiguous", 1, 5, []RouteDelta{{"q", true, 6}, {"r", true, 8}}, true, 5, []string{"c"}},
		{"newer boot past 0", 2, 3, deltas(3, "+n"), true, 5, []string{"c"}},
	} {
		if gap := r.ApplyDelta("n", c.boot, c.version, c.d); gap != c.gap {
			t.Fatalf("%s: gap %v, want %v", c.name, gap, c.gap)
		}
		requireTable(t, r, "n", 1, c.wantVersion, c.want...)
	}
	// A newer boot from version 0 replaces the old table.
	if r.ApplyDelta("n", 2, 0, deltas(0, "+new")) {
		t.Fatal("newer boot from 0: gap")
	}
	requireTable(t, r, "n", 2, 1, "new")
	if got := r.Nodes([]byte("c"), nil); len(got) != 0 {
		t.Fatalf("old boot's route still matches: %v", got)
	}
}

func TestRemoteApplySnapshot(t *testing.T) {
	r := NewRemoteRoutes()
	snap := func(boot, version uint64, fs ...string) RouteSnapshot {
		return RouteSnapshot{Node: "n", Boot: boot, Version: version, Filters: fs}
	}
	for _, c := range []struct {
		name          string
		s             RouteSnapshot
		applied       bool
		boot, version uint64
		want          []string
	}{
		{"first", snap(2, 5, "a", "b/#"), true, 2, 5, []string{"a", "b/#"}},
		{"equal", snap(2, 5, "zzz"), false, 2, 5, []string{"a", "b/#"}},
		{"older version", snap(2, 4, "zzz"), false, 2, 5, []string{"a", "b/#"}},
		{"older boot, newer version", snap(1, 99, "zzz"), false, 2, 5, []string{"a", "b/#"}},
		{"newer version", snap(2, 7, "b/#", "c", "c"), true, 2, 7, []string{"b/#", "c"}},
		{"newer boot, lower version", snap(3, 0), true, 3, 0, nil},
	} {
		if got := r.ApplySnapshot(c.s); got != c.applied {
			t.Fatalf("%s: applied %v, want %v", c.name, got, c.applied)
		}
		requireTable(t, r, "n", c.boot, c.version, c.want...)
	}
	if got := r.Nodes([]byte("b/x"), nil); len(got) != 0 {
		t.Fatalf("routes of a replaced table match: %v", got)
	}
	if !r.root.empty() {
		t.Fatal("trie not pruned")
	}
}

func TestRemoteDropAndDigest(t *testing.T) {
	r := NewRemoteRoutes()
	r.ApplySnapshot(RouteSnapshot{Node: "n2", Boot: 1, Version: 3, Filters: []string{"a/#", "b"}})
	r.ApplySnapshot(RouteSnapshot{Node: "n1", Boot: 4, Version: 9, Filters: []string{"a/#"}})
	want := []RouteVersion{{"n1", 4, 9}, {"n2", 1, 3}}
	if got := r.Digest(); !reflect.DeepEqual(got, want) {
		t.Fatalf("digest %v, want %v", got, want)
	}
	if !r.Drop("n2") || r.Drop("n2") || r.Drop("nope") {
		t.Fatal("Drop results")
	}
	if got := r.Nodes([]byte("a/x"), nil); !reflect.DeepEqual(got, []string{"n1"}) {
		t.Fatalf("Nodes after drop = %v", got)
	}
	if got := r.Nodes([]byte("b"), nil); len(got) != 0 {
		t.Fatalf("dropped node's route matches: %v", got)
	}
	r.Drop("n1")
	if !r.root.empty() || r.Len() != 0 || len(r.Digest()) != 0 {
		t.Fatal("not empty after dropping everything")
	}
}

func TestRemoteNodesRules(t *testing.T) {
	r := NewRemoteRoutes()
	tables := map[string][]string{
		"n1": {"a/b", "a/#", "$SYS/#"},
		"n2": {"+/b", "#"},
		"n3": {"a/+/c", "+", "a//b"},
	}
	for n, fs := range tables {
		r.ApplySnapshot(RouteSnapshot{Node: n, Boot: 1, Version: 1, Filters: fs})
	}
	for topic, want := range map[string][]string{
		"a/b":     {"n1", "n2"},
		"a":       {"n1", "n2", "n3"}, // a/# matches a
		"a/x/c":   {"n1", "n2", "n3"},
		"z/x/c":   {"n2"},
		"a//b":    {"n1", "n3", "n2"},
		"$SYS/x":  {"n1"}, // no leading wildcard for $ topics [MQTT-4.7.2-1]
		"$SYS":    {"n1"},
		"$other":  nil,
		"$SYS/+b": {"n1"},
		"x":       {"n2", "n3"},
	} {
		got := r.Nodes([]byte(topic), []string{"keep"})
		if got[0] != "keep" {
			t.Fatalf("%q: dst prefix clobbered", topic)
		}
		got = got[1:]
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("Nodes(%q) = %v, want %v", topic, got, want)
		}
	}
	if got := r.Nodes(nil, nil); len(got) != 0 {
		t.Fatalf("empty topic matched %v", got)
	}
}

// TestRemoteNodesMatchesNaive checks Nodes against naiveMatch over random
// tables, topics deeper than the stack array included.
func TestRemoteNodesMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewRemoteRoutes()
	tables := map[string]map[string]bool{}
	for i := range 2000 {
		n := "n" + strconv.Itoa(rng.IntN(5))
		if tables[n] == nil {
			tables[n] = map[string]bool{}
		}
		f, _ := routeFilter(randFilter(rng))
		tables[n][f] = !tables[n][f]
		s := RouteSnapshot{Node: n, Boot: 1, Version: uint64(i + 1)}
		for f, on := range tables[n] {
			if on {
				s.Filters = append(s.Filters, f)
			}
		}
		r.ApplySnapshot(s)
		topic := randTopic(rng)
		if i%50 == 0 {
			topic = "a" + string(bytes.Repeat([]byte("/a"), maxStackLevels+3))
		}
		got := r.Nodes([]byte(topic), nil)
		slices.Sort(got)
		if !slices.Equal(got, naiveNodes(tables, "", topic)) {
			t.Fatalf("Nodes(%q) = %v, want %v", topic, got, naiveNodes(tables, "", topic))
		}
	}
}

// naiveNodes is the sorted nodes other than self with a route in tables
// matching topic.
func naiveNodes(tables map[string]map[string]bool, self, topic string) []string {
	out := []string{}
	for n, fs := range tables {
		if n == self {
			continue
		}
		for f, on := range fs {
			if on && naiveMatch(routeTopic(f), topic) {
				out = append(out, n)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestRemoteNodesAllocs(t *testing.T) {
	r := NewRemoteRoutes()
	for i := range 9 {
		n := "node-" + strconv.Itoa(i)
		fs := []string{"site/+/dev/+/temp", "site/7/#", "#"}
		for j := range 200 {
			fs = append(fs, fmt.Sprintf("site/%d/dev/%d/hum", j%50, j))
		}
		slices.Sort(fs)
		r.ApplySnapshot(RouteSnapshot{Node: n, Boot: 1, Version: 1, Filters: fs})
	}
	topic := []byte("site/7/dev/42/temp")
	dst := r.Nodes(topic, nil)
	if len(dst) != 9 {
		t.Fatalf("got %d nodes, want 9", len(dst))
	}
	allocs := testing.AllocsPerRun(200, func() {
		dst = r.Nodes(topic, dst[:0])
	})
	if allocs != 0 {
		t.Errorf("Nodes allocates %.1f times per run, budget 0", allocs)
	}
}

func TestRouteWireRoundTrip(t *testing.T) {
	l := NewLocalRoutes("node-1", 1<<40, 0)
	for _, f := range []string{"a/b", "$share/g/x/#", "+/+", "a", "/", "a//b", "$SYS/#"} {
		l.Add(f)
	}
	l.Remove("a")
	ds, _ := l.DeltasSince(2)
	b := AppendRouteDeltas([]byte("prefix"), "node-1", l.Boot(), 2, ds)
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatal("dst prefix lost")
	}
	got, err := DecodeRouteDeltas(b[len("prefix"):])
	want := RouteDeltaBatch{Node: "node-1", Boot: 1 << 40, From: 2, Deltas: ds}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("deltas: %v\n got %+v\nwant %+v", err, got, want)
	}
	s := l.Snapshot()
	gs, err := DecodeRouteSnapshot(AppendRouteSnapshot(nil, &s))
	if err != nil || !reflect.DeepEqual(gs, s) {
		t.Fatalf("snapshot: %v\n got %+v\nwant %+v", err, gs, s)
	}
	empty := RouteSnapshot{Node: "n", Filters: []string{}}
	if ge, err := DecodeRouteSnapshot(AppendRouteSnapshot(nil, &empty)); err != nil || !reflect.DeepEqual(ge, empty) {
		t.Fatalf("empty snapshot: %v %+v", err, ge)
	}
	if gd, err := DecodeRouteDeltas(AppendRouteDeltas(nil, "n", 1, 5, nil)); err != nil || gd.From != 5 || gd.Deltas != nil {
		t.Fatalf("empty batch: %v %+v", err, gd)
	}
	// Every strict prefix is truncated, never a panic.
	enc := AppendRouteDeltas(nil, "node-1", l.Boot(), 2, ds)
	for i := range len(enc) {
		if _, err := DecodeRouteDeltas(enc[:i]); !errors.Is(err, ErrRouteWire) {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
}

func TestRouteWireErrors(t *testing.T) {
	batch := func(f func(b []byte) []byte) []byte {
		return f(AppendRouteDeltas(nil, "n", 1, 0, deltas(0, "+a/b")))
	}
	snap := func(fs ...string) []byte {
		return AppendRouteSnapshot(nil, &RouteSnapshot{Node: "n", Boot: 1, Version: 2, Filters: fs})
	}
	for _, c := range []struct {
		name string
		b    []byte
		snap bool
		msg  string
	}{
		{"empty", nil, false, "routing: route delta: truncated"},
		{"wrong tag", snap("a"), false, "routing: route delta: not a delta batch"},
		{"snapshot wrong tag", batch(func(b []byte) []byte { return b }), true, "routing: route snapshot: not a snapshot"},
		{"trailing", batch(func(b []byte) []byte { return append(b, 0) }), false, "routing: route delta: trailing bytes"},
		{"unknown op", batch(func(b []byte) []byte { b[len(b)-5] = 2; return b }), false, "routing: route delta: unknown op"},
		{"bad filter", batch(func(b []byte) []byte { b[len(b)-1] = '#'; b[len(b)-3] = '#'; return b }), false, "routing: route delta: invalid filter"},
		{"huge count", []byte{routeDeltasTag, 1, 'n', 1, 0, 0xff, 0xff, 0x03, 1, 1, 'a'}, false, "routing: route delta: count exceeds the bytes left"},
		{"empty node", []byte{routeDeltasTag, 0, 1, 0, 0}, false, "routing: route delta: empty node name"},
		{"long node", append([]byte{routeDeltasTag, 0x80, 0x02}, make([]byte, 300)...), false, "routing: route delta: node name too long"},
		{"varint overflow", append([]byte{routeDeltasTag, 1, 'n'}, bytes.Repeat([]byte{0xff}, 11)...), false, "routing: route delta: varint overflows 64 bits"},
		{"version overflow", []byte{routeDeltasTag, 1, 'n', 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 1, 1, 'a'}, false, "routing: route delta: version overflow"},
		{"unsorted", snap("b", "a"), true, "routing: route snapshot: filters not sorted and unique"},
		{"duplicate", snap("a", "a"), true, "routing: route snapshot: filters not sorted and unique"},
		{"empty filter", snap("", "abc"), true, "routing: route snapshot: invalid filter"},
	} {
		var err error
		if c.snap {
			_, err = DecodeRouteSnapshot(c.b)
		} else {
			_, err = DecodeRouteDeltas(c.b)
		}
		if !errors.Is(err, ErrRouteWire) || err.Error() != c.msg {
			t.Errorf("%s: %v, want %q", c.name, err, c.msg)
		}
	}
}

func TestAppendRouteDeltasNotContiguousPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	AppendRouteDeltas(nil, "n", 1, 3, deltas(4, "+a"))
}

// FuzzRouteWire: the decoders never panic; what decodes re-encodes to an
// equal value, and applies to a RemoteRoutes without panicking.
func FuzzRouteWire(f *testing.F) {
	l := NewLocalRoutes("n1", 3, 0)
	for _, flt := range []string{"a/b", "+/#", "$SYS/x", "a//b", "/"} {
		l.Add(flt)
	}
	l.Remove("+/#")
	ds, _ := l.DeltasSince(0)
	f.Add(AppendRouteDeltas(nil, "n1", 3, 0, ds))
	f.Add(AppendRouteDeltas(nil, "n1", 3, 2, ds[2:]))
	s := l.Snapshot()
	f.Add(AppendRouteSnapshot(nil, &s))
	f.Add([]byte{routeSnapshotTag, 1, 'n', 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		r := NewRemoteRoutes()
		if b, err := DecodeRouteDeltas(p); err != nil {
			if !errors.Is(err, ErrRouteWire) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
		} else {
			b2, err := DecodeRouteDeltas(AppendRouteDeltas(nil, b.Node, b.Boot, b.From, b.Deltas))
			if err != nil || !reflect.DeepEqual(b, b2) {
				t.Fatalf("re-encoding deltas: %v\n%+v\n%+v", err, b, b2)
			}
			r.ApplyDelta(b.Node, b.Boot, b.From, b.Deltas)
		}
		if s, err := DecodeRouteSnapshot(p); err != nil {
			if !errors.Is(err, ErrRouteWire) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
		} else {
			s2, err := DecodeRouteSnapshot(AppendRouteSnapshot(nil, &s))
			if err != nil || !reflect.DeepEqual(s, s2) {
				t.Fatalf("re-encoding snapshot: %v\n%+v\n%+v", err, s, s2)
			}
			r.ApplySnapshot(s)
			if got, _ := r.Table(s.Node); !slices.Equal(got.Filters, s.Filters) {
				t.Fatalf("applied snapshot reads back %v, want %v", got.Filters, s.Filters)
			}
		}
		r.Nodes([]byte("a/b"), nil)
	})
}

// simMsg is a message of the simulated cluster network: an encoded delta
// batch or snapshot, or a pull asking origin for what follows (boot,
// version).
type simMsg struct {
	to      int
	kind    byte // 'd' deltas, 's' snapshot, 'p' pull
	data    []byte
	from    int // pull: who asks
	held    bool
	boot    uint64
	version uint64
}

type simNode struct {
	name   string
	boot   uint64
	local  *LocalRoutes
	remote *RemoteRoutes
	refs   map[string]int // the model: route filter -> local subscriptions
	subs   []string       // subscription filters held, for random removes
}

type simCluster struct {
	t     *testing.T
	rng   *rand.Rand
	nodes []*simNode
	index map[string]int
	net   []simMsg
	lossy bool
}

func (c *simCluster) send(m simMsg) { c.net = append(c.net, m) }

// sendOwn sends node from's own table to node to: the deltas after (boot,
// version) when to holds this boot and the log reaches back, a snapshot
// otherwise.
func (c *simCluster) sendOwn(from, to int, held bool, boot, version uint64) {
	n := c.nodes[from]
	if held && boot == n.boot {
		if ds, ok := n.local.DeltasSince(version); ok {
			c.send(simMsg{to: to, kind: 'd', data: AppendRouteDeltas(nil, n.name, n.boot, version, ds)})
			return
		}
	}
	s := n.local.Snapshot()
	c.send(simMsg{to: to, kind: 's', data: AppendRouteSnapshot(nil, &s)})
}

func (c *simCluster) held(r *RemoteRoutes, node string) (bool, uint64, uint64) {
	for _, v := range r.Digest() {
		if v.Node == node {
			return true, v.Boot, v.Version
		}
	}
	return false, 0, 0
}

func (c *simCluster) deliver(m simMsg) {
	n := c.nodes[m.to]
	switch m.kind {
	case 'd':
		b, err := DecodeRouteDeltas(m.data)
		if err != nil {
			c.t.Fatal(err)
		}
		if n.remote.ApplyDelta(b.Node, b.Boot, b.From, b.Deltas) {
			held, boot, version := c.held(n.remote, b.Node)
			c.send(simMsg{to: c.index[b.Node], kind: 'p', from: m.to, held: held, boot: boot, version: version})
		}
	case 's':
		s, err := DecodeRouteSnapshot(m.data)
		if err != nil {
			c.t.Fatal(err)
		}
		n.remote.ApplySnapshot(s)
	case 'p':
		c.sendOwn(m.to, m.from, m.held, m.boot, m.version)
	}
}

// antiEntropy is one push/pull from a to b: b's digest against a's view, and
// a sends what b lacks: its own table (deltas or snapshot) and the snapshots
// of third nodes it holds newer.
func (c *simCluster) antiEntropy(a, b int) {
	na, nb := c.nodes[a], c.nodes[b]
	digest := map[string]RouteVersion{}
	for _, v := range nb.remote.Digest() {
		digest[v.Node] = v
	}
	if v, ok := digest[na.name]; !ok || newer(na.boot, na.local.Version(), v.Boot, v.Version) {
		c.sendOwn(a, b, ok, v.Boot, v.Version)
	}
	for _, v := range na.remote.Digest() {
		if v.Node == nb.name {
			continue
		}
		if h, ok := digest[v.Node]; !ok || newer(v.Boot, v.Version, h.Boot, h.Version) {
			s, _ := na.remote.Table(v.Node)
			c.send(simMsg{to: b, kind: 's', data: AppendRouteSnapshot(nil, &s)})
		}
	}
}

// step runs one network event: a random pending message is dropped,
// duplicated or delivered (picking at random reorders).
func (c *simCluster) step() {
	if len(c.net) == 0 {
		return
	}
	i := c.rng.IntN(len(c.net))
	m := c.net[i]
	switch k := c.rng.IntN(10); {
	case c.lossy && k < 2: // drop
	case c.lossy && k < 3: // duplicate: deliver and keep a copy
		c.deliver(m)
		return
	default:
		c.deliver(m)
	}
	c.net[i] = c.net[len(c.net)-1]
	c.net = c.net[:len(c.net)-1]
}

func (c *simCluster) change(i int) {
	n := c.nodes[i]
	before := n.local.Version()
	if len(n.subs) > 0 && c.rng.IntN(2) == 0 {
		j := c.rng.IntN(len(n.subs))
		f := n.subs[j]
		n.subs[j] = n.subs[len(n.subs)-1]
		n.subs = n.subs[:len(n.subs)-1]
		rf, _ := routeFilter(f)
		n.refs[rf]--
		if n.refs[rf] == 0 {
			delete(n.refs, rf)
		}
		if changed := n.local.Remove(f); changed != (n.refs[rf] == 0) {
			c.t.Fatalf("Remove(%q) changed %v, model refs %d", f, changed, n.refs[rf])
		}
	} else {
		f := randFilter(c.rng)
		n.subs = append(n.subs, f)
		rf, _ := routeFilter(f)
		n.refs[rf]++
		if changed := n.local.Add(f); changed != (n.refs[rf] == 1) {
			c.t.Fatalf("Add(%q) changed %v, model refs %d", f, changed, n.refs[rf])
		}
	}
	if n.local.Version() == before {
		return
	}
	ds, _ := n.local.DeltasSince(before)
	for j := range c.nodes {
		if j != i {
			c.send(simMsg{to: j, kind: 'd', data: AppendRouteDeltas(nil, n.name, n.boot, before, ds)})
		}
	}
}

func (c *simCluster) restart(i int) {
	n := c.nodes[i]
	n.boot++
	n.local = NewLocalRoutes(n.name, n.boot, 8)
	n.remote = NewRemoteRoutes()
	n.refs = map[string]int{}
	n.subs = nil
}

// check compares every node's remote view with the other nodes' local
// tables and the model, and Nodes with the naive matcher.
func (c *simCluster) check() {
	tables := map[string]map[string]bool{}
	for _, n := range c.nodes {
		set := map[string]bool{}
		for f := range n.refs {
			set[f] = true
		}
		tables[n.name] = set
		s := n.local.Snapshot()
		if len(s.Filters) != len(set) {
			c.t.Fatalf("%s: local table %v, model %v", n.name, s.Filters, n.refs)
		}
		for _, f := range s.Filters {
			if !set[f] {
				c.t.Fatalf("%s: local table %v, model %v", n.name, s.Filters, n.refs)
			}
		}
	}
	for _, n := range c.nodes {
		if n.remote.Len() != len(c.nodes)-1 {
			c.t.Fatalf("%s holds %d tables: %v", n.name, n.remote.Len(), n.remote.Digest())
		}
		for _, o := range c.nodes {
			if o == n {
				continue
			}
			got, ok := n.remote.Table(o.name)
			if want := o.local.Snapshot(); !ok || !reflect.DeepEqual(got, want) {
				c.t.Fatalf("%s's view of %s:\n got %+v\nwant %+v", n.name, o.name, got, want)
			}
		}
		for range 200 {
			topic := randTopic(c.rng)
			got := n.remote.Nodes([]byte(topic), nil)
			slices.Sort(got)
			if want := naiveNodes(tables, n.name, topic); !slices.Equal(got, want) {
				c.t.Fatalf("%s: Nodes(%q) = %v, want %v", n.name, topic, got, want)
			}
		}
	}
}

// TestRoutesConverge is the model test of the CRDT: three nodes change their
// routes at random, send each change to the others over a network that
// drops, duplicates and reorders, pull on gaps, run anti-entropy now and
// then and restart now and then; after a final loss-free anti-entropy round
// every view equals the other nodes' tables, whatever stale messages arrive
// afterwards.
func TestRoutesConverge(t *testing.T) {
	seeds := 30
	if testing.Short() {
		seeds = 5
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 99))
		c := &simCluster{t: t, rng: rng, index: map[string]int{}, lossy: true}
		for i := range 3 {
			n := &simNode{name: "n" + strconv.Itoa(i), boot: uint64(1 + rng.IntN(3))}
			n.local = NewLocalRoutes(n.name, n.boot, 8) // a short log: snapshots too
			n.remote = NewRemoteRoutes()
			n.refs = map[string]int{}
			c.nodes = append(c.nodes, n)
			c.index[n.name] = i
		}
		for range 3000 {
			switch k := rng.IntN(100); {
			case k < 40:
				c.change(rng.IntN(3))
			case k < 45:
				a := rng.IntN(3)
				c.antiEntropy(a, (a+1+rng.IntN(2))%3)
			case k == 45 && rng.IntN(5) == 0:
				c.restart(rng.IntN(3))
			default:
				c.step()
			}
		}
		// Final loss-free anti-entropy: every node pushes to every other,
		// and every message it causes is delivered.
		stale := c.net
		c.net = nil
		c.lossy = false
		for a := range 3 {
			for b := range 3 {
				if a != b {
					c.antiEntropy(a, b)
				}
			}
		}
		for len(c.net) > 0 {
			c.step()
		}
		c.check()
		// Messages still in flight from before arrive late (and late pulls
		// are answered with current state): nothing regresses.
		c.net = stale
		for len(c.net) > 0 {
			c.step()
		}
		c.check()
	}
}
