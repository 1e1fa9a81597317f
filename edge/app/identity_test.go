package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsedge/wsedge/internal/testkit"
)

func TestDevIdentity(t *testing.T) {
	ts := start(t, Config{}, nil)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"user=", http.StatusUnauthorized},
		{"other=alice", http.StatusUnauthorized},
		{"user=" + strings.Repeat("a", 129), http.StatusBadRequest},
		{"user=a%01b", http.StatusBadRequest},
		{"user=%C3%A9", http.StatusBadRequest},
		{"user=" + strings.Repeat("a", 128), http.StatusSwitchingProtocols},
		{"user=a", http.StatusSwitchingProtocols},
		{"user=" + url.QueryEscape("Alice Smith!~"), http.StatusSwitchingProtocols},
	} {
		if got := ts.dialStatus(tc.query, nil); got != tc.want {
			t.Errorf("?%s: status %d, want %d", tc.query, got, tc.want)
		}
	}
	if !strings.Contains(ts.log.String(), "anyone can claim any user") {
		t.Errorf("no development-mode warning in the log:\n%s", ts.log.String())
	}
	if got := ts.scrape("wsedge_auth_failures_total", "reason=missing"); got != 3 {
		t.Errorf("auth failures (missing) = %v, want 3", got)
	}
	if got := ts.scrape("wsedge_auth_failures_total", "reason=bad_user_id"); got != 3 {
		t.Errorf("auth failures (bad_user_id) = %v, want 3", got)
	}
}

