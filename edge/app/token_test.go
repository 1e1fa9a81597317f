package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
)

const testSecret = "s3cret"

// signHS signs claims with testSecret.
func signHS(t testing.TB, claims jwt.RegisteredClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startTokens runs a token-mode server whose expiry wheel ticks every 50ms,
// and closes the app (its wheel) at the end.
func startTokens(t *testing.T, cfg Config) *testServer {
	t.Helper()
	cfg.JWTSecret = []byte(testSecret)
	cfg.TokenTick = 50 * time.Millisecond
	ts := start(t, cfg, nil)
	t.Cleanup(ts.app.Close)
	return ts
}

// soon is an exp 1-2s ahead: exp has whole-second precision.
func soon() time.Time { return time.Now().Add(2 * time.Second).Truncate(time.Second) }

func TestTokenExpiryCloses4003(t *testing.T) {
	ts := startTokens(t, Config{})
	exp := soon()
	c := ts.dialWith("token="+hsToken(t, testSecret, "alice", exp, time.Time{}), nil)
	ts.waitUser("alice", c)
	// expectClose reads with a 5s deadline: the close comes at exp (1-2s).
	if code := c.expectClose(); code != int(CloseTokenExpired) {
		t.Fatalf("close code %d, want 4003", code)
	}
	if now := time.Now(); now.Before(exp) {
		t.Fatalf("closed %v before the token's exp", exp.Sub(now))
	}
	if got := ts.scrape("wsedge_token_expiries_total", ""); got != 1 {
		t.Errorf("token expiries %v, want 1", got)
	}
	testkit.Eventually(t, 5*time.Second, "the expiry entry released", func() bool { return ts.app.tokens.wheel.Len() == 0 })
}

// A refresh before exp keeps the connection open past the old exp: a
// witness connection with the same exp and no refresh shows when that was.
func TestTokenRefresh(t *testing.T) {
	ts := startTokens(t, Config{})
	exp := soon()
	alice := ts.dialWith("token="+hsToken(t, testSecret, "alice", exp, time.Time{}), nil)
	ts.waitUser("alice", alice)
	witness := ts.dialWith("token="+hsToken(t, testSecret, "bob", exp, time.Time{}), nil)
	ts.waitUser("bob", witness)
	mallory := ts.dialWith("token="+hsToken(t, testSecret, "mallory", exp, time.Time{}), nil)
	ts.waitUser("mallory", mallory)

	later := hsToken(t, testSecret, "alice", time.Now().Add(time.Hour), time.Time{})
	alice.send(`{"type":"refresh","token":"` + later + `","id":"r1"}`)
	alice.expect(`{"type":"ack","id":"r1"}`)

	// Another user's token, an expired one, garbage: bad_token, and the old
	// expiry stands.
	mallory.send(`{"type":"refresh","token":"` + later + `","id":1}`)
	mallory.expect(`{"type":"error","id":1,"code":"bad_token","message":"token is for another user"}`)
	stale := hsToken(t, testSecret, "mallory", time.Now().Add(-time.Minute), time.Time{})
	mallory.send(`{"type":"refresh","token":"` + stale + `","id":2}`)
	mallory.expect(`{"type":"error","id":2,"code":"bad_token","message":"token expired"}`)
	mallory.send(`{"type":"refresh","token":"abc","id":3}`)
	mallory.expect(`{"type":"error","id":3,"code":"bad_token","message":"invalid token"}`)
	mallory.send(`{"type":"refresh","id":4}`)
	mallory.expect(`{"type":"error","id":4,"code":"bad_request","message":"refresh needs \"token\", a JWT"}`)

	if code := witness.expectClose(); code != int(CloseTokenExpired) {
		t.Fatalf("witness closed with %d, want 4003", code)
	}
	if code := mallory.expectClose(); code != int(CloseTokenExpired) {
		t.Fatalf("bad refresh: closed with %d, want 4003 at the old exp", code)
	}
	// Past the old exp (the witness is gone) alice is still served.
	alice.send(`{"type":"ping","id":"p"}`)
	alice.expect(`{"type":"pong","id":"p"}`)
	for result, want := range map[string]float64{"ok": 1, "wrong_user": 1, "invalid": 2} {
		if got := ts.scrape("wsedge_token_refreshes_total", "result="+result); got != want {
			t.Errorf("refreshes (%s) = %v, want %v", result, got, want)
		}
	}
	if got := ts.scrape("wsedge_token_expiries_total", ""); got != 2 {
		t.Errorf("token expiries %v, want 2", got)
	}
}

// A refresh may also shorten the connection's life: the new exp is the one.
func TestTokenRefreshEarlier(t *testing.T) {
	ts := startTokens(t, Config{})
	c := ts.dialWith("token="+hsToken(t, testSecret, "alice", time.Now().Add(time.Hour), time.Time{}), nil)
	ts.waitUser("alice", c)
	c.send(`{"type":"refresh","token":"` + hsToken(t, testSecret, "alice", soon(), time.Time{}) + `","id":1}`)
	c.expect(`{"type":"ack","id":1}`)
	if code := c.expectClose(); code != int(CloseTokenExpired) {
		t.Fatalf("close code %d, want 4003", code)
	}
}

func TestTokenAudienceIssuerExp(t *testing.T) {
	ts := startTokens(t, Config{JWTAudience: "chat", JWTIssuer: "https://auth.example.com"})
	hour := jwt.NewNumericDate(time.Now().Add(time.Hour))
	good := jwt.RegisteredClaims{Subject: "alice", ExpiresAt: hour, Audience: jwt.ClaimStrings{"other", "chat"}, Issuer: "https://auth.example.com"}
	with := func(mod func(*jwt.RegisteredClaims)) string {
		c := good
		mod(&c)
		return "token=" + signHS(t, c)
	}
	for _, tc := range []struct {
		name  string
		query string
		want  int
	}{
		{"good", with(func(*jwt.RegisteredClaims) {}), http.StatusSwitchingProtocols},
		{"wrong audience", with(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"admin"} }), http.StatusUnauthorized},
		{"no audience", with(func(c *jwt.RegisteredClaims) { c.Audience = nil }), http.StatusUnauthorized},
		{"wrong issuer", with(func(c *jwt.RegisteredClaims) { c.Issuer = "https://evil.example.com" }), http.StatusUnauthorized},
		{"no issuer", with(func(c *jwt.RegisteredClaims) { c.Issuer = "" }), http.StatusUnauthorized},
		{"no exp", with(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }), http.StatusUnauthorized},
	} {
		if got := ts.dialStatus(tc.query, nil); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	for reason, want := range map[string]float64{"bad_audience": 2, "bad_issuer": 2, "missing_exp": 1} {
		if got := ts.scrape("wsedge_auth_failures_total", "reason="+reason); got != want {
			t.Errorf("auth failures (%s) = %v, want %v", reason, got, want)
		}
	}
	if _, err := New(Config{JWTAudience: "chat"}); err == nil {
		t.Error("New accepted an audience without a key")
	}
}

