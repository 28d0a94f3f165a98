package routing

import (
	"cmp"
	"slices"
)

// Result receives the output of Match. Keep one per event loop (it is not safe
// for concurrent use) and reuse it: after the first few matches its slices
// have the capacity they need and Match and Merge stop allocating. Everything
// in it is valid until the next Match or Merge on it.
type Result struct {
	// Subs holds every matching plain subscription, one entry per matching
	// (filter, subscriber) pair, in no particular order.
	Subs []Subscriber
	// Shared holds one picked member per matching shared group. Shared
	// deliveries are independent of plain ones, even to the same client.
	Shared []SharedMatch

	groups     []*shareGroup // scratch: matching groups before the pick
	deliveries []Delivery    // Merge output
	ids        []uint32      // Merge output: backing array of SubscriptionIDs
	slots      []int32       // Merge scratch: delivery index of each Subs entry
	counts     []int32       // Merge scratch: identifiers per delivery, then cursors
}

// Delivery is one subscriber's merged view of the plain subscriptions that
// matched a message.
type Delivery struct {
	// Subscriber is the first matching entry of this ID, with QoS raised to
	// the maximum over the matching subscriptions and RetainAsPublished set if
	// any of them has it.
	Subscriber
	// SubscriptionIDs holds the distinct non-zero subscription identifiers of
	// the matching subscriptions, ascending, to send in one PUBLISH
	// [MQTT-3.3.4-4]. It aliases the Result.
	SubscriptionIDs []uint32
}

func (r *Result) reset() {
	r.Subs = r.Subs[:0] // Subscriber holds no pointers: nothing to clear
	clear(r.Shared)     // drop the group and filter strings of the previous match
	r.Shared = r.Shared[:0]
	r.groups = r.groups[:0]
}

// mergeLinearMax is the size up to which Merge finds each subscriber's
// delivery by a linear scan; larger results are sorted by ID first.
const mergeLinearMax = 32

// Merge folds r.Subs into one Delivery per subscriber ID, for sending a single
// copy to a client with overlapping subscriptions: at the maximum QoS of the
// matching subscriptions [MQTT-3.3.5-1] and, in v5, with the identifiers of all
// of them [MQTT-3.3.4-4]. r.Shared is not merged: each shared pick is its own
// delivery (section 4.8.2).
//
// No Local [MQTT-3.8.3-3]: a subscription with NoLocal whose ID isPublisher
// reports as the publishing client's is skipped before merging, so another
// subscription of the same client without NoLocal still delivers, at the QoS
// and with the identifiers of the kept subscriptions only. isPublisher is
// called only for NoLocal subscriptions, possibly more than once per ID; nil
// means the message has no publishing client and nothing is skipped. The
// trie does not keep client identifiers: the caller owns the mapping from ID
// to client.
//
// The deliveries come in no particular order. Merge compacts (and for large
// results sorts) r.Subs in place and returns a slice owned by r, valid until
// the next Match or Merge. It does not allocate once r is warm.
func (r *Result) Merge(isPublisher func(id uint64) bool) []Delivery {
	if isPublisher != nil {
		kept := r.Subs[:0]
		for _, s := range r.Subs {
			if s.NoLocal && isPublisher(s.ID) {
				continue // [MQTT-3.8.3-3]
			}
			kept = append(kept, s)
		}
		r.Subs = kept
	}
	subs := r.Subs
	sorted := len(subs) > mergeLinearMax
	if sorted {
		slices.SortFunc(subs, func(a, b Subscriber) int { return cmp.Compare(a.ID, b.ID) })
	}

	// Pass 1: the delivery of each subscription, maximum QoS, RAP, and how
	// many subscription identifiers each delivery collects.
	r.deliveries = r.deliveries[:0]
	r.slots = r.slots[:0]
	r.counts = r.counts[:0]
	total := 0
	for i := range subs {
		s := &subs[i]
		d := -1
		if sorted {
			if n := len(r.deliveries); n > 0 && r.deliveries[n-1].ID == s.ID {
				d = n - 1
			}
		} else {
			for k := range r.deliveries {
				if r.deliveries[k].ID == s.ID {
					d = k
					break
				}
			}
		}
		if d < 0 {
			d = len(r.deliveries)
			r.deliveries = append(r.deliveries, Delivery{Subscriber: *s})
			r.counts = append(r.counts, 0)
		} else {
			dv := &r.deliveries[d]
			dv.QoS = max(dv.QoS, s.QoS)
			dv.RetainAsPublished = dv.RetainAsPublished || s.RetainAsPublished
		}
		r.slots = append(r.slots, int32(d))
		if s.SubscriptionID != 0 {
			r.counts[d]++
			total++
		}
	}

	// Pass 2: lay the identifiers out per delivery, then sort and dedupe each
	// delivery's run (one SUBSCRIBE can give several filters one identifier).
	r.ids = slices.Grow(r.ids[:0], total)[:total]
	off := int32(0)
	for k, c := range r.counts {
		r.counts[k] = off // becomes the fill cursor
		off += c
	}
	for i := range subs {
		if id := subs[i].SubscriptionID; id != 0 {
			d := r.slots[i]
			r.ids[r.counts[d]] = id
			r.counts[d]++
		}
	}
	start := int32(0)
	for k := range r.deliveries {
		run := r.ids[start:r.counts[k]]
		start = r.counts[k]
		slices.Sort(run)
		run = slices.Compact(run)
		r.deliveries[k].SubscriptionIDs = run[:len(run):len(run)]
	}
	return r.deliveries
}
