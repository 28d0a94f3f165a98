package broker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// testAccess is an AsyncAuthenticator and AccessAuthorizer for the tests:
// password "ok" passes (user "cert" gets the identity "from-cert", user
// "short" credentials that expire in 300 ms), no user name is anonymous; a
// client may write and read under "<its user name>/", write "pub/#" and
// read it but for topics with "private" in them; anonymous clients only
// "anon/#".
type testAccess struct {
	mu   sync.Mutex
	seen []broker.Access
}

func (a *testAccess) Authenticate(*broker.ConnectInfo) codec.ReasonCode { return codec.NotAuthorized }

func (a *testAccess) AuthenticateAsync(info *broker.ConnectInfo, done func(codec.ReasonCode, *broker.Identity)) {
	go func() { // an answer from another goroutine, later
		time.Sleep(time.Millisecond)
		switch {
		case len(info.Username) == 0:
			done(codec.Success, &broker.Identity{Anonymous: true})
		case string(info.Password) != "ok":
			done(codec.BadUserNameOrPassword, nil)
		case string(info.Username) == "cert":
			done(codec.Success, &broker.Identity{Username: []byte("from-cert")})
		case string(info.Username) == "short":
			done(codec.Success, &broker.Identity{ExpiresAt: time.Now().Add(300 * time.Millisecond).UnixNano()})
		default:
			done(codec.Success, nil)
		}
	}()
}

func (a *testAccess) own(ac broker.Access, topic string) bool {
	a.mu.Lock()
	a.seen = append(a.seen, ac)
	a.mu.Unlock()
	if ac.Anonymous {
		return strings.HasPrefix(topic, "anon/")
	}
	return len(ac.Username) > 0 && strings.HasPrefix(topic, string(ac.Username)+"/")
}

func (a *testAccess) AllowPublish(ac broker.Access, topic []byte) bool {
	return a.own(ac, string(topic)) || (!ac.Anonymous && strings.HasPrefix(string(topic), "pub/"))
}
func (a *testAccess) AllowSubscribe(ac broker.Access, filter []byte) bool {
	return a.own(ac, string(filter)) || strings.HasPrefix(string(filter), "pub/")
}
func (a *testAccess) AllowRead(ac broker.Access, topic []byte) bool {
	return a.own(ac, string(topic)) || (strings.HasPrefix(string(topic), "pub/") && !strings.Contains(string(topic), "private"))
}
func (a *testAccess) CanPublish(string, []byte, []byte) bool   { return false }
func (a *testAccess) CanSubscribe(string, []byte, []byte) bool { return false }

func userConnect(user, pass string) *paho.Connect {
	return &paho.Connect{CleanStart: true, KeepAlive: 30, Username: user, UsernameFlag: user != "",
		Password: []byte(pass), PasswordFlag: pass != ""}
}

