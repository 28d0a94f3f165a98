package broker

import "testing"

// TestFenceClosesOlderConnection: a claim with a newer epoch, applied from
// anywhere, closes this node's connection of that client [MQTT-3.1.4-3];
// an older or equal epoch does nothing.
func TestFenceClosesOlderConnection(t *testing.T) {
	ip := newInproc(t, 1)
	c, ft := ip.connect(t, 0, "fenced")
	epoch := c.s.epoch
	ip.b.Fence("fenced", epoch) // the connection's own claim
	ip.b.Fence("unknown", epoch+5)
	ip.run()
	if ft.closed {
		t.Fatal("closed by its own epoch")
	}
	ip.b.Fence("fenced", epoch+1)
	ip.run()
	if !ft.closed || !c.closed {
		t.Fatal("a newer claim did not close the older connection")
	}
	if got := ip.b.Stats().SessionsTakenOver.Load(); got != 1 {
		t.Fatalf("takeovers counted %d, want 1", got)
	}
}
