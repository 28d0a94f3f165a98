package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeCommand: DecodeBatch never panics; whatever it accepts
// re-encodes to an equal batch, and applying it never panics.
func FuzzDecodeCommand(f *testing.F) {
	f.Add(EncodeBatch(&Batch{Node: "n1", Boot: 1, Seq: 1, Ops: allOps()}))
	f.Add(EncodeBatch(&Batch{}))
	g := newGen(newApplier(f), 1)
	for i := 0; i < 20; i++ {
		f.Add(EncodeBatch(g.batch()))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := DecodeBatch(p)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrUnknownOp) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		b2, err := DecodeBatch(EncodeBatch(b))
		if err != nil || !reflect.DeepEqual(b, b2) {
			t.Fatalf("re-encoding: %v\n%+v\n%+v", err, b, b2)
		}
		a := newApplier(t)
		a.f.Apply(a.log(b))
		// The state it produced survives a snapshot round trip.
		requireEqualState(t, a.f, restoreFrom(t, persist(t, a.f)))
	})
}

// FuzzRestore: Restore never panics and either fails with a named error or
// yields a state that persists back to the same bytes.
func FuzzRestore(f *testing.F) {
	f.Add(persist(f, New()))
	for seed := int64(1); seed <= 3; seed++ {
		f.Add(persist(f, randomState(f, seed, 8).f))
	}
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, p []byte) {
		fs := New()
		if err := fs.Restore(nopCloser{bytes.NewReader(p)}); err != nil {
			for _, s := range []error{ErrTruncated, ErrMalformed, ErrUnsupportedVersion, ErrBadMagic, ErrChecksum} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if out := persist(t, fs); !bytes.Equal(out, p) {
			t.Fatalf("accepted snapshot does not persist back to itself")
		}
	})
}
