package app

import (
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/wheel"
)

// tokenState is what a token user carries for expiry: its entry on the
// app's wheel and its token's exp. Only token users have one, so a
// development-mode user pays for neither.
type tokenState struct {
	handle atomic.Uint64 // wheel.Handle; 0 when not scheduled
	exp    atomic.Int64  // unix nanoseconds; 0: the token has no exp
}

// tokens closes connections at their token's expiry. One coarse wheel (one
// goroutine) for the whole app; expiries run on the server's pool.
type tokens struct {
	wheel     *wheel.Wheel // nil in development mode
	expired   prometheus.Counter
	refreshes *prometheus.CounterVec // by result: ok, invalid, wrong_user
}

// startTokens registers the token metrics and, with a key configured,
// starts the expiry wheel. Mount calls it.
func (a *App) startTokens(reg prometheus.Registerer) error {
	t := &a.tokens
	t.expired = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "wsedge", Name: "token_expiries_total",
		Help: "Connections closed with 4003 because their token expired without a refresh."})
	t.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: "token_refreshes_total",
		Help: "Client refresh messages, by result (ok, invalid, wrong_user)."}, []string{"result"})
	for _, c := range []prometheus.Collector{t.expired, t.refreshes} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	for _, r := range []string{"ok", "invalid", "wrong_user"} {
		t.refreshes.WithLabelValues(r)
	}
	if a.verify == nil {
		return nil
	}
	w, err := wheel.New(wheel.Config{Tick: a.cfg.TokenTick, Expire: a.onTokenExpire})
	if err != nil {
		return err
	}
	t.wheel = w
	return nil
}

// stopTokens stops the expiry wheel; App.Close calls it.
func (a *App) stopTokens() {
	if a.tokens.wheel != nil {
		a.tokens.wheel.Close()
	}
}

// checkToken verifies a token with the configured key and rules (alg, aud,
// iss, exp) and returns its claims, or the auth-failure reason and a
// message for the client.
func (v *verifier) checkToken(tok string) (claims jwt.RegisteredClaims, reason, msg string) {
	reason, msg = v.check(tok, &claims, &claims)
	return claims, reason, msg
}

// check verifies tok into claims, whose registered part is reg (the same
// rules for connection, refresh and room tokens), and returns "" or the
// auth-failure reason and a message for the client.
func (v *verifier) check(tok string, into jwt.Claims, claims *jwt.RegisteredClaims) (reason, msg string) {
	_, err := v.parser.ParseWithClaims(tok, into, v.keyfunc)
	if err == nil {
		return "", ""
	}
	reason, msg = "invalid", "invalid token"
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		reason, msg = "bad_signature", "token signature invalid"
	case errors.Is(err, jwt.ErrTokenExpired):
		reason, msg = "expired", "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		reason, msg = "not_yet_valid", "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		reason, msg = "bad_audience", "token audience (aud) not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason, msg = "bad_issuer", "token issuer (iss) not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// The claims were decoded: name the one that is missing.
		switch {
		case claims.ExpiresAt == nil && !v.allowNoExp:
			reason, msg = "missing_exp", "token has no exp claim"
		case len(claims.Audience) == 0 && v.audience:
			reason, msg = "bad_audience", "token has no aud claim"
		default:
			reason, msg = "bad_issuer", "token has no iss claim"
		}
	}
	return reason, msg
}

// unixNanos returns d as unix nanoseconds, 0 for a missing date.
func unixNanos(d *jwt.NumericDate) int64 {
	if d == nil {
		return 0
	}
	return d.UnixNano()
}

// armExpiry schedules u's close at its token's exp (OnOpen).
func (a *App) armExpiry(c *edge.Conn, u *user) {
	if u.tok == nil {
		return
	}
	if exp := u.tok.exp.Load(); exp != 0 {
		u.tok.handle.Store(uint64(a.tokens.wheel.Schedule(time.Until(time.Unix(0, exp)), c.ID())))
	}
}

// disarmExpiry releases u's wheel entry (OnClose).
func (a *App) disarmExpiry(u *user) {
	if u.tok == nil {
		return
	}
	if h := u.tok.handle.Swap(0); h != 0 {
		a.tokens.wheel.Stop(wheel.Handle(h))
	}
}

// onTokenExpire runs on the wheel's goroutine: it hands a copy of the batch
// to the server's pool.
func (a *App) onTokenExpire(batch []wheel.Expired) {
	items := slices.Clone(batch)
	a.srv.Submit(func() { a.expireTokens(items) })
}

// expireTokens closes the connections whose token expired. A refresh only
// moved exp (and Reset the entry), so the stamp decides here: a token
// refreshed after this entry fired is re-armed, not closed.
func (a *App) expireTokens(items []wheel.Expired) {
	now := time.Now().UnixNano()
	for _, e := range items {
		var u *user
		c := a.srv.Lookup(e.Data)
		if c != nil {
			u, _ = c.Value().(*user)
		}
		if u == nil || u.tok == nil || u.tok.handle.Load() != uint64(e.Handle) {
			// Gone, or disarmed (OnClose raced the scheduling): release.
			a.tokens.wheel.Stop(e.Handle)
			continue
		}
		exp := u.tok.exp.Load()
		switch {
		case exp == 0: // refreshed with a token that has no exp
		case now < exp:
			a.tokens.wheel.Reset(e.Handle, time.Duration(exp-now))
		default:
			a.tokens.expired.Inc()
			c.Close(CloseTokenExpired, "token expired")
		}
	}
}

// refresh handles {"type":"refresh","token":...}: a valid token for the
// same user moves the connection's expiry to the new token's exp; anything
// else is bad_token and the old expiry stands.
func (a *App) refresh(u *user, msg *clientMessage) {
	if a.verify == nil || u.tok == nil {
		a.tokens.refreshes.WithLabelValues("invalid").Inc()
		a.replyError(u, msg.id, codeBadToken, "no token key configured: nothing to refresh")
		return
	}
	claims, reason, why := a.verify.checkToken(msg.token)
	if reason != "" {
		a.tokens.refreshes.WithLabelValues("invalid").Inc()
		a.replyError(u, msg.id, codeBadToken, why)
		return
	}
	if claims.Subject != u.id {
		a.tokens.refreshes.WithLabelValues("wrong_user").Inc()
		a.replyError(u, msg.id, codeBadToken, "token is for another user")
		return
	}
	exp := unixNanos(claims.ExpiresAt)
	u.tok.exp.Store(exp)
	h := wheel.Handle(u.tok.handle.Load())
	switch {
	case exp == 0:
		if h != 0 && u.tok.handle.CompareAndSwap(uint64(h), 0) {
			a.tokens.wheel.Stop(h)
		}
	case h != 0:
		a.tokens.wheel.Reset(h, time.Until(time.Unix(0, exp)))
	default:
		a.armExpiry(u.conn, u)
	}
	a.tokens.refreshes.WithLabelValues("ok").Inc()
	a.ack(u, msg.id)
}

// tokenUnauthorized refuses an upgrade for a token failure.
func (a *App) tokenUnauthorized(reason, msg string) error {
	a.m.authFailure(reason)
	return frame.NewHTTPError(http.StatusUnauthorized, msg)
}
