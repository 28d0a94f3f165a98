package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// More v5 features: CONNACK properties, reason codes in acknowledgements,
// server-initiated DISCONNECT and enhanced authentication.

// TestResponseInformation: Response Information is in CONNACK only when the
// client asked for it [MQTT-3.1.2-28], section 3.2.2.3.15.
func TestResponseInformation(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	_, ca := dialV5(t, tb.Addr, "ri-yes", &paho.Connect{CleanStart: true, Properties: &paho.ConnectProperties{RequestResponseInfo: true}})
	if ca.Properties == nil || ca.Properties.ResponseInfo == "" {
		t.Fatal("no Response Information though requested")
	}
	_, ca = dialV5(t, tb.Addr, "ri-no", nil)
	if ca.Properties != nil && ca.Properties.ResponseInfo != "" {
		t.Fatalf("Response Information %q though not requested", ca.Properties.ResponseInfo)
	}
}

// TestShutdownDisconnect: on shutdown the broker sends v5 clients DISCONNECT
// 0x8B [MQTT-3.14.2-1 (reason codes, section 3.14.2.1)] and closes every
// connection; 3.1.1 clients are closed without a packet.
func TestShutdownDisconnect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	c5, _ := dialV5(t, tb.Addr, "sd-paho", nil)
	w5, _ := connectWire(t, tb.Addr, codec.V5, conn5("sd-5", true, 0))
	w3, _ := connectWire(t, tb.Addr, codec.V311, conn3("sd-3", true))
	if err := tb.B.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-c5.disconnected:
		if d.ReasonCode != byte(codec.ServerShuttingDown) {
			t.Fatalf("paho got DISCONNECT %#x, want 0x8B", d.ReasonCode)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("paho client got no DISCONNECT")
	}
	w5.mustDisconnect(codec.ServerShuttingDown, 5*time.Second)
	if last := w3.mustClose(5 * time.Second); last != nil {
		t.Fatalf("3.1.1 client got %s", pkString(last))
	}
	// A client arriving during shutdown is refused.
	w := dialWire(t, tb.Addr, codec.V5)
	if ca := w.connectPacket(conn5("sd-late", true, 0)); ca != nil && ca.Reason == codec.Success {
		t.Fatal("connect accepted after shutdown")
	}
}

// TestPubackReasonCodes: v5 PUBACK/PUBREC say 0x10 when no subscription
// matched [MQTT-3.4.2-1, MQTT-3.5.2-1] (3.1.1 has no reason code); a payload
// marked UTF-8 (Payload Format Indicator 1) that is not gets 0x99 and is
// not forwarded [MQTT-3.3.2-4 (receiver may reject)].
func TestPubackReasonCodes(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	w5, _ := connectWire(t, tb.Addr, codec.V5, conn5("prc-5", true, 0))
	w5.publish(pubPacket("nobody/here", "x", 1, 1))
	if a := w5.expect(codec.Puback, 5*time.Second); a.Ack.Reason != codec.NoMatchingSubscribers {
		t.Fatalf("PUBACK %s, want 0x10", pkString(a))
	}
	w5.publish(pubPacket("nobody/here", "x", 2, 2))
	if a := w5.expect(codec.Pubrec, 5*time.Second); a.Ack.Reason != codec.NoMatchingSubscribers {
		t.Fatalf("PUBREC %s, want 0x10", pkString(a))
	}
	w5.ack(codec.Pubrel, 2)
	if a := w5.expect(codec.Pubcomp, 5*time.Second); a.Ack.Reason != codec.Success {
		t.Fatalf("PUBCOMP %s", pkString(a))
	}
	// paho sees the same.
	c5, _ := dialV5(t, tb.Addr, "prc-paho", nil)
	if r := c5.pub(t, &paho.Publish{Topic: "nobody/here", QoS: 1, Payload: []byte("x")}); r.ReasonCode != byte(codec.NoMatchingSubscribers) {
		t.Fatalf("paho PUBACK %#x, want 0x10", r.ReasonCode)
	}
	w3, _ := connectWire(t, tb.Addr, codec.V311, conn3("prc-3", true))
	w3.publish(pubPacket("nobody/here", "x", 1, 1))
	w3.expect(codec.Puback, 5*time.Second) // decodes as 3.1.1: two bytes, no reason

	sub, _ := connectWire(t, tb.Addr, codec.V5, conn5("prc-sub", true, 0))
	sub.sub("pfi/#", 1)
	for i, tc := range []struct {
		payload string
		want    codec.ReasonCode
	}{
		{"\xff\xfe not utf-8", codec.PayloadFormatInvalid},
		{"ok \u00e9", codec.Success},
		{"\xed\xa0\x80", codec.PayloadFormatInvalid}, // a surrogate
	} {
		p := pubPacket("pfi/t", tc.payload, 1, uint16(10+i))
		p.Props = v5Props(codec.PropPayloadFormat)
		p.Props.PayloadFormat = 1
		w5.publish(p)
		if a := w5.expect(codec.Puback, 5*time.Second); a.Ack.Reason != tc.want {
			t.Fatalf("payload %q: PUBACK %s, want %#x", tc.payload, pkString(a), byte(tc.want))
		}
	}
	m := sub.receiveAll(1, 5*time.Second)[0]
	if string(m.Payload) != "ok \u00e9" || m.Props.PayloadFormat != 1 {
		t.Fatalf("subscriber got %q format %d", m.Payload, m.Props.PayloadFormat)
	}
	sub.quiet(200 * time.Millisecond)
	w5.ping() // a 0x99 PUBACK keeps the connection
}

// challengeAuth is a two-step enhanced authenticator for method "CHAL": the
// client says "hello", is challenged, and must answer "response".
type challengeAuth struct{}

