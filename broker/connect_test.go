package broker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// connectAuthFunc adapts a function to broker.Authenticator.
type connectAuthFunc func(*broker.ConnectInfo) codec.ReasonCode

func (f connectAuthFunc) Authenticate(i *broker.ConnectInfo) codec.ReasonCode { return f(i) }

// userAuth refuses user "bad" with 0x86 and user "banned" with 0x87.
var userAuth = connectAuthFunc(func(i *broker.ConnectInfo) codec.ReasonCode {
	switch string(i.Username) {
	case "bad":
		return codec.BadUserNameOrPassword
	case "banned":
		return codec.NotAuthorized
	}
	return codec.Success
})

func withUser(cp codec.ConnectPacket, user string) codec.ConnectPacket {
	cp.UsernameFlag, cp.Username = true, []byte(user)
	cp.PasswordFlag, cp.Password = true, []byte("pw")
	return cp
}

// TestConnectAuthRefused: a refusing authentication hook answers v5 clients
// with 0x86/0x87 and 3.1.1 clients with 0x04/0x05, session present 0, then
// closes [MQTT-3.2.2-5, MQTT-3.2.2-6]; 3.1.1 return codes per [MQTT-3.2.2-4].
func TestConnectAuthRefused(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil, broker.WithAuthenticator(userAuth))
	cases := []struct {
		v    codec.Version
		user string
		want codec.ReasonCode
	}{
		{codec.V5, "bad", codec.BadUserNameOrPassword},
		{codec.V5, "banned", codec.NotAuthorized},
		{codec.V311, "bad", codec.V3BadUsernameOrPassword},
		{codec.V311, "banned", codec.V3NotAuthorized},
		{codec.V31, "bad", codec.V3BadUsernameOrPassword},
	}
	for _, tc := range cases {
		w := dialWire(t, tb.Addr, tc.v)
		cp := withUser(connV(tc.v, "auth-"+tc.user, false, 60), tc.user)
		cp.Version = tc.v
		ca := w.connectPacket(cp)
		if ca == nil || ca.Reason != tc.want || ca.SessionPresent {
			t.Fatalf("%v user %q: got %+v, want reason %#x", tc.v, tc.user, ca, byte(tc.want))
		}
		w.mustClose(2 * time.Second)
	}
	// Real clients: paho.golang sees the v5 reason, paho.mqtt.golang the 3.1.1 one.
	_, ca, err := tryDialV5(tb.Addr, "auth-paho5", &paho.Connect{CleanStart: true, UsernameFlag: true, Username: "banned"})
	if err == nil || ca == nil || ca.ReasonCode != byte(codec.NotAuthorized) {
		t.Fatalf("paho v5 banned: err %v connack %+v", err, ca)
	}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + tb.Addr).SetClientID("auth-paho3").
		SetProtocolVersion(4).SetUsername("bad").SetPassword("pw").SetAutoReconnect(false)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || !errors.Is(tok.Error(), packets.ErrorRefusedBadUsernameOrPassword) {
		t.Fatalf("paho v3 bad user: %v", tok.Error())
	}
	// An accepted user still connects on the same broker.
	connectWire(t, tb.Addr, codec.V311, withUser(conn3("auth-good", true), "good"))
	if got := tb.B.Stats().AuthFailures.Load(); got < 6 {
		t.Fatalf("AuthFailures = %d, want >= 6", got)
	}
}

// TestConnectEmptyClientID: v5 gets an Assigned Client Identifier
// [MQTT-3.1.3-6, MQTT-3.1.3-7]; 3.1.1 with clean session is accepted, with
// clean session 0 refused with 0x02 [MQTT-3.1.3-8]; 3.1 needs 1 to 23
// characters (3.1 section 3.1, Client Identifier).
func TestConnectEmptyClientID(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	c1, ca1 := dialV5(t, tb.Addr, "", nil)
	_, ca2 := dialV5(t, tb.Addr, "", nil)
	id1, id2 := ca1.Properties.AssignedClientID, ca2.Properties.AssignedClientID
	if id1 == "" || id2 == "" || id1 == id2 {
		t.Fatalf("assigned ids %q %q: want two distinct non-empty ids", id1, id2)
	}
	// The assigned id is the session's: a message reaches the client under it.
	c1.sub(t, paho.SubscribeOptions{Topic: "assigned/x", QoS: 1})
	p, _ := dialV5(t, tb.Addr, "assigned-pub", nil)
	p.pub(t, &paho.Publish{Topic: "assigned/x", QoS: 1, Payload: []byte("hi")})
	if m := c1.next(t, 5*time.Second); string(m.Payload) != "hi" {
		t.Fatalf("got %q", m.Payload)
	}

	_, ca := connectWire(t, tb.Addr, codec.V311, conn3("", true))
	if ca.SessionPresent {
		t.Fatal("3.1.1 empty id clean session: session present set")
	}
	w := dialWire(t, tb.Addr, codec.V311)
	if ca := w.connectPacket(conn3("", false)); ca == nil || ca.Reason != codec.V3IdentifierRejected {
		t.Fatalf("3.1.1 empty id, clean session 0: got %+v, want 0x02", ca)
	}
	w.mustClose(2 * time.Second)

	for _, id := range []string{"", strings.Repeat("x", 24)} {
		w := dialWire(t, tb.Addr, codec.V31)
		cp := conn3(id, true)
		cp.Version = codec.V31
		if ca := w.connectPacket(cp); ca == nil || ca.Reason != codec.V3IdentifierRejected {
			t.Fatalf("3.1 id %q: got %+v, want 0x02", id, ca)
		}
		w.mustClose(2 * time.Second)
	}
	cp := conn3(strings.Repeat("y", 23), true)
	cp.Version = codec.V31
	connectWire(t, tb.Addr, codec.V31, cp)
}

