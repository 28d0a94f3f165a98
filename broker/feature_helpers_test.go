package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// Helpers shared by the feature tests (sessions_test.go, qos_test.go, ...):
// a raw client that works in whole packets, so that tests see every flag,
// packet identifier and property the broker sends.

// wire is a rawClient speaking in packets rather than bytes.
type wire struct {
	*rawClient
}

// dialWire opens a raw connection for protocol version v.
func dialWire(t testing.TB, addr string, v codec.Version) *wire {
	t.Helper()
	return &wire{dialRaw(t, addr, v)}
}

// connectWire dials and sends cp (its Version is set to v), failing unless
// the CONNACK reports success. It returns the CONNACK.
func connectWire(t testing.TB, addr string, v codec.Version, cp codec.ConnectPacket) (*wire, *codec.ConnackPacket) {
	t.Helper()
	w := dialWire(t, addr, v)
	ca := w.connectPacket(cp)
	if ca == nil || ca.Reason != codec.Success {
		t.Fatalf("wire connect %q: got %+v", cp.ClientID, ca)
	}
	return w, ca
}

// connectPacket sends cp and returns the CONNACK, or nil if the broker closed
// the connection or did not answer within 5 s.
func (w *wire) connectPacket(cp codec.ConnectPacket) *codec.ConnackPacket {
	w.t.Helper()
	if cp.Version == 0 {
		cp.Version = w.v
	}
	w.send(codec.AppendConnect(nil, &cp))
	pk := w.next(5 * time.Second)
	if pk == nil {
		return nil
	}
	if pk.Type != codec.Connack {
		w.t.Fatalf("wire: expected CONNACK, got %v", pk.Type)
	}
	return &pk.Connack
}

// next returns an owned copy of the next packet, or nil on close or timeout.
func (w *wire) next(timeout time.Duration) *codec.Packet {
	w.t.Helper()
	pk := w.read(timeout)
	if pk == nil {
		return nil
	}
	c, err := pk.Clone(w.v)
	if err != nil {
		w.t.Fatalf("wire: clone %v: %v", pk.Type, err)
	}
	return c
}

// expect returns the next packet and fails unless it has type typ.
func (w *wire) expect(typ codec.PacketType, timeout time.Duration) *codec.Packet {
	w.t.Helper()
	pk := w.next(timeout)
	if pk == nil {
		w.t.Fatalf("wire: expected %v, got nothing within %v", typ, timeout)
		return nil
	}
	if pk.Type != typ {
		w.t.Fatalf("wire: expected %v, got %s", typ, pkString(pk))
	}
	return pk
}

// expectPublish returns the next PUBLISH.
func (w *wire) expectPublish(timeout time.Duration) *codec.PublishPacket {
	w.t.Helper()
	return &w.expect(codec.Publish, timeout).Publish
}

// quiet fails if any packet arrives within d.
func (w *wire) quiet(d time.Duration) {
	w.t.Helper()
	if pk := w.next(d); pk != nil {
		w.t.Fatalf("wire: unexpected %s", pkString(pk))
	}
}

// subscribe sends SUBSCRIBE with id and returns the SUBACK's reason codes.
func (w *wire) subscribe(id uint16, props *codec.Properties, subs ...codec.Subscription) []codec.ReasonCode {
	w.t.Helper()
	sp := codec.SubscribePacket{PacketID: id, Subscriptions: subs}
	if props != nil {
		sp.Props = *props
	}
	w.send(codec.AppendSubscribe(nil, &sp, w.v))
	ack := w.expect(codec.Suback, 5*time.Second)
	if ack.Suback.PacketID != id {
		w.t.Fatalf("wire: SUBACK for %d, want %d", ack.Suback.PacketID, id)
	}
	return ack.Suback.Reasons
}

// sub subscribes to one filter at qos and fails unless it is granted.
func (w *wire) sub(filter string, qos byte) {
	w.t.Helper()
	rc := w.subscribe(1, nil, codec.Subscription{Filter: []byte(filter), QoS: qos})
	if len(rc) != 1 || rc[0] != codec.ReasonCode(qos) {
		w.t.Fatalf("wire: subscribe %q: %v", filter, rc)
	}
}

// publish sends a PUBLISH.
func (w *wire) publish(p codec.PublishPacket) {
	w.t.Helper()
	w.send(codec.AppendPublish(nil, &p, w.v))
}

// ack sends PUBACK, PUBREC, PUBREL or PUBCOMP for id.
func (w *wire) ack(typ codec.PacketType, id uint16) {
	w.t.Helper()
	a := codec.AckPacket{PacketID: id}
	w.send(codec.AppendAck(nil, typ, &a, w.v))
}

// disconnect sends DISCONNECT (with d's reason and properties for v5).
func (w *wire) disconnect(d codec.DisconnectPacket) {
	w.t.Helper()
	w.send(codec.AppendDisconnect(nil, &d, w.v))
}

// ping sends PINGREQ and waits for PINGRESP, proving the connection alive.
func (w *wire) ping() {
	w.t.Helper()
	w.send([]byte{byte(codec.Pingreq) << 4, 0})
	w.expect(codec.Pingresp, 5*time.Second)
}