func hsToken(t testing.TB, secret, sub string, exp, nbf time.Time) string {
	t.Helper()
	claims := jwt.RegisteredClaims{Subject: sub}
	if !exp.IsZero() {
		claims.ExpiresAt = jwt.NewNumericDate(exp)
	}
	if !nbf.IsZero() {
		claims.NotBefore = jwt.NewNumericDate(nbf)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenHS256(t *testing.T) {
	ts := start(t, Config{JWTSecret: []byte("s3cret")}, nil)
	now := time.Now()
	hour := time.Hour
	valid := hsToken(t, "s3cret", "alice", now.Add(hour), time.Time{})
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, jwt.RegisteredClaims{Subject: "alice"}).SignedString([]byte("s3cret"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Subject: "alice"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
		want   int
	}{
		{"query token", "token=" + valid, nil, http.StatusSwitchingProtocols},
		{"bearer header", "", bearer(valid), http.StatusSwitchingProtocols},
		{"no exp", "token=" + hsToken(t, "s3cret", "alice", time.Time{}, time.Time{}), nil, http.StatusUnauthorized},
		{"missing", "", nil, http.StatusUnauthorized},
		{"user param is not an identity", "user=alice", nil, http.StatusUnauthorized},
		{"expired", "token=" + hsToken(t, "s3cret", "alice", now.Add(-hour), time.Time{}), nil, http.StatusUnauthorized},
		{"not yet valid", "token=" + hsToken(t, "s3cret", "alice", now.Add(2*hour), now.Add(hour)), nil, http.StatusUnauthorized},
		{"wrong secret", "token=" + hsToken(t, "other", "alice", now.Add(hour), time.Time{}), nil, http.StatusUnauthorized},
		{"wrong algorithm", "token=" + hs384, nil, http.StatusUnauthorized},
		{"alg none", "token=" + none, nil, http.StatusUnauthorized},
		{"garbage", "token=abc.def.ghi", nil, http.StatusUnauthorized},
		{"basic auth", "", http.Header{"Authorization": {"Basic YTpi"}}, http.StatusUnauthorized},
		{"no sub", "token=" + hsToken(t, "s3cret", "", now.Add(hour), time.Time{}), nil, http.StatusUnauthorized},
		{"bad sub", "token=" + hsToken(t, "s3cret", strings.Repeat("x", 129), now.Add(hour), time.Time{}), nil, http.StatusBadRequest},
	} {
		if got := ts.dialStatus(tc.query, tc.header); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	if strings.Contains(ts.log.String(), "anyone can claim") {
		t.Error("development warning logged in token mode")
	}
	for reason, want := range map[string]float64{"expired": 1, "not_yet_valid": 1, "bad_signature": 3, "missing": 4, "missing_exp": 1} {
		if got := ts.scrape("wsedge_auth_failures_total", "reason="+reason); got != want {
			t.Errorf("auth failures (%s) = %v, want %v", reason, got, want)
		}
	}

	// The sub claim is the identity, whatever ?user= says.
	c := ts.dialWith("user=mallory&token="+valid, nil)
	ts.waitUser("alice", c)
	if ts.app.users.get("mallory") != nil {
		t.Fatal("?user= registered in token mode")
	}
}

func pemPublic(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestTokenRS256AndES256(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := jwt.RegisteredClaims{Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}
	sign := func(m jwt.SigningMethod, key any) string {
		s, err := jwt.NewWithClaims(m, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("RS256", func(t *testing.T) {
		ts := start(t, Config{JWTPublicKeyPEM: pemPublic(t, &rsaKey.PublicKey)}, nil)
		if got := ts.dialStatus("token="+sign(jwt.SigningMethodRS256, rsaKey), nil); got != http.StatusSwitchingProtocols {
			t.Errorf("RS256: %d", got)
		}
		if got := ts.dialStatus("token="+sign(jwt.SigningMethodES256, ecKey), nil); got != http.StatusUnauthorized {
			t.Errorf("ES256 token on an RSA key: %d", got)
		}
		if got := ts.dialStatus("token="+hsToken(t, string(pemPublic(t, &rsaKey.PublicKey)), "alice", time.Time{}, time.Time{}), nil); got != http.StatusUnauthorized {
			t.Errorf("HS256 keyed with the public key: %d", got)
		}
	})
	t.Run("ES256", func(t *testing.T) {
		ts := start(t, Config{JWTPublicKeyPEM: pemPublic(t, &ecKey.PublicKey)}, nil)
		if got := ts.dialStatus("token="+sign(jwt.SigningMethodES256, ecKey), nil); got != http.StatusSwitchingProtocols {
			t.Errorf("ES256: %d", got)
		}
		if got := ts.dialStatus("token="+sign(jwt.SigningMethodES256, otherEC), nil); got != http.StatusUnauthorized {
			t.Errorf("ES256 by another key: %d", got)
		}
	})
	if _, err := New(Config{JWTPublicKeyPEM: []byte("not a key")}); err == nil {
		t.Error("New accepted a bad PEM key")
	}
	if _, err := New(Config{JWTSecret: []byte("x"), JWTPublicKeyPEM: pemPublic(t, &ecKey.PublicKey)}); err == nil {
		t.Error("New accepted both a secret and a public key")
	}
}

func TestOrigins(t *testing.T) {
	ts := start(t, Config{AllowedOrigins: []string{"https://chat.example.com", "http://localhost:3000"}}, nil)
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	for _, tc := range []struct {
		h    http.Header
		want int
	}{
		{origin("https://chat.example.com"), http.StatusSwitchingProtocols},
		{origin("http://localhost:3000"), http.StatusSwitchingProtocols},
		{origin("https://evil.example.com"), http.StatusForbidden},
		{origin("https://chat.example.com:443"), http.StatusForbidden},
		{nil, http.StatusSwitchingProtocols},
	} {
		if got := ts.dialStatus("user=alice", tc.h); got != tc.want {
			t.Errorf("Origin %v: status %d, want %d", tc.h, got, tc.want)
		}
	}
	// The origin is checked before identity.
	if got := ts.dialStatus("", origin("https://evil.example.com")); got != http.StatusForbidden {
		t.Errorf("bad origin, no user: %d", got)
	}
	if got := ts.scrape("wsedge_auth_failures_total", "reason=origin"); got != 3 {
		t.Errorf("origin failures %v, want 3", got)
	}
	if strings.Contains(ts.log.String(), "any site") {
		t.Error("any-origin warning logged with origins set")
	}

	open := start(t, Config{}, nil)
	if got := open.dialStatus("user=alice", origin("https://anything.example")); got != http.StatusSwitchingProtocols {
		t.Errorf("default: any origin refused: %d", got)
	}
	if !strings.Contains(open.log.String(), "any site") {
		t.Error("no startup warning for any origin")
	}
}

func TestReplaceOnReconnect(t *testing.T) {
	ts := start(t, Config{}, nil)
	old := ts.dial("alice")
	old.send(`{"type":"join","room":"r","id":1}`)
	old.expect(`{"type":"ack","id":1}`)
	bob := ts.dial("bob")

	fresh := ts.dial("alice")
	if code := old.expectClose(); code != 4000 {
		t.Fatalf("old connection closed with %d, want 4000", code)
	}
	// The old connection's late OnClose must not unregister the new one.
	testkit.Eventually(t, 5*time.Second, "the old connection's close", func() bool {
		return ts.srv.Stats().Connections == 2
	})
	if ts.app.users.get("alice") == nil {
		t.Fatal("the replaced connection's close unregistered its successor")
	}
	bob.send(`{"type":"send","to":"alice","data":"hello","id":"x"}`)
	fresh.expect(`{"type":"message","from":"bob","data":"hello"}`)
	bob.expect(`{"type":"ack","id":"x"}`)
	// The new connection starts in no room.
	if got := ts.admin("GET", "/v1/rooms/r", "", http.StatusOK); got != `{"room":"r","members":0,"users":[]}`+"\n" {
		t.Fatalf("room after replace: %s", got)
	}
	if got := ts.scrape("wsedge_user_evictions_total", "reason=replaced"); got != 1 {
		t.Errorf("replaced evictions %v", got)
	}
	if got := ts.scrape("wsedge_users", ""); got != 2 {
		t.Errorf("users gauge %v, want 2", got)
	}
}