// TestConnectUnsupportedProtocol: an unknown protocol level gets the 3.1.1
// return code 0x01 [MQTT-3.1.2-2 (3.1.1)]; a CONNECT that claims level 5 but
// the 3.1 protocol name gets a v5 CONNACK 0x84 [MQTT-3.1.2-2]; both close.
func TestConnectUnsupportedProtocol(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	// Level 6 with "MQTT".
	w := dialWire(t, tb.Addr, codec.V311)
	cp := conn3("level6", true)
	cp.Version = 6
	w.send(codec.AppendConnect(nil, &cp))
	pk := w.expect(codec.Connack, 5*time.Second)
	if pk.Connack.Reason != codec.V3UnacceptableProtocolVersion {
		t.Fatalf("level 6: reason %#x, want 0x01", byte(pk.Connack.Reason))
	}
	w.mustClose(2 * time.Second)

	// "MQIsdp" with level 5: the level says v5, so the answer is a v5 CONNACK.
	w = dialWire(t, tb.Addr, codec.V5)
	cp = conn3("mqisdp5", true)
	cp.Version = codec.V31
	b := codec.AppendConnect(nil, &cp)
	b[2+2+len("MQIsdp")] = byte(codec.V5) // the protocol level byte
	w.send(b)
	pk = w.expect(codec.Connack, 5*time.Second)
	if pk.Connack.Reason != codec.UnsupportedProtocolVersion {
		t.Fatalf("MQIsdp level 5: reason %#x, want 0x84", byte(pk.Connack.Reason))
	}
	w.mustClose(2 * time.Second)
}

// TestConnectMaxConnections: past MaxConnections a v5 client gets 0x97 and a
// 3.1.1 client 0x03 (server unavailable) [MQTT-3.2.2-5]; a freed slot is
// usable again.
func TestConnectMaxConnections(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *broker.Config) { c.MaxConnections = 2 })
	connectWire(t, tb.Addr, codec.V5, conn5("max-1", true, 0))
	w2, _ := connectWire(t, tb.Addr, codec.V311, conn3("max-2", true))

	w := dialWire(t, tb.Addr, codec.V5)
	if ca := w.connectPacket(conn5("max-3", true, 0)); ca == nil || ca.Reason != codec.QuotaExceeded {
		t.Fatalf("v5 over the limit: %+v, want 0x97", ca)
	}
	w.mustClose(2 * time.Second)
	w = dialWire(t, tb.Addr, codec.V311)
	if ca := w.connectPacket(conn3("max-4", true)); ca == nil || ca.Reason != codec.V3ServerUnavailable {
		t.Fatalf("3.1.1 over the limit: %+v, want 0x03", ca)
	}
	w.mustClose(2 * time.Second)

	w2.disconnect(codec.DisconnectPacket{})
	waitFor(t, 5*time.Second, "a free connection slot", func() bool {
		return tb.B.Stats().ClientsConnected.Load() < 2
	})
	connectWire(t, tb.Addr, codec.V311, conn3("max-5", true))
}

