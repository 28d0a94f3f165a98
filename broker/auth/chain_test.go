package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// decide runs the chain's asynchronous path and waits for its answer.
func decide(t *testing.T, c *Chain, info broker.ConnectInfo) (codec.ReasonCode, *broker.Identity) {
	t.Helper()
	type res struct {
		rc codec.ReasonCode
		id *broker.Identity
	}
	ch := make(chan res, 1)
	c.AuthenticateAsync(&info, func(rc codec.ReasonCode, id *broker.Identity) { ch <- res{rc, id} })
	select {
	case r := <-ch:
		return r.rc, r.id
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
		return 0, nil
	}
}

func TestChainNoSources(t *testing.T) {
	c := NewChain(ChainConfig{AllowAnonymous: true})
	if rc, id := decide(t, c, broker.ConnectInfo{Username: []byte("anyone")}); rc != codec.Success || id != nil {
		t.Fatalf("no sources: %v %+v, want success under the given name", rc, id)
	}
	if rc, id := decide(t, c, broker.ConnectInfo{}); rc != codec.Success || id == nil || !id.Anonymous {
		t.Fatalf("no sources, no name: %v %+v, want anonymous", rc, id)
	}
	c = NewChain(ChainConfig{AllowAnonymous: false})
	if rc, _ := decide(t, c, broker.ConnectInfo{}); rc != codec.NotAuthorized {
		t.Fatalf("anonymous off: %v, want 0x87", rc)
	}
}

func TestChainCertIdentity(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "dev-17"}, DNSNames: []string{"dev-17.fleet"}}
	for mode, want := range map[string]string{"cn": "dev-17", "san": "dev-17.fleet"} {
		c := NewChain(ChainConfig{CertIdentity: mode})
		rc, id := decide(t, c, broker.ConnectInfo{PeerCert: cert, Username: []byte("ignored")})
		if rc != codec.Success || id == nil || string(id.Username) != want {
			t.Fatalf("%s: %v %+v, want %s", mode, rc, id, want)
		}
	}
	// Without a certificate the other sources (none here) decide.
	c := NewChain(ChainConfig{CertIdentity: "cn"})
	if rc, _ := decide(t, c, broker.ConnectInfo{Username: []byte("x")}); rc != codec.BadUserNameOrPassword {
		t.Fatalf("no certificate: %v, want 0x86", rc)
	}
}

func TestChainJWTKeys(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tc := range map[string]struct {
		method jwt.SigningMethod
		priv   any
		pub    any
	}{"RS256": {jwt.SigningMethodRS256, rk, &rk.PublicKey}, "ES256": {jwt.SigningMethodES256, ek, &ek.PublicKey}} {
		der, err := x509.MarshalPKIXPublicKey(tc.pub)
		if err != nil {
			t.Fatal(err)
		}
		j, err := NewJWT(nil, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := NewChain(ChainConfig{JWT: j})
		tok, _ := jwt.NewWithClaims(tc.method, jwt.MapClaims{"username": "u1", "clientid": "c1",
			"exp": time.Now().Add(time.Hour).Unix()}).SignedString(tc.priv)
		rc, id := decide(t, c, broker.ConnectInfo{ClientID: "c1", Username: []byte("u1"), Password: []byte(tok)})
		if rc != codec.Success || id == nil || id.ExpiresAt == 0 {
			t.Fatalf("%s: %v %+v", name, rc, id)
		}
		if rc, _ := decide(t, c, broker.ConnectInfo{ClientID: "c2", Username: []byte("u1"), Password: []byte(tok)}); rc != codec.BadUserNameOrPassword {
			t.Fatalf("%s for another client id: %v", name, rc)
		}
		// An HS256 token with the public key as secret (algorithm confusion)
		// is refused.
		forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"username": "u1"}).SignedString(der)
		if rc, _ := decide(t, c, broker.ConnectInfo{ClientID: "c1", Username: []byte("u1"), Password: []byte(forged)}); rc != codec.BadUserNameOrPassword {
			t.Fatalf("%s: HS256 token accepted by a public key: %v", name, rc)
		}
	}
	if _, err := NewJWT([]byte("short"), nil); err == nil {
		t.Fatal("a short HS256 secret accepted")
	}
}