// mustClose fails unless the broker closes the connection within timeout; it
// returns the last packet sent before the close (a DISCONNECT, say).
func (w *wire) mustClose(timeout time.Duration) *codec.Packet {
	w.t.Helper()
	closed, last := w.closed(timeout)
	if !closed {
		w.t.Fatalf("wire: connection still open after %v", timeout)
	}
	return last
}

// mustDisconnect fails unless the broker sends DISCONNECT with rc and closes.
func (w *wire) mustDisconnect(rc codec.ReasonCode, timeout time.Duration) {
	w.t.Helper()
	last := w.mustClose(timeout)
	if last == nil || last.Type != codec.Disconnect || last.Disconnect.Reason != rc {
		w.t.Fatalf("wire: want DISCONNECT %v before close, got %s", rc, pkString(last))
	}
}

// v5Props returns properties with the given ids marked present; set the
// values on the result.
func v5Props(ids ...codec.PropID) codec.Properties {
	var p codec.Properties
	for _, id := range ids {
		p.Set(id)
	}
	return p
}

// conn5 is a v5 CONNECT for id with the given clean start and session expiry.
func conn5(id string, clean bool, expiry uint32) codec.ConnectPacket {
	cp := codec.ConnectPacket{Version: codec.V5, CleanStart: clean, KeepAlive: 30, ClientID: []byte(id)}
	if expiry > 0 {
		cp.Props.SessionExpiry = expiry
		cp.Props.Set(codec.PropSessionExpiry)
	}
	return cp
}

// conn3 is a 3.1.1 CONNECT for id.
func conn3(id string, clean bool) codec.ConnectPacket {
	return codec.ConnectPacket{Version: codec.V311, CleanStart: clean, KeepAlive: 30, ClientID: []byte(id)}
}

// bothVersions are the two protocol versions most tests run against.
var bothVersions = []struct {
	name string
	v    codec.Version
}{{"v5", codec.V5}, {"v311", codec.V311}}

// connV builds a CONNECT for version v; expiry applies to v5 only (3.1.1
// persistence follows clean).
func connV(v codec.Version, id string, clean bool, expiry uint32) codec.ConnectPacket {
	if v == codec.V5 {
		return conn5(id, clean, expiry)
	}
	return conn3(id, clean)
}

// pubPacket is a PUBLISH of payload to topic at qos with packet id id.
func pubPacket(topic, payload string, qos byte, id uint16) codec.PublishPacket {
	return codec.PublishPacket{Topic: []byte(topic), Payload: []byte(payload), QoS: qos, PacketID: id}
}

// pkString summarises a packet for failure messages.
func pkString(pk *codec.Packet) string {
	if pk == nil {
		return "nothing"
	}
	switch pk.Type {
	case codec.Publish:
		p := &pk.Publish
		return fmt.Sprintf("PUBLISH topic=%q qos=%d id=%d dup=%v retain=%v payload=%q", p.Topic, p.QoS, p.PacketID, p.Dup, p.Retain, p.Payload)
	case codec.Puback, codec.Pubrec, codec.Pubrel, codec.Pubcomp:
		return fmt.Sprintf("%v id=%d reason=%#x", pk.Type, pk.Ack.PacketID, byte(pk.Ack.Reason))
	case codec.Connack:
		return fmt.Sprintf("CONNACK present=%v reason=%#x", pk.Connack.SessionPresent, byte(pk.Connack.Reason))
	case codec.Disconnect:
		return fmt.Sprintf("DISCONNECT reason=%#x", byte(pk.Disconnect.Reason))
	case codec.Suback, codec.Unsuback:
		return fmt.Sprintf("%v id=%d reasons=%v", pk.Type, pk.Suback.PacketID, pk.Suback.Reasons)
	case codec.Auth:
		return fmt.Sprintf("AUTH reason=%#x", byte(pk.Auth.Reason))
	}
	return pk.Type.String()
}

// receiveAll reads n PUBLISH packets, completing every acknowledgement flow
// as a well-behaved client (PUBACK; PUBREC, then PUBCOMP for the PUBREL),
// and returns them once every QoS 2 flow is complete.
func (w *wire) receiveAll(n int, timeout time.Duration) []*codec.PublishPacket {
	w.t.Helper()
	var got []*codec.PublishPacket
	pending := map[uint16]bool{} // QoS 2 ids awaiting PUBREL
	deadline := time.Now().Add(timeout)
	for len(got) < n || len(pending) > 0 {
		pk := w.next(time.Until(deadline))
		if pk == nil {
			w.t.Fatalf("wire: got %d of %d messages (%d PUBREL pending) within %v", len(got), n, len(pending), timeout)
			return nil
		}
		switch pk.Type {
		case codec.Publish:
			p := &pk.Publish
			got = append(got, p)
			switch p.QoS {
			case 1:
				w.ack(codec.Puback, p.PacketID)
			case 2:
				pending[p.PacketID] = true
				w.ack(codec.Pubrec, p.PacketID)
			}
		case codec.Pubrel:
			if !pending[pk.Ack.PacketID] {
				w.t.Fatalf("wire: PUBREL for unknown id %d", pk.Ack.PacketID)
			}
			delete(pending, pk.Ack.PacketID)
			w.ack(codec.Pubcomp, pk.Ack.PacketID)
		default:
			w.t.Fatalf("wire: unexpected %s", pkString(pk))
		}
	}
	return got
}
