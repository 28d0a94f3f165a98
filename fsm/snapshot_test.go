package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sync"
	"testing"
)

// randomState returns an FSM with a random state from seed.
func randomState(t testing.TB, seed int64, batches int) *applier {
	a := newApplier(t)
	newGen(a, seed).run(batches)
	return a
}

func TestSnapshotEmptyRoundTrip(t *testing.T) {
	f := New()
	data := persist(t, f)
	if !bytes.HasPrefix(data, []byte(snapshotMagic)) || data[len(snapshotMagic)] != SnapshotVersion {
		t.Fatalf("header %q", data[:9])
	}
	requireEqualState(t, f, restoreFrom(t, data))
}

func TestRestoreReplacesState(t *testing.T) {
	src := randomState(t, 7, 300)
	dst := randomState(t, 8, 300)
	if err := dst.f.Restore(nopCloser{bytes.NewReader(persist(t, src.f))}); err != nil {
		t.Fatal(err)
	}
	requireEqualState(t, src.f, dst.f)
}

// reseal recomputes the checksum of a snapshot whose body was edited, so
// that the decoder (not the checksum) has to catch the edit.
func reseal(p []byte) []byte {
	body := p[:len(p)-4]
	return binary.BigEndian.AppendUint32(append([]byte{}, body...), crc32.Checksum(body, castagnoli))
}

func TestRestoreErrors(t *testing.T) {
	a := randomState(t, 3, 40)
	good := persist(t, a.f)
	flip := func(i int) []byte {
		p := append([]byte{}, good...)
		p[i] ^= 0x40
		return p
	}
	version := append([]byte{}, good...)
	version[len(snapshotMagic)] = 9
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"bad magic", flip(0), ErrBadMagic},
		{"not a snapshot", []byte("{\"json\": true}"), ErrBadMagic},
		{"version", version, ErrUnsupportedVersion},
		{"checksum", flip(len(good) - 2), ErrChecksum},
		{"payload bit flip", flip(len(good) / 2), nil}, // checked below: any error
		{"trailing data", append(append([]byte{}, good...), 0), ErrMalformed},
		{"unknown record", reseal(append(append([]byte{}, good[:len(good)-5]...), 'Z', 0, 'E', 0, 0, 0, 0)), ErrMalformed},
		{"count too high", reseal(append(append([]byte{}, good[:9]...), append([]byte{0xff, 0x7f}, good[10:]...)...)), nil},
	}
	for _, c := range cases {
		err := New().Restore(nopCloser{bytes.NewReader(c.in)})
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	// Every truncation fails, none panics, none yields a state.
	for i := 0; i < len(good); i++ {
		err := New().Restore(nopCloser{bytes.NewReader(good[:i])})
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadMagic) {
			t.Fatalf("truncated at %d/%d: %v", i, len(good), err)
		}
	}
	// Every single-byte corruption is caught.
	for i := 0; i < len(good); i++ {
		if err := New().Restore(nopCloser{bytes.NewReader(flip(i))}); err == nil {
			t.Fatalf("corruption at byte %d not detected", i)
		}
	}
}

func TestRestoreFailureKeepsState(t *testing.T) {
	a := randomState(t, 4, 200)
	before := dump(a.f)
	bad := persist(t, randomState(t, 5, 200).f)
	bad[len(bad)-1] ^= 1
	if err := a.f.Restore(nopCloser{bytes.NewReader(bad)}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("err %v", err)
	}
	if after := dump(a.f); !equalDump(before, after) {
		t.Fatalf("failed Restore changed the state:\n%s", diffDump(before, after))
	}
}

func TestPersistCancelsOnError(t *testing.T) {
	a := randomState(t, 6, 300)
	snap, _ := a.f.Snapshot()
	sink := &memSink{failAfter: 100}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist succeeded on a failing sink")
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink cancelled=%v closed=%v", sink.cancelled, sink.closed)
	}
}

// TestPersistDuringApply persists snapshots while another goroutine keeps
// applying (run with -race): each snapshot restores to exactly the state it
// was taken at.
func TestPersistDuringApply(t *testing.T) {
	a := randomState(t, 9, 100)
	g := newGen(a, 10)
	var batches []*Batch
	for i := 0; i < 2000; i++ {
		batches = append(batches, g.batch())
	}
	type taken struct {
		d    dumpT
		data []byte
	}
	snaps := make(chan taken, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, b := range batches {
			a.f.Apply(a.log(b))
		}
	}()
	for i := 0; i < 20; i++ {
		snap, _ := a.f.Snapshot()
		d := dumpOf(snap.(*snapshot).st)
		// Persist runs here while the other goroutine applies.
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			t.Fatal(err)
		}
		snaps <- taken{d, sink.Bytes()}
		a.f.RetainedMatch("#")
		a.f.Stats()
	}
	wg.Wait()
	close(snaps)
	for s := range snaps {
		r := restoreFrom(t, s.data)
		if d := dump(r); !equalDump(s.d, d) {
			t.Fatalf("snapshot taken during Apply restores to another state:\n%s", diffDump(s.d, d))
		}
	}
}
