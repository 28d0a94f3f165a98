package bench

import "github.com/flockmq/flockmq/codec"

// Publish scheduling limits.
const (
	maxBatch     = 4096      // messages per pump
	flushAt      = 256 << 10 // bytes encoded before a pump yields
	outboundHigh = 512 << 10 // QoS 0 unlimited: stop while gnet holds this much unsent
	restampEvery = 64        // re-read the clock every this many messages of a batch
)

// pubWindow is a publisher's QoS 1/2 in-flight window. Packet ids cycle over
// a multiple of the window size, so id -> slot is (id-1) % size and a slot is
// free exactly when its message has been acknowledged. Loop goroutine only.
type pubWindow struct {
	size  int
	space uint64   // packet ids cycle over 1..space
	ctr   uint64   // messages ever placed
	sent  []int64  // send time per slot; 0 = free
	ids   []uint16 // packet id per slot
	n     int      // occupied slots
}

func (w *pubWindow) init(size int) {
	size = max(1, min(size, 65535))
	*w = pubWindow{size: size, space: uint64(65535 / size * size),
		sent: make([]int64, size), ids: make([]uint16, size)}
}

// take places a message sent at now and returns its packet id, or false when
// the next slot is still in flight.
func (w *pubWindow) take(now int64) (uint16, bool) {
	slot := int(w.ctr % uint64(w.size))
	if w.sent[slot] != 0 {
		return 0, false
	}
	id := uint16(1 + w.ctr%w.space)
	w.sent[slot], w.ids[slot] = max(now, 1), id
	w.ctr++
	w.n++
	return id, true
}

// free releases packet id and returns its send time; false for an id not in
// flight.
func (w *pubWindow) free(id uint16) (int64, bool) {
	if w.size == 0 || id == 0 {
		return 0, false
	}
	slot := int(id-1) % w.size
	if w.sent[slot] == 0 || w.ids[slot] != id {
		return 0, false
	}
	t := w.sent[slot]
	w.sent[slot] = 0
	w.n--
	return t, true
}

// pump encodes the messages due now into out. Loop goroutine only.
func (c *client) pump(out []byte, now int64) []byte {
	if c.state != stateReady || (c.limit > 0 && c.sent >= c.limit) {
		return out
	}
	cfg := c.r.cfg
	n := int64(maxBatch)
	if cfg.Rate > 0 {
		due := int64(float64(now-c.pubStart)*cfg.Rate/1e9) + 1 - int64(c.sent)
		if due <= 0 {
			return out
		}
		n = min(n, due)
	} else if cfg.QoS == 0 && c.conn.OutboundBuffered() > outboundHigh {
		return out
	}
	if c.limit > 0 {
		n = min(n, int64(c.limit-c.sent))
	}
	pp := &c.loop.pp
	pp.QoS, pp.Retain, pp.Payload = cfg.QoS, c.retain, c.payload
	var placed int64
	for ; placed < n && len(out) < flushAt; placed++ {
		if placed > 0 && placed%restampEvery == 0 {
			now = c.r.clk.now()
		}
		pp.PacketID = 0
		if cfg.QoS > 0 {
			id, ok := c.win.take(now)
			if !ok {
				break
			}
			pp.PacketID = id
		}
		ti := int(c.sent % uint64(len(c.topics)))
		pp.Topic = c.topics[ti]
		if len(c.payload) >= HeaderSize { // empty when clearing retained topics
			Stamp(c.payload, c.r.runID, c.pubIdx, c.seqs[ti], now)
		}
		out = codec.AppendPublish(out, pp, cfg.Version)
		c.seqs[ti]++
		c.sent++
	}
	if placed > 0 {
		c.loop.st.sent.Add(placed)
		if cfg.QoS > 0 {
			c.loop.st.inflight.Add(placed)
		}
		c.checkDone()
	}
	return out
}