func (challengeAuth) Supports(m []byte) bool { return string(m) == "CHAL" }

func (challengeAuth) Step(_ string, _, data []byte, state any) (codec.ReasonCode, []byte, any) {
	switch {
	case string(data) == "hello":
		return codec.ContinueAuthentication, []byte("challenge"), "challenged"
	case string(data) == "response" && state == "challenged":
		return codec.Success, []byte("welcome"), "done"
	}
	return codec.NotAuthorized, nil, nil
}

func authPacket(rc codec.ReasonCode, method, data string) []byte {
	a := codec.AuthPacket{Reason: rc, Props: v5Props(codec.PropAuthMethod, codec.PropAuthData)}
	a.Props.AuthMethod, a.Props.AuthData = []byte(method), []byte(data)
	return codec.AppendAuth(nil, &a)
}

func authConnect(id, method, data string) codec.ConnectPacket {
	cp := conn5(id, true, 0)
	cp.Props = v5Props(codec.PropAuthMethod, codec.PropAuthData)
	cp.Props.AuthMethod, cp.Props.AuthData = []byte(method), []byte(data)
	return cp
}

// TestEnhancedAuth: the AUTH exchange of section 4.12: CONNECT with an
// Authentication Method, AUTH 0x18 challenges [MQTT-4.12.0-2], the client
// answers with AUTH 0x18 [MQTT-4.12.0-3], CONNACK carries the method
// [MQTT-4.12.0-5]; re-authentication with AUTH 0x19 [MQTT-4.12.1-1]; a wrong
// answer is refused; an unsupported method is CONNACK 0x8C
// [MQTT-4.12.0-1 (section 4.12)].
func TestEnhancedAuth(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil, broker.WithEnhancedAuth(challengeAuth{}))
	w := dialWire(t, tb.Addr, codec.V5)
	cp := authConnect("ea-ok", "CHAL", "hello")
	w.send(codec.AppendConnect(nil, &cp))
	a := w.expect(codec.Auth, 5*time.Second)
	if a.Auth.Reason != codec.ContinueAuthentication || string(a.Auth.Props.AuthMethod) != "CHAL" || string(a.Auth.Props.AuthData) != "challenge" {
		t.Fatalf("challenge: %s method %q data %q", pkString(a), a.Auth.Props.AuthMethod, a.Auth.Props.AuthData)
	}
	w.send(authPacket(codec.ContinueAuthentication, "CHAL", "response"))
	ca := w.expect(codec.Connack, 5*time.Second)
	if ca.Connack.Reason != codec.Success || string(ca.Connack.Props.AuthMethod) != "CHAL" || string(ca.Connack.Props.AuthData) != "welcome" {
		t.Fatalf("CONNACK %s method %q data %q", pkString(ca), ca.Connack.Props.AuthMethod, ca.Connack.Props.AuthData)
	}
	w.ping()

	// Re-authentication on the live connection.
	w.send(authPacket(codec.ReAuthenticate, "CHAL", "hello"))
	if a := w.expect(codec.Auth, 5*time.Second); a.Auth.Reason != codec.ContinueAuthentication {
		t.Fatalf("re-auth challenge: %s", pkString(a))
	}
	w.send(authPacket(codec.ContinueAuthentication, "CHAL", "response"))
	if a := w.expect(codec.Auth, 5*time.Second); a.Auth.Reason != codec.Success || string(a.Auth.Props.AuthData) != "welcome" {
		t.Fatalf("re-auth result: %s", pkString(a))
	}
	w.ping()

	// A wrong answer.
	w = dialWire(t, tb.Addr, codec.V5)
	cp = authConnect("ea-wrong", "CHAL", "hello")
	w.send(codec.AppendConnect(nil, &cp))
	w.expect(codec.Auth, 5*time.Second)
	w.send(authPacket(codec.ContinueAuthentication, "CHAL", "guess"))
	if ca := w.expect(codec.Connack, 5*time.Second); ca.Connack.Reason != codec.NotAuthorized {
		t.Fatalf("wrong answer: %s, want 0x87", pkString(ca))
	}
	w.mustClose(5 * time.Second)

	// Unsupported method, here and on a broker without enhanced auth.
	plain := startBroker(t, nil)
	for _, addr := range []string{tb.Addr, plain.Addr} {
		w := dialWire(t, addr, codec.V5)
		if ca := w.connectPacket(authConnect("ea-bad", "NOPE", "x")); ca == nil || ca.Reason != codec.BadAuthenticationMethod {
			t.Fatalf("bad method: %+v, want 0x8C", ca)
		}
		w.mustClose(5 * time.Second)
	}
}

// pahoAuther answers the challenge of challengeAuth through paho's Auther.
type pahoAuther struct{ done chan struct{} }

func (a *pahoAuther) Authenticate(in *paho.Auth) *paho.Auth {
	return &paho.Auth{ReasonCode: byte(codec.ContinueAuthentication),
		Properties: &paho.AuthProperties{AuthMethod: "CHAL", AuthData: []byte("response")}}
}

func (a *pahoAuther) Authenticated() { close(a.done) }

// TestEnhancedAuthPaho: a real client completes the exchange with its
// AuthHandler (section 4.12).
func TestEnhancedAuthPaho(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil, broker.WithEnhancedAuth(challengeAuth{}))
	conn := dialWire(t, tb.Addr, codec.V5).Conn
	auther := &pahoAuther{done: make(chan struct{})}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, AuthHandler: auther, OnClientError: func(error) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "ea-paho", CleanStart: true,
		Properties: &paho.ConnectProperties{AuthMethod: "CHAL", AuthData: []byte("hello")}})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect: %v %+v", err, ca)
	}
	select {
	case <-auther.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Authenticated not called")
	}
	_ = c.Disconnect(&paho.Disconnect{})
}