// TestAccessHooks runs the authorization points with an identity-aware
// hook: CONNECT refused for a wrong password, PUBLISH denied with 0x87
// (v5) or dropped (3.1.1), SUBSCRIBE denied per filter, retained messages a
// subscriber may not read held back, a will to a denied topic not
// published, the identity's user name used in place of the CONNECT's, and a
// connection closed when its credentials expire.
func TestAccessHooks(t *testing.T) {
	acc := &testAccess{}
	tb := startBroker(t, nil, broker.WithAuthenticator(acc), broker.WithAuthorizer(acc))

	if _, ca, err := tryDialV5(tb.Addr, "bad", userConnect("alice", "wrong")); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("wrong password: connack %+v err %v, want 0x86", ca, err)
	}

	alice, _ := dialV5(t, tb.Addr, "alice-1", userConnect("alice", "ok"))
	sa := subMixed(t, alice, paho.SubscribeOptions{Topic: "alice/#", QoS: 1}, paho.SubscribeOptions{Topic: "bob/#", QoS: 1},
		paho.SubscribeOptions{Topic: "pub/#", QoS: 1})
	if sa.Reasons[0] != 1 || sa.Reasons[1] != 0x87 || sa.Reasons[2] != 1 {
		t.Fatalf("suback %v, want [1 0x87 1]", sa.Reasons)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	r, _ := alice.Publish(ctx, &paho.Publish{Topic: "bob/x", QoS: 1, Payload: []byte("no")})
	cancel()
	if r == nil || r.ReasonCode != 0x87 {
		t.Fatalf("denied v5 publish: PUBACK %+v, want 0x87", r)
	}
	alice.pub(t, &paho.Publish{Topic: "alice/x", QoS: 1, Payload: []byte("yes")})
	if m := alice.next(t, 5*time.Second); string(m.Payload) != "yes" {
		t.Fatalf("got %q", m.Payload)
	}
	alice.none(t, 100*time.Millisecond)

	// 3.1.1: a denied publish is acknowledged and dropped [MQTT-3.3.5-2].
	bob := dialV3(t, tb.Addr, "bob-1", func(o *mqtt.ClientOptions) { o.SetUsername("bob").SetPassword("ok") })
	tok := bob.Publish("alice/from-bob", 1, false, "x")
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("3.1.1 denied publish not acknowledged: %v", tok.Error())
	}
	alice.none(t, 200*time.Millisecond)
	if n := tb.B.Stats().PublishDenied.Load(); n != 2 {
		t.Fatalf("PublishDenied %d, want 2", n)
	}

	// Retained messages: a subscription gets only those it may read.
	pubber, _ := dialV5(t, tb.Addr, "carol-1", userConnect("carol", "ok"))
	pubber.pub(t, &paho.Publish{Topic: "carol/secret", QoS: 1, Retain: true, Payload: []byte("s")})
	anon, _ := dialV5(t, tb.Addr, "anon-1", nil)
	if sa := subMixed(t, anon, paho.SubscribeOptions{Topic: "#", QoS: 0}); sa.Reasons[0] != 0x87 {
		t.Fatalf("anonymous # subscription: 0x%02x, want 0x87", sa.Reasons[0])
	}
	// The subscription pub/# is allowed, and each retained message is
	// checked on its own: pub/private is held back.
	pubber.pub(t, &paho.Publish{Topic: "pub/private", QoS: 1, Retain: true, Payload: []byte("p")})
	pubber.pub(t, &paho.Publish{Topic: "pub/news", QoS: 1, Retain: true, Payload: []byte("n")})
	dave, _ := dialV5(t, tb.Addr, "dave-1", userConnect("dave", "ok"))
	dave.sub(t, paho.SubscribeOptions{Topic: "pub/#", QoS: 1})
	if m := dave.next(t, 5*time.Second); m.Topic != "pub/news" {
		t.Fatalf("retained %q", m.Topic)
	}
	dave.none(t, 100*time.Millisecond)
	if n := tb.B.Stats().ReadDenied.Load(); n != 1 {
		t.Fatalf("ReadDenied %d, want 1", n)
	}

	// The identity's user name replaces the CONNECT's.
	cert, _ := dialV5(t, tb.Addr, "cert-1", userConnect("cert", "ok"))
	if sa := subMixed(t, cert, paho.SubscribeOptions{Topic: "from-cert/#", QoS: 0}, paho.SubscribeOptions{Topic: "cert/#", QoS: 0}); sa.Reasons[0] != 0 || sa.Reasons[1] != 0x87 {
		t.Fatalf("identity user name: suback %v, want [0 0x87]", sa.Reasons)
	}

	// A will to a topic its client may not publish to is not published.
	watcher, _ := dialV5(t, tb.Addr, "erin-1", userConnect("erin", "ok"))
	watcher.sub(t, paho.SubscribeOptions{Topic: "erin/#", QoS: 0})
	wc, _ := dialV5(t, tb.Addr, "frank-1", &paho.Connect{CleanStart: true, KeepAlive: 30, Username: "frank", UsernameFlag: true,
		Password: []byte("ok"), PasswordFlag: true, WillMessage: &paho.WillMessage{Topic: "erin/will", Payload: []byte("w")}})
	denied := tb.B.Stats().PublishDenied.Load()
	wc.conn.Close()
	waitFor(t, 5*time.Second, "the will refused", func() bool { return tb.B.Stats().PublishDenied.Load() == denied+1 })
	watcher.none(t, 100*time.Millisecond)
	// ... and one to its own topic is, with the owner's identity.
	ok, _ := dialV5(t, tb.Addr, "erin-2", &paho.Connect{CleanStart: true, KeepAlive: 30, Username: "erin", UsernameFlag: true,
		Password: []byte("ok"), PasswordFlag: true, WillMessage: &paho.WillMessage{Topic: "erin/will", Payload: []byte("w2")}})
	ok.conn.Close()
	if m := watcher.next(t, 5*time.Second); string(m.Payload) != "w2" {
		t.Fatalf("will %q", m.Payload)
	}

	// Credentials that expire close the connection with 0x87.
	short, _ := dialV5(t, tb.Addr, "short-1", userConnect("short", "ok"))
	select {
	case d := <-short.disconnected:
		if d.ReasonCode != 0x87 || d.Properties == nil || d.Properties.ReasonString != "credentials expired" {
			t.Fatalf("expiry: DISCONNECT 0x%02x %+v", d.ReasonCode, d.Properties)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no DISCONNECT when the credentials expired")
	}
	if n := tb.B.Stats().AuthExpired.Load(); n != 1 {
		t.Fatalf("AuthExpired %d", n)
	}
}

// subMixed subscribes expecting some filters to be refused: paho reports
// that as an error alongside the SUBACK.
func subMixed(t *testing.T, c *v5Client, opts ...paho.SubscribeOptions) *paho.Suback {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if sa == nil {
		t.Fatalf("subscribe: %v", err)
	}
	return sa
}
