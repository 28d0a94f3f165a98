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
	dups     int // QoS 1 second copies (allowed: at least once)
	dups2    int // QoS 2 second copies (never allowed)
	reorders int
}

// analyze checks the history and returns the report and the failed
// assertions.
func analyze(h *history, faults []*fault, from, end time.Time, retained map[string][]string, dies, running []string, cl *cluster) (string, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	var fails []string

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
	faultAt := func(t time.Time) *fault { return phaseOf(t).f }

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
		for _, s := range subscribersOf(a.pub) {
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
			case p.f.hit(a.node):
				r.why = "ingress node was the victim"
				p.lostLim = append(p.lostLim, desc)
				p.lostLimR = append(p.lostLimR, r)
			case p.f.victim == "all" || p.f.lossy() && onNode(s, p.f.victim, ws, we):
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
			if d.pub == q2Publisher {
				p.dups2++
			} else {
				p.dups++
			}
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

	fmt.Fprintf(&b, "clients: QoS 1 publishers p1..p3 (homes n1..n3), persistent subscribers chaos-s1..s3 (homes n2, n3, n1) on %s+ at QoS 1; QoS 2 publisher %s (home n2) and persistent subscriber %s (home n3, client session state kept across connections) on %s+; %d roamers moving to the next node every 4-6 s without closing their connection, with beacons every 100 ms\n",
		topicPrefix, q2Publisher, q2Subscriber, q2Prefix, roamers)
	q2 := 0
	for _, a := range h.acks {
		if a.pub == q2Publisher {
			q2++
		}
	}
	fmt.Fprintf(&b, "acknowledged publishes: %d at QoS 1, %d at QoS 2; deliveries: %d; publishes without acknowledgement (timeout/closed): %d; refused: %s\n",
		len(h.acks)-q2, q2, len(h.delivs), h.pubFail, mapText(h.pubRef))
	fmt.Fprintf(&b, "subscriber refusals: %s; sessions resumed without session present: %d\n", mapText(h.subRefuse), len(h.lostSess))
	for _, s := range h.lostSess {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	if len(h.lostSess) > 0 {
		fails = append(fails, fmt.Sprintf("%d persistent sessions resumed without session present (their subscriptions lost): %s", len(h.lostSess), h.lostSess[0]))
	}
	fails = append(fails, checkRoams(&b, h, faultAt, end)...)
	fails = append(fails, checkFenced(&b, h, faultAt)...)
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
		var miss int
		for _, n := range cl.nodes {
			if m := f.retained[n.name]; len(m) > 0 {
				miss += len(m)
				f.fail("after recovery from %s, %d acknowledged retained messages were missing or wrong on %s: %s", f.kind, len(m), n.name, m[0])
			}
		}
		if f.retained != nil && miss == 0 {
			fmt.Fprintf(&b, "   after recovery: every acknowledged retained message present on every node\n")
		}
		for _, x := range f.fails {
			fmt.Fprintf(&b, "   FAILED: %s\n", x)
			fails = append(fails, x)
		}
	}
	b.WriteString("\nphases (acked = acknowledged publishes in the phase; each QoS 1 one is expected by 3 subscribers, each QoS 2 one by 1):\n")
	for _, p := range phases {
		if p.acked == 0 && p.f == nil && len(p.lostUp) == 0 {
			continue
		}
		fmt.Fprintf(&b, "-- %s: acked %d, expected deliveries %d, lost with both nodes up %d, lost under the documented limit %d, QoS 1 duplicates %d, QoS 2 duplicates %d, reorders %d\n",
			p.name, p.acked, p.expected, len(p.lostUp), len(p.lostLim), p.dups, p.dups2, p.reorders)
		if p.dups2 > 0 {
			fails = append(fails, fmt.Sprintf("%d QoS 2 messages were delivered twice %s", p.dups2, p.name))
		}
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

// checkRoams: at most one served connection per client id. A roamer's
// connection must not receive a message published after the CONNACK of the
// roamer's next connection, and must be closed by the server within 5 s of
// it (the node of the old connection stopped or killed excepted: a stopped
// process closes nothing). A connection that lived 3 s in a calm stretch
// must have received beacons: its subscription came with the session.
func checkRoams(b *strings.Builder, h *history, faultAt func(time.Time) *fault, end time.Time) []string {
	by := map[string][]*roamConn{}
	var ids []string
	for _, r := range h.roams {
		if by[r.client] == nil {
			ids = append(ids, r.client)
		}
		by[r.client] = append(by[r.client], r)
	}
	sort.Strings(ids)
	var served, open, deaf []string
	conns, moves, codes := 0, 0, map[string]int{}
	for _, id := range ids {
		rs := by[id]
		for i, r := range rs {
			conns++
			closed := r.closed
			if closed.IsZero() {
				closed = end.Add(time.Hour)
			}
			last := closed
			if i+1 < len(rs) {
				moves++
				newer := rs[i+1]
				late := 0
				for _, t := range r.sends {
					if t.After(newer.ackAt) {
						late++
					}
				}
				if late > 0 {
					served = append(served, fmt.Sprintf("%s: its connection to %s (CONNACK %s) received %d message(s) published after the CONNACK of its next connection, to %s at %s",
						id, r.node, r.ackAt.Format("15:04:05.000"), late, newer.node, newer.ackAt.Format("15:04:05.000")))
				}
				if r.forced || closed.After(newer.ackAt.Add(5*time.Second)) {
					f := faultAt(newer.ackAt)
					if f == nil || !f.hit(r.node) || f.kind == "partition" {
						open = append(open, fmt.Sprintf("%s: its connection to %s (CONNACK %s) was still open 5 s after the CONNACK of its next connection, to %s at %s",
							id, r.node, r.ackAt.Format("15:04:05.000"), newer.node, newer.ackAt.Format("15:04:05.000")))
					} else {
						codes["left open on a stopped or killed node"]++
					}
				} else if !r.closed.IsZero() {
					codes["closed by the server"]++
				}
				if newer.ackAt.Before(last) {
					last = newer.ackAt
				}
			}
			if last.Sub(r.ackAt) >= 3*time.Second && faultAt(r.ackAt) == nil && faultAt(last) == nil && len(r.sends) == 0 {
				deaf = append(deaf, fmt.Sprintf("%s: its connection to %s from %s to %s (session present %v) received no beacon",
					id, r.node, r.ackAt.Format("15:04:05.000"), last.Format("15:04:05.000"), r.present))
			}
		}
	}
	fmt.Fprintf(b, "roamers: %d connections, %d moves; old connections %s; served after a newer CONNACK: %d; left open: %d; calm connections without beacons: %d\n",
		conns, moves, mapText(codes), len(served), len(open), len(deaf))
	var fails []string
	for _, l := range [][]string{served, open, deaf} {
		if len(l) > 0 {
			b.WriteString(listText(l, 10))
		}
	}
	if len(served) > 0 {
		fails = append(fails, fmt.Sprintf("two served connections for one client id: %s", served[0]))
	}
	if len(open) > 0 {
		fails = append(fails, fmt.Sprintf("an old connection was not closed after a newer claim: %s", open[0]))
	}
	if len(deaf) > 0 {
		fails = append(fails, fmt.Sprintf("a resumed session lost its subscription: %s", deaf[0]))
	}
	return fails
}

// checkFenced: the quorum fence (DISCONNECT 0x9C) closes connections only
// on a node cut off from the majority (partition, pause); a node of the
// majority, during an election or on a slow link, must not fence.
func checkFenced(b *strings.Builder, h *history, faultAt func(time.Time) *fault) []string {
	var bad []string
	ok := map[string]int{}
	for _, d := range h.discs {
		if d.code != 0x9C {
			continue
		}
		f := faultAt(d.at)
		if f != nil && (f.kind == "partition" || f.kind == "pause") && d.node == f.victim {
			ok[fmt.Sprintf("%s of %s", f.kind, f.victim)]++
			continue
		}
		where := "with no fault under way"
		if f != nil {
			where = "during " + f.kind + " of " + f.victim
		}
		bad = append(bad, fmt.Sprintf("%s on %s got DISCONNECT 0x9C at %s %s", d.client, d.node, d.at.Format("15:04:05.000"), where))
	}
	fmt.Fprintf(b, "quorum fence (DISCONNECT 0x9C): on the cut-off node: %s; elsewhere: %d\n", mapText(ok), len(bad))
	if len(bad) > 0 {
		b.WriteString(listText(bad, 10))
		return []string{fmt.Sprintf("a node of the majority closed connections with 0x9C: %s", bad[0])}
	}
	return nil
}
