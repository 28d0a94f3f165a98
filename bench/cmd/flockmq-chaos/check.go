package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

type msgKey struct {
	sub, pub string
	seq      int
}

// phase is a stretch of the run: a fault's window or the calm after it.
type phase struct {
	name     string
	f        *fault // nil for calm
	from, to time.Time
	acked    int
	expected int // acked × subscribers
	lostUp   []string
	lostLim  []string
	lostUpR  []lostRec
	lostLimR []lostRec
	dups     int
	reorders int
}

// analyze checks the history and returns the report and the failed
// assertions.
func analyze(h *history, faults []*fault, from, end time.Time, retained map[string][]string, dies, running []string, cl *cluster) (string, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	var fails []string
	subs := []string{"chaos-s1", "chaos-s2", "chaos-s3"}

	// Phases: calm before the first fault, then each fault's window and
	// the calm after it.
	var phases []*phase
	cur := from
	for i, f := range faults {
		ws, we := f.window()
		phases = append(phases, &phase{name: calmName(i, faults), from: cur, to: ws})
		phases = append(phases, &phase{name: "during " + f.kind + " of " + f.victim, f: f, from: ws, to: we})
		cur = we
	}
	phases = append(phases, &phase{name: calmName(len(faults), faults), from: cur, to: end.Add(time.Hour)})
	phaseOf := func(t time.Time) *phase {
		for _, p := range phases {
			if !t.Before(p.from) && t.Before(p.to) {
				return p
			}
		}
		return phases[len(phases)-1]
	}

	got := map[msgKey]int{}
	for _, d := range h.delivs {
		got[msgKey{d.sub, d.pub, d.seq}]++
	}
	ackAt := map[[2]string]map[int]ackRec{}
	for _, a := range h.acks {
		k := [2]string{a.pub, ""}
		if ackAt[k] == nil {
			ackAt[k] = map[int]ackRec{}
		}
		ackAt[k][a.seq] = a
	}
	// onNode: was the subscriber's session on node n at some point in
	// [t0, t1], or was the last connection before t0 on n?
	onNode := func(sub, n string, t0, t1 time.Time) bool {
		var last *connRec
		for _, c := range h.conns {
			if c.client != sub {
				continue
			}
			if c.from.Before(t0) && (last == nil || c.from.After(last.from)) {
				last = c
			}
			to := c.to
			if to.IsZero() {
				to = end.Add(time.Hour)
			}
			if c.node == n && c.from.Before(t1) && to.After(t0) {
				return true
			}
		}
		return last != nil && last.node == n
	}

	for _, a := range h.acks {
		if a.at.Before(from) {
			continue
		}
		p := phaseOf(a.at)
		p.acked++
		for _, s := range subs {
			p.expected++
			k := msgKey{s, a.pub, a.seq}
			if got[k] > 0 {
				continue
			}
			desc := fmt.Sprintf("%s#%d (ingress %s, acked %s) not delivered to %s", a.pub, a.seq, a.node, a.at.Format("15:04:05.000"), s)
			r := lostRec{a: a, sub: s}
			if p.f == nil {
				p.lostUp = append(p.lostUp, desc)
				p.lostUpR = append(p.lostUpR, r)
				continue
			}
			ws, we := p.f.window()
			switch {
			case a.node == p.f.victim:
				r.why = "ingress node was the victim"
				p.lostLim = append(p.lostLim, desc)
				p.lostLimR = append(p.lostLimR, r)
			case onNode(s, p.f.victim, ws, we):
				r.why = "subscriber's session was on the victim"
				p.lostLim = append(p.lostLim, desc)
				p.lostLimR = append(p.lostLimR, r)
			default:
				p.lostUp = append(p.lostUp, desc)
				p.lostUpR = append(p.lostUpR, r)
			}
		}
	}
	// Duplicates and reorders, in each subscriber's arrival order per
	// publisher; a reorder is charged to the phase its message was acked in.
	seen := map[msgKey]bool{}
	maxSeq := map[[2]string]int{}
	for _, d := range h.delivs {
		k := msgKey{d.sub, d.pub, d.seq}
		a, ok := ackAt[[2]string{d.pub, ""}][d.seq]
		t := d.at
		if ok {
			t = a.at
		}
		p := phaseOf(t)
		if seen[k] {
			p.dups++
			continue
		}
		seen[k] = true
		sp := [2]string{d.sub, d.pub}
		if d.seq < maxSeq[sp] {
			p.reorders++
		} else {
			maxSeq[sp] = d.seq
		}
	}

	fmt.Fprintf(&b, "clients: publishers p1..p3 (homes n1..n3), persistent subscribers chaos-s1..s3 (homes n2, n3, n1) on %s+ at QoS 1\n", topicPrefix)
	fmt.Fprintf(&b, "acknowledged QoS 1 publishes: %d; deliveries: %d; publishes without PUBACK (timeout/closed): %d; refused: %s\n",
		len(h.acks), len(h.delivs), h.pubFail, mapText(h.pubRef))
	fmt.Fprintf(&b, "subscriber refusals: %s; sessions resumed without session present: %d\n", mapText(h.subRefuse), len(h.lostSess))
	for _, s := range h.lostSess {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	fmt.Fprintf(&b, "connections: %d (client node from-to)\n", len(h.conns))
	for _, c := range h.conns {
		if strings.HasPrefix(c.client, "chaos-s") {
			to := "end"
			if !c.to.IsZero() {
				to = c.to.Format("15:04:05.000")
			}
			fmt.Fprintf(&b, "  %s on %s %s-%s present=%v\n", c.client, c.node, c.from.Format("15:04:05.000"), to, c.present)
		}
	}
	b.WriteString("\n")
	for _, f := range faults {
		fmt.Fprintf(&b, "== fault %s, victim %s (leader before: %s)\n", f.kind, f.victim, f.oldLeader)
		for _, n := range f.notes {
			fmt.Fprintf(&b, "   %s\n", n)
		}
		if len(f.minority) > 0 {
			fmt.Fprintf(&b, "   new persistent sessions on the isolated node: %s\n", strings.Join(f.minority, "; "))
		}
		for _, x := range f.fails {
			fmt.Fprintf(&b, "   FAILED: %s\n", x)
			fails = append(fails, x)
		}
	}
	b.WriteString("\nphases (acked = acknowledged publishes in the phase; each is expected by 3 subscribers):\n")
	for _, p := range phases {
		if p.acked == 0 && p.f == nil && len(p.lostUp) == 0 {
			continue
		}
		fmt.Fprintf(&b, "-- %s: acked %d, expected deliveries %d, lost with both nodes up %d, lost under the documented limit %d, duplicates %d, reorders %d\n",
			p.name, p.acked, p.expected, len(p.lostUp), len(p.lostLim), p.dups, p.reorders)
		if len(p.lostLim) > 0 {
			b.WriteString(listText(groupLost(p.lostLimR), 40))
		}
		if len(p.lostUp) > 0 {
			b.WriteString(listText(groupLost(p.lostUpR), 40))
			if p.f == nil {
				fails = append(fails, fmt.Sprintf("%d acknowledged QoS 1 deliveries were lost %s, with no fault under way (no delivery gap allowed after recovery)", len(p.lostUp), p.name))
			} else {
				fails = append(fails, fmt.Sprintf("%d acknowledged QoS 1 deliveries were lost %s whose ingress node and subscriber's node both stayed up", len(p.lostUp), p.name))
			}
		}
		if p.reorders > 0 && p.f == nil {
			fails = append(fails, fmt.Sprintf("%d deliveries came out of order %s, outside any takeover window", p.reorders, p.name))
		}
	}

	b.WriteString("\nretained: ")
	fmt.Fprintf(&b, "%d acknowledged writes; refused/failed: %s\n", len(h.retained), mapText(h.retRef))
	for _, n := range cl.nodes {
		miss := retained[n.name]
		sort.Strings(miss)
		fmt.Fprintf(&b, "  fresh subscriber on %s: %d of %d present\n", n.name, len(h.retained)-len(miss), len(h.retained))
		if len(miss) > 0 {
			b.WriteString(listText(miss, 20))
			fails = append(fails, fmt.Sprintf("%d acknowledged retained messages were missing or wrong for a fresh subscriber on %s after the faults", len(miss), n.name))
		}
	}
	b.WriteString("\ncontainers at the end: " + strings.Join(running, "; ") + "\n")
	for _, r := range running {
		if !strings.Contains(r, ": running") {
			fails = append(fails, "a container is not running at the end: "+r)
		}
	}
	if len(dies) == 0 {
		b.WriteString("container deaths: only the ones the checker killed\n")
	} else {
		b.WriteString("container deaths not caused by the checker:\n" + listText(dies, 20))
		fails = append(fails, fmt.Sprintf("a container exited on its own: %s", dies[0]))
	}
	b.WriteString("\n")
	return b.String(), fails
}

func calmName(i int, faults []*fault) string {
	if i == 0 {
		return "calm before the faults"
	}
	f := faults[i-1]
	return "after recovery from " + f.kind + " of " + f.victim
}

func mapText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var ks []string
	for k, v := range m {
		ks = append(ks, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func listText(l []string, max int) string {
	var b strings.Builder
	for i, s := range l {
		if i == max {
			fmt.Fprintf(&b, "     ... and %d more\n", len(l)-max)
			break
		}
		fmt.Fprintf(&b, "     %s\n", s)
	}
	return b.String()
}

type lostRec struct {
	a   ackRec
	sub string
	why string
}

// groupLost lists lost messages by subscriber, publisher, ingress node and
// reason: count, sequence range, acknowledgement times.
func groupLost(l []lostRec) []string {
	type agg struct {
		n           int
		lo, hi      int
		first, last time.Time
	}
	m := map[string]*agg{}
	var keys []string
	for _, r := range l {
		k := fmt.Sprintf("%s from %s via %s", r.sub, r.a.pub, r.a.node)
		if r.why != "" {
			k += " (" + r.why + ")"
		}
		g := m[k]
		if g == nil {
			g = &agg{lo: r.a.seq, hi: r.a.seq, first: r.a.at, last: r.a.at}
			m[k] = g
			keys = append(keys, k)
		}
		g.n++
		g.lo, g.hi = min(g.lo, r.a.seq), max(g.hi, r.a.seq)
		if r.a.at.Before(g.first) {
			g.first = r.a.at
		}
		if r.a.at.After(g.last) {
			g.last = r.a.at
		}
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		g := m[k]
		out = append(out, fmt.Sprintf("%s: %d lost, seq %d..%d, acked %s..%s", k, g.n, g.lo, g.hi,
			g.first.Format("15:04:05.000"), g.last.Format("15:04:05.000")))
	}
	return out
}
