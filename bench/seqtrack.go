package bench

import "math/bits"

// seqWindow is how far back, in sequence numbers, a late message is still
// classified as reordered rather than "late". 256 bits inline per stream.
const seqWindow = 256

// StreamKey names one ordered stream: a run, a publisher and a topic
// (hashed).
type StreamKey struct {
	Run       uint32
	Publisher uint32
	Topic     uint64
}

// stream tracks one (publisher, topic) sequence. seen is a ring over
// [next-seqWindow, next): bit s%seqWindow is set when s was received.
type stream struct {
	next  uint64 // one past the highest sequence number seen
	seen  [seqWindow / 64]uint64
	count uint64 // messages received, duplicates included
	lost  uint64 // sequence numbers that left the window unreceived
	dups  uint64
	reord uint64
	late  uint64 // older than the window: a very late or duplicate message
}

// SeqCounts are the correctness figures of a tracker or a set of trackers.
type SeqCounts struct {
	Received   uint64 `json:"received"`   // every message, duplicates included
	Unique     uint64 `json:"unique"`     // Received minus duplicates
	Lost       uint64 `json:"lost"`       // gaps, tail losses and unseen streams
	Duplicated uint64 `json:"duplicated"` // a sequence number received twice
	Reordered  uint64 `json:"reordered"`  // received after a later one
	Late       uint64 `json:"late"`       // older than the reorder window (dup or reorder)
	Streams    uint64 `json:"streams"`
}

// Add accumulates o into c.
func (c *SeqCounts) Add(o SeqCounts) {
	c.Received += o.Received
	c.Unique += o.Unique
	c.Lost += o.Lost
	c.Duplicated += o.Duplicated
	c.Reordered += o.Reordered
	c.Late += o.Late
	c.Streams += o.Streams
}

// Tracker detects loss, duplication and reordering per (publisher, topic) for
// one subscriber. Sequences are expected to start at 0. Not safe for
// concurrent use: it belongs to the subscriber's event loop.
type Tracker struct {
	index   map[StreamKey]int32
	streams []stream
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{index: make(map[StreamKey]int32)}
}

// Observe records sequence number seq on stream k and reports whether it was
// new (neither a duplicate nor older than the window). It allocates only when
// k is new.
func (t *Tracker) Observe(k StreamKey, seq uint64) bool {
	i, ok := t.index[k]
	if !ok {
		i = int32(len(t.streams))
		t.streams = append(t.streams, stream{})
		s := &t.streams[i]
		for w := range s.seen {
			s.seen[w] = ^uint64(0) // sequence numbers below 0 do not exist
		}
		t.index[k] = i
	}
	return t.streams[i].observe(seq)
}

func (s *stream) bit(q uint64) (w int, m uint64) {
	r := q % seqWindow
	return int(r / 64), 1 << (r % 64)
}

func (s *stream) observe(q uint64) bool {
	s.count++
	if q >= s.next {
		if q+1-s.next >= seqWindow {
			// The whole window is evicted.
			s.lost += seqWindow - s.popcount()
			s.lost += q + 1 - seqWindow - s.next
			s.seen = [seqWindow / 64]uint64{}
		} else {
			for n := s.next; n <= q; n++ {
				w, m := s.bit(n) // slot of n-seqWindow, about to be reused
				if s.seen[w]&m == 0 {
					s.lost++
				}
				s.seen[w] &^= m
			}
		}
		w, m := s.bit(q)
		s.seen[w] |= m
		s.next = q + 1
		return true
	}
	if s.next > seqWindow && q < s.next-seqWindow {
		s.late++
		return false
	}
	w, m := s.bit(q)
	if s.seen[w]&m != 0 {
		s.dups++
		return false
	}
	s.seen[w] |= m
	s.reord++
	return true
}

func (s *stream) popcount() uint64 {
	n := 0
	for _, w := range s.seen {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// Counts totals the tracker. sent, when non-nil, gives the number of
// messages published on a stream (sequence numbers 0..sent-1), so that
// missing tail messages are counted as lost; ok false means unknown.
func (t *Tracker) Counts(sent func(StreamKey) (n uint64, ok bool)) SeqCounts {
	var c SeqCounts
	for k, i := range t.index {
		s := &t.streams[i]
		lost := s.lost + seqWindow - s.popcount() // unreceived still in the window
		if sent != nil {
			if n, ok := sent(k); ok && n > s.next {
				lost += n - s.next
			}
		}
		c.Received += s.count
		c.Unique += s.count - s.dups - s.late
		c.Lost += lost
		c.Duplicated += s.dups
		c.Reordered += s.reord
		c.Late += s.late
		c.Streams++
	}
	return c
}

// StreamCounts totals stream k alone, of which sent messages were
// published (sequence numbers 0..sent-1); a stream never seen counts them
// all as lost.
func (t *Tracker) StreamCounts(k StreamKey, sent uint64) SeqCounts {
	i, ok := t.index[k]
	if !ok {
		return SeqCounts{Lost: sent}
	}
	s := &t.streams[i]
	lost := s.lost + seqWindow - s.popcount()
	if sent > s.next {
		lost += sent - s.next
	}
	return SeqCounts{Received: s.count, Unique: s.count - s.dups - s.late, Lost: lost,
		Duplicated: s.dups, Reordered: s.reord, Late: s.late, Streams: 1}
}

// Seen reports whether any message of stream k was received.
func (t *Tracker) Seen(k StreamKey) bool {
	_, ok := t.index[k]
	return ok
}

// Len is the number of streams seen.
func (t *Tracker) Len() int { return len(t.streams) }

// Received is the number of messages of stream k received, duplicates
// included.
func (t *Tracker) Received(k StreamKey) uint64 {
	if i, ok := t.index[k]; ok {
		return t.streams[i].count
	}
	return 0
}
