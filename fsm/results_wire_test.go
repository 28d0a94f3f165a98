package fsm

import (
	"errors"
	"reflect"
	"testing"
)

// TestResultsRoundTrip: the results a leader sends back for a forwarded
// batch decode to what was applied.
func TestResultsRoundTrip(t *testing.T) {
	a := newApplier(t)
	a.claim("c1", false, 300, 1000)
	a.one(&Subscribe{ClientID: "c1", Epoch: a.f.mustSession(t, "c1").Epoch, Filter: "a/#", QoS: 1, SubscriptionID: 7})
	res := a.do(
		&SessionClaim{ClientID: "c1", Node: "n1", Boot: 1, Expiry: 300, ProtocolVersion: 5, Now: 2000},
		&Unsubscribe{ClientID: "c1", Epoch: 1, Filter: "x"},
		&RetainedSet{Topic: "r", Payload: []byte("v"), Now: 2000},
	)
	b := AppendResults([]byte("prefix"), res)[len("prefix"):]
	got, err := DecodeResults(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, res) {
		t.Fatalf("decoded %+v\nwant %+v", got, res)
	}
	if !got[0].SessionPresent || len(got[0].Subscriptions) != 1 || got[0].Subscriptions[0].SubscriptionID != 7 {
		t.Fatalf("claim result lost its session or subscriptions: %+v", got[0])
	}
	// Every truncation and a trailing byte are errors, never a panic.
	for i := 0; i < len(b); i++ {
		if _, err := DecodeResults(b[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := DecodeResults(append(append([]byte(nil), b...), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := DecodeResults([]byte{9, 0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown version: %v", err)
	}
}

func (f *FSM) mustSession(t *testing.T, id string) Session {
	t.Helper()
	s, ok := f.Session(id)
	if !ok {
		t.Fatalf("no session %s", id)
	}
	return s
}

// TestSessionsOfNodeAnyBoot finds a node's sessions across its runs and no
// other node's.
func TestSessionsOfNodeAnyBoot(t *testing.T) {
	a := newApplier(t)
	claim := func(id, node string, boot uint64) {
		r := a.one(&SessionClaim{ClientID: id, Node: node, Boot: boot, Expiry: 60, ProtocolVersion: 5, Now: 1})
		if r.Code != CodeOK {
			t.Fatalf("claim %s: %v", id, r.Code)
		}
	}
	claim("a", "n1", 1)
	claim("b", "n1", 2)
	claim("c", "n10", 1) // a node whose name extends n1's must not match
	claim("d", "n2", 1)
	var got []string
	for _, s := range a.f.SessionsOfNodeAnyBoot("n1") {
		got = append(got, s.ClientID)
	}
	if !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("sessions of n1: %v, want [a b]", got)
	}
}

// FuzzDecodeResults: any input decodes or fails cleanly, and what decodes
// encodes back to the same bytes.
func FuzzDecodeResults(f *testing.F) {
	f.Add(AppendResults(nil, []Result{{Code: CodeOK, Epoch: 1 << 16, SessionPresent: true,
		Subscriptions: []Subscription{{Filter: "a/+", QoS: 2, NoLocal: true}}}, {Code: CodeStale}}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeResults(b)
		if err != nil {
			return
		}
		again, err := DecodeResults(AppendResults(nil, res))
		if err != nil || !reflect.DeepEqual(again, res) {
			t.Fatalf("re-decode: %v %+v vs %+v", err, again, res)
		}
	})
}