func TestChainPasswordsThenHTTP(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if err := SetPassword(pw, "alice", "wonder"); err != nil {
		t.Fatal(err)
	}
	ps, err := NewPasswordSource(pw)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	down := atomic.Bool{}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(`{"result":"ignore"}`))
	}))
	defer svc.Close()
	for _, downIgnore := range []bool{false, true} {
		h, err := NewHTTPHook(HTTPHookConfig{URL: svc.URL, DownIgnore: downIgnore, CacheTTL: -1})
		if err != nil {
			t.Fatal(err)
		}
		c := NewChain(ChainConfig{Passwords: ps, HTTP: h, AllowAnonymous: true})
		before := calls.Load()
		if rc, _ := decide(t, c, broker.ConnectInfo{Username: []byte("alice"), Password: []byte("wonder")}); rc != codec.Success {
			t.Fatalf("password: %v", rc)
		}
		if rc, _ := decide(t, c, broker.ConnectInfo{Username: []byte("alice"), Password: []byte("x")}); rc != codec.BadUserNameOrPassword {
			t.Fatalf("wrong password: %v", rc)
		}
		if calls.Load() != before {
			t.Fatal("the service was asked about a user of the password file")
		}
		// Unknown to the file: the service ignores, so the fallback decides.
		down.Store(false)
		if rc, _ := decide(t, c, broker.ConnectInfo{Username: []byte("carol")}); rc != codec.BadUserNameOrPassword {
			t.Fatalf("ignored with a user name: %v", rc)
		}
		if rc, id := decide(t, c, broker.ConnectInfo{}); rc != codec.Success || id == nil || !id.Anonymous {
			t.Fatalf("ignored without a user name: %v %+v", rc, id)
		}
		// Down: deny, or pass on to the anonymous policy.
		down.Store(true)
		rc, _ := decide(t, c, broker.ConnectInfo{})
		if want := map[bool]codec.ReasonCode{false: codec.BadUserNameOrPassword, true: codec.Success}[downIgnore]; rc != want {
			t.Fatalf("service down, ignore %v: %v, want %v", downIgnore, rc, want)
		}
	}
	_ = os.Remove(pw)
}

func TestChainJWTClaimsACL(t *testing.T) {
	cl := &JWTClaims{HasACL: true, Pub: []string{"dev/1/#"}, Sub: []string{"cmd/1/+"}}
	c := NewChain(ChainConfig{})
	a := broker.Access{ClientID: "c", Claims: cl}
	for _, tc := range []struct {
		got, want bool
		what      string
	}{
		{c.AllowPublish(a, []byte("dev/1/x")), true, "publish dev/1/x"},
		{c.AllowPublish(a, []byte("dev/2/x")), false, "publish dev/2/x"},
		{c.AllowSubscribe(a, []byte("cmd/1/a")), true, "subscribe cmd/1/a"},
		{c.AllowSubscribe(a, []byte("cmd/1/#")), false, "subscribe cmd/1/# (wider than the claim)"},
		{c.AllowSubscribe(a, []byte("$share/g/cmd/1/a")), true, "shared subscribe"},
		{c.AllowRead(a, []byte("cmd/1/a")), true, "read cmd/1/a"},
		{c.AllowRead(a, []byte("cmd/2/a")), false, "read cmd/2/a"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, tc.got, tc.want)
		}
	}
}

func TestChainSysAnonymous(t *testing.T) {
	c := NewChain(ChainConfig{AllowAnonymous: true})
	anon := broker.Access{ClientID: "a", Anonymous: true}
	user := broker.Access{ClientID: "u", Username: []byte("u")}
	if c.AllowSubscribe(anon, []byte("$SYS/#")) || c.AllowRead(anon, []byte("$SYS/broker/uptime")) {
		t.Fatal("an anonymous client may read $SYS without an ACL granting it")
	}
	if !c.AllowSubscribe(anon, []byte("a/#")) || !c.AllowSubscribe(user, []byte("$SYS/#")) {
		t.Fatal("anonymous a/# or a user's $SYS/# refused")
	}
}
