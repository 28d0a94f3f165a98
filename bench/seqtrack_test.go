package bench

import "testing"

func feed(seqs ...uint64) *Tracker {
	tr := NewTracker()
	k := StreamKey{Run: 1, Publisher: 1, Topic: 42}
	for _, s := range seqs {
		tr.Observe(k, s)
	}
	return tr
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s < to; s++ {
		out = append(out, s)
	}
	return out
}

func TestTrackerClassifies(t *testing.T) {
	cases := []struct {
		name string
		seqs []uint64
		sent uint64 // 0: unknown
		want SeqCounts
	}{
		{"in order", seqRange(0, 1000), 1000, SeqCounts{Received: 1000, Unique: 1000, Streams: 1}},
		{"injected gap", append(seqRange(0, 10), seqRange(13, 20)...), 20,
			SeqCounts{Received: 17, Unique: 17, Lost: 3, Streams: 1}},
		{"missing start", seqRange(5, 10), 10, SeqCounts{Received: 5, Unique: 5, Lost: 5, Streams: 1}},
		{"tail loss", seqRange(0, 10), 15, SeqCounts{Received: 10, Unique: 10, Lost: 5, Streams: 1}},
		{"tail unknown", seqRange(0, 10), 0, SeqCounts{Received: 10, Unique: 10, Streams: 1}},
		{"duplicate", []uint64{0, 1, 2, 2, 3, 1}, 4, SeqCounts{Received: 6, Unique: 4, Duplicated: 2, Streams: 1}},
		{"reorder", []uint64{0, 2, 1, 3}, 4, SeqCounts{Received: 4, Unique: 4, Reordered: 1, Streams: 1}},
		{"reorder then dup", []uint64{0, 2, 1, 1, 3}, 4,
			SeqCounts{Received: 5, Unique: 4, Reordered: 1, Duplicated: 1, Streams: 1}},
		{"gap wider than window", append([]uint64{0}, seqRange(1000, 1010)...), 1010,
			SeqCounts{Received: 11, Unique: 11, Lost: 999, Streams: 1}},
		{"gap of exactly the window", []uint64{0, seqWindow + 1}, seqWindow + 2,
			SeqCounts{Received: 2, Unique: 2, Lost: seqWindow, Streams: 1}},
		{"late beyond window", append(append(seqRange(0, 5), seqRange(6, 1000)...), 5), 1000,
			SeqCounts{Received: 1000, Unique: 999, Lost: 1, Late: 1, Streams: 1}},
	}
	for _, c := range cases {
		tr := feed(c.seqs...)
		var sent func(StreamKey) (uint64, bool)
		if c.sent > 0 {
			sent = func(StreamKey) (uint64, bool) { return c.sent, true }
		}
		if got := tr.Counts(sent); got != c.want {
			t.Errorf("%s: got %+v\n want %+v", c.name, got, c.want)
		}
	}
}

func TestTrackerStreamsIndependent(t *testing.T) {
	tr := NewTracker()
	a := StreamKey{Run: 1, Publisher: 1, Topic: 1}
	b := StreamKey{Run: 1, Publisher: 2, Topic: 1}
	c := StreamKey{Run: 1, Publisher: 1, Topic: 2}
	for s := range uint64(100) {
		tr.Observe(a, s)
		if s%10 != 0 {
			tr.Observe(b, s) // every tenth lost
		}
		tr.Observe(c, 99-s) // reversed: all but the first are reorders
	}
	got := tr.Counts(func(StreamKey) (uint64, bool) { return 100, true })
	want := SeqCounts{Received: 290, Unique: 290, Lost: 10, Reordered: 99, Streams: 3}
	if got != want {
		t.Fatalf("got %+v want %+v", got, want)
	}
	if !tr.Seen(b) || tr.Seen(StreamKey{Publisher: 3}) || tr.Len() != 3 {
		t.Fatal("Seen/Len")
	}
}

// TestTrackerRandomLoss checks the loss count against a known drop set over a
// long stream with sparse reordering.
func TestTrackerRandomLoss(t *testing.T) {
	tr := NewTracker()
	k := StreamKey{Publisher: 1}
	var dropped, swapped uint64
	const n = 100_000
	for s := uint64(0); s < n; s++ {
		switch {
		case s%997 == 0:
			dropped++
		case s%1009 == 0 && s+1 < n && (s+1)%997 != 0:
			tr.Observe(k, s+1)
			tr.Observe(k, s)
			s++
			swapped++
		default:
			tr.Observe(k, s)
		}
	}
	got := tr.Counts(func(StreamKey) (uint64, bool) { return n, true })
	if got.Lost != dropped || got.Reordered != swapped || got.Unique != n-dropped || got.Duplicated != 0 {
		t.Fatalf("got %+v, dropped %d swapped %d", got, dropped, swapped)
	}
}