// With JWTAllowNoExp a token without exp connects and is never closed for
// expiry; a refresh with an exp then sets one.
func TestTokenAllowNoExp(t *testing.T) {
	ts := startTokens(t, Config{JWTAllowNoExp: true})
	c := ts.dialWith("token="+hsToken(t, testSecret, "alice", time.Time{}, time.Time{}), nil)
	ts.waitUser("alice", c)
	if n := ts.app.tokens.wheel.Len(); n != 0 {
		t.Fatalf("%d expiry entries for a token without exp", n)
	}
	c.send(`{"type":"refresh","token":"` + hsToken(t, testSecret, "alice", soon(), time.Time{}) + `","id":1}`)
	c.expect(`{"type":"ack","id":1}`)
	if code := c.expectClose(); code != int(CloseTokenExpired) {
		t.Fatalf("close code %d, want 4003", code)
	}
}

// In development mode there is nothing to refresh, and no expiry state.
func TestRefreshDevelopmentMode(t *testing.T) {
	ts := start(t, Config{}, nil)
	c := ts.dial("alice")
	c.send(`{"type":"refresh","token":"x","id":1}`)
	c.expect(`{"type":"error","id":1,"code":"bad_token","message":"no token key configured: nothing to refresh"}`)
	if u := ts.app.users.get("alice"); u.tok != nil {
		t.Error("a development-mode user carries token state")
	}
}

// With a JWT key the client rate is on by default (DefaultClientRate,
// burst DefaultClientBurst): a client sending as fast as it can is refused
// and then closed, instead of driving unbounded fan-out.
func TestTokenModeRateLimitDefault(t *testing.T) {
	const n = 1000
	flood := func(ts *testServer) (handled int, code int) {
		c := ts.dialWith("token="+hsToken(t, testSecret, "alice", time.Now().Add(time.Hour), time.Time{}), nil)
		ts.waitUser("alice", c)
		go func() {
			var b strings.Builder
			for i := range n {
				b.Reset()
				fmt.Fprintf(&b, `{"type":"ping","id":%d}`, i)
				if c.WriteMessage(websocket.TextMessage, []byte(b.String())) != nil {
					return
				}
			}
		}()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, p, err := c.ReadMessage()
			if err != nil {
				if ce, ok := err.(*websocket.CloseError); ok {
					return handled, ce.Code
				}
				t.Fatalf("read: %v", err)
			}
			if strings.HasPrefix(string(p), `{"type":"pong"`) {
				handled++
				if handled == n {
					return handled, 0
				}
			}
		}
	}
	on := startTokens(t, Config{})
	handled, code := flood(on)
	if code != websocket.ClosePolicyViolation || handled >= n/2 {
		t.Errorf("default rate: %d of %d handled, close %d; want about %d handled, then close 1008", handled, n, code, DefaultClientBurst)
	}
	if got := on.scrape("wsedge_drops_total", "reason=rate_limited"); got < 1 {
		t.Errorf("rate-limited drops %v", got)
	}
	off := startTokens(t, Config{ClientRate: NoClientRate})
	if handled, code := flood(off); handled != n {
		t.Errorf("NoClientRate: %d of %d handled, close %d", handled, n, code)
	}
}