// TestKeepAliveEnforced: a client silent for 1.5 times its keep alive is
// disconnected [MQTT-3.1.2-22]: v5 with DISCONNECT 0x8D, 3.1.1 by closing;
// a client that pings stays connected [MQTT-3.1.2-23].
func TestKeepAliveEnforced(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	for _, vv := range bothVersions {
		t.Run(vv.name, func(t *testing.T) {
			t.Parallel()
			silent := dialWire(t, tb.Addr, vv.v)
			pinger, _ := connectWire(t, tb.Addr, vv.v, kaConnect(vv.v, "ka-ping-"+vv.name, 1))
			start := time.Now()
			if ca := silent.connectPacket(kaConnect(vv.v, "ka-silent-"+vv.name, 1)); ca == nil || ca.Reason != codec.Success {
				t.Fatalf("connect: %+v", ca)
			}
			stop := make(chan struct{})
			done := make(chan error, 1)
			go func() { // PINGREQ every 400 ms until told to stop
				tk := time.NewTicker(400 * time.Millisecond)
				defer tk.Stop()
				for {
					select {
					case <-stop:
						done <- nil
						return
					case <-tk.C:
						if _, err := pinger.Write([]byte{byte(codec.Pingreq) << 4, 0}); err != nil {
							done <- err
							return
						}
					}
				}
			}()
			last := silent.mustClose(4 * time.Second)
			el := time.Since(start)
			if el < 1400*time.Millisecond || el > 3500*time.Millisecond {
				t.Fatalf("closed after %v, want about 1.5 s to 2.5 s", el)
			}
			if vv.v == codec.V5 && (last == nil || last.Type != codec.Disconnect || last.Disconnect.Reason != codec.KeepAliveTimeout) {
				t.Fatalf("v5: want DISCONNECT 0x8D before close, got %+v", last)
			}
			close(stop)
			if err := <-done; err != nil {
				t.Fatalf("pinging client lost its connection: %v", err)
			}
			for { // drain the PINGRESPs, then prove the connection alive
				pk := pinger.next(100 * time.Millisecond)
				if pk == nil {
					break
				}
				if pk.Type != codec.Pingresp {
					t.Fatalf("pinger got %v", pk.Type)
				}
			}
			pinger.ping()
		})
	}
}

func kaConnect(v codec.Version, id string, ka uint16) codec.ConnectPacket {
	cp := connV(v, id, true, 0)
	cp.KeepAlive = ka
	return cp
}

// TestServerKeepAlive: with ServerKeepAlive configured, a v5 client is told
// the server's value in CONNACK and held to it [MQTT-3.1.2-21]; 3.1.1
// clients keep their own keep alive.
func TestServerKeepAlive(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *broker.Config) { c.ServerKeepAlive = 1 })
	v3, _ := connectWire(t, tb.Addr, codec.V311, conn3("ska-v3", true)) // keep alive 30
	w := dialWire(t, tb.Addr, codec.V5)
	start := time.Now()
	ca := w.connectPacket(kaConnect(codec.V5, "ska-v5", 60))
	if ca == nil || ca.Reason != codec.Success || !ca.Props.Has(codec.PropServerKeepAlive) || ca.Props.ServerKeepAlive != 1 {
		t.Fatalf("CONNACK: %+v, want Server Keep Alive 1", ca)
	}
	w.mustDisconnect(codec.KeepAliveTimeout, 4*time.Second)
	if el := time.Since(start); el > 3500*time.Millisecond {
		t.Fatalf("closed after %v, want within about 2.5 s", el)
	}
	v3.ping() // silent as long, but its own keep alive is 30 s
}

// TestTakeover: a second connection with the same client id closes the
// first [MQTT-3.1.4-3]; a v5 first connection gets DISCONNECT 0x8E.
func TestTakeover(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	// v5 (paho) taken over by v5.
	first, _ := dialV5(t, tb.Addr, "take-5", nil)
	second, _ := dialV5(t, tb.Addr, "take-5", nil)
	select {
	case d := <-first.disconnected:
		if d.ReasonCode != byte(codec.SessionTakenOver) {
			t.Fatalf("first got DISCONNECT %#x, want 0x8E", d.ReasonCode)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first v5 connection got no DISCONNECT")
	}
	second.sub(t, paho.SubscribeOptions{Topic: "take/alive"}) // the new one works

	// 3.1.1 (raw) taken over by 3.1.1, then that one by v5 (raw).
	w1, _ := connectWire(t, tb.Addr, codec.V311, conn3("take-3", true))
	w2, _ := connectWire(t, tb.Addr, codec.V311, conn3("take-3", true))
	if last := w1.mustClose(5 * time.Second); last != nil {
		t.Fatalf("3.1.1 client got %v before close", last.Type)
	}
	w2.ping()
	w3, _ := connectWire(t, tb.Addr, codec.V5, conn5("take-3", true, 0))
	w2.mustClose(5 * time.Second)
	w3.ping()

	// A v5 connection taken over by a 3.1.1 one still hears 0x8E.
	w4, _ := connectWire(t, tb.Addr, codec.V5, conn5("take-mix", true, 0))
	connectWire(t, tb.Addr, codec.V311, conn3("take-mix", true))
	w4.mustDisconnect(codec.SessionTakenOver, 5*time.Second)
	if n := tb.B.Stats().SessionsTakenOver.Load(); n < 4 {
		t.Fatalf("SessionsTakenOver = %d, want >= 4", n)
	}
}
