package fsm

import "sort"

// DedupWindow is how many recent batches per (node, boot) keep their
// results. A retried batch within the window gets the results recorded when
// it was applied; an older one gets CodeDuplicate for every op. A proposer
// must not have more than DedupWindow batches in flight. The record of a
// live boot stays until NodeDown declares that boot dead, so the cluster
// proposes NodeDown for a node's previous boot when it sees a new one.
const DedupWindow = 128

// MaxDownBoots is how many boots NodeDown declared dead are remembered per
// node, to fence their late batches. Older ones are forgotten, oldest At
// first.
const MaxDownBoots = 16

type bootKey struct {
	node string
	boot uint64
}

// bootEntry is the idempotency record of one node boot. Published entries
// are immutable; a txn copies an entry before changing it.
type bootEntry struct {
	lastSeq uint64
	down    bool
	downAt  int64
	window  [DedupWindow]*windowSlot // nil where no batch was recorded; slots are immutable
}

// windowSlot records the results of one applied batch compactly: most ops
// only have a code, most codes are CodeOK.
type windowSlot struct {
	seq   uint64
	index uint64          // the log index the batch was applied at
	n     int             // ops in the batch
	codes []Code          // code per op; nil when every op got CodeOK
	epoch []uint64        // bit i: op i's result is its claim epoch alone (makeEpoch(index, i))
	rich  []indexedResult // other results with more than a code, by op position
}

type indexedResult struct {
	i int
	r Result
}

func compactResults(seq, index uint64, res []Result) *windowSlot {
	w := &windowSlot{seq: seq, index: index, n: len(res)}
	for i := range res {
		r := &res[i]
		if r.Code != CodeOK && w.codes == nil {
			w.codes = make([]Code, len(res))
		}
		if w.codes != nil {
			w.codes[i] = r.Code
		}
		switch {
		case plainResult(r):
		case r.Code == CodeOK && r.Epoch == makeEpoch(index, i) && plainResult(&Result{PrevOwner: r.PrevOwner,
			PrevBoot: r.PrevBoot, PrevEpoch: r.PrevEpoch, SessionPresent: r.SessionPresent,
			Subscriptions: r.Subscriptions, Existed: r.Existed, Count: r.Count}):
			// A claim of a new client id, the most common rich result:
			// one bit.
			if w.epoch == nil {
				w.epoch = make([]uint64, (len(res)+63)/64)
			}
			w.epoch[i/64] |= 1 << (i % 64)
		default:
			w.rich = append(w.rich, indexedResult{i, *r})
		}
	}
	return w
}

// results rebuilds the recorded results.
func (w *windowSlot) results() []Result {
	res := make([]Result, w.n)
	for i, c := range w.codes {
		res[i].Code = c
	}
	for i := range res {
		if i/64 < len(w.epoch) && w.epoch[i/64]&(1<<(i%64)) != 0 {
			res[i].Epoch = makeEpoch(w.index, i)
		}
	}
	for _, x := range w.rich {
		res[x.i] = x.r
	}
	return res
}

// plainResult reports whether r carries nothing but its Code.
func plainResult(r *Result) bool {
	return r.Epoch == 0 && !r.SessionPresent && r.PrevOwner == "" && r.PrevBoot == 0 &&
		r.PrevEpoch == 0 && r.Subscriptions == nil && !r.Existed && r.Count == 0
}

// seen decides what to do with batch (node, boot, seq). It returns apply
// true when the batch must be applied; otherwise res holds the response:
// the recorded results, or one result per op with code.
func (t *txn) seen(node string, boot, seq uint64, nops int) (res []Result, apply bool) {
	e := t.boots[bootKey{node, boot}]
	switch {
	case seq == 0 || e == nil:
		if e == nil || !e.down {
			return nil, true
		}
		return fill(nops, CodeFenced), false
	case e.down:
		return fill(nops, CodeFenced), false
	case e.window[seq%DedupWindow] != nil && e.window[seq%DedupWindow].seq == seq:
		return e.window[seq%DedupWindow].results(), false
	case e.lastSeq >= DedupWindow && seq <= e.lastSeq-DedupWindow:
		return fill(nops, CodeDuplicate), false
	}
	return nil, true
}

// record stores the results of applied batch (node, boot, seq). Seq 0 is
// not recorded: such batches carry no idempotency key.
func (t *txn) record(node string, boot, seq, index uint64, results []Result) {
	if seq == 0 {
		return
	}
	k := bootKey{node, boot}
	e := t.editBoot(k)
	e.window[seq%DedupWindow] = compactResults(seq, index, results)
	if seq > e.lastSeq {
		e.lastSeq = seq
	}
}

// markDown fences node/boot and forgets the oldest dead boots of node beyond
// MaxDownBoots.
func (t *txn) markDown(node string, boot uint64, at int64) {
	k := bootKey{node, boot}
	if e := t.boots[k]; e != nil && e.down {
		return
	}
	e := t.editBoot(k)
	*e = bootEntry{lastSeq: e.lastSeq, down: true, downAt: at}
	var dead []bootKey
	for bk, be := range t.boots {
		if bk.node == node && be.down {
			dead = append(dead, bk)
		}
	}
	if len(dead) <= MaxDownBoots {
		return
	}
	sort.Slice(dead, func(i, j int) bool {
		a, b := t.boots[dead[i]], t.boots[dead[j]]
		if a.downAt != b.downAt {
			return a.downAt < b.downAt
		}
		return dead[i].boot < dead[j].boot
	})
	for _, bk := range dead[:len(dead)-MaxDownBoots] {
		delete(t.boots, bk)
	}
}

// editBoot returns a private, writable copy of the entry for k (created if
// missing), copying the map on the first write of the txn.
func (t *txn) editBoot(k bootKey) *bootEntry {
	if !t.bootsCopied {
		m := make(map[bootKey]*bootEntry, len(t.boots)+1)
		for bk, be := range t.boots {
			m[bk] = be
		}
		t.boots = m
		t.bootsCopied = true
		t.ownBoots = map[bootKey]bool{}
	}
	e := t.boots[k]
	if t.ownBoots[k] {
		return e
	}
	ne := &bootEntry{}
	if e != nil {
		*ne = *e
	}
	t.boots[k] = ne
	t.ownBoots[k] = true
	return ne
}

func fill(n int, c Code) []Result {
	r := make([]Result, n)
	for i := range r {
		r[i].Code = c
	}
	return r
}
