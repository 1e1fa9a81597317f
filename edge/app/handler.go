package app

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/edge/cluster"
	"github.com/wsedge/wsedge/frame"
)

// Close codes the application sends.
const (
	CloseReplaced ws.StatusCode = 4000 // a newer connection for the same user
	CloseKicked   ws.StatusCode = 4001 // DELETE /v1/users/{id}
	// CloseTokenExpired: the token's exp passed without a refresh (token.go).
	CloseTokenExpired ws.StatusCode = 4003
)

var _ edge.Handler = (*App)(nil)

// Accept admits a client: origin first (403), then identity (401 when
// missing or invalid, 400 when not a valid user id).
func (a *App) Accept(c *edge.Conn, req *frame.Request) error {
	if err := a.checkOrigin(req.Origin); err != nil {
		return err
	}
	id, exp, g, err := a.identify(req)
	if err != nil {
		return err
	}
	u := &user{id: id, conn: c, connectedAt: time.Now().UnixNano()}
	if g != nil {
		u.ext = &userExt{grants: g}
	}
	if a.verify != nil {
		u.tok = &tokenState{}
		u.tok.exp.Store(exp)
	}
	if a.cfg.ClientRate > 0 {
		u.limiter = rate.NewLimiter(rate.Limit(a.cfg.ClientRate), a.cfg.ClientBurst)
	}
	c.SetValue(u)
	return nil
}

// identify returns the user id of req: the token's sub claim with a key
// configured, else the user query parameter; the token's exp in unix
// nanoseconds (0 without one); and, under room policy claims, its room
// patterns (nil without any).
func (a *App) identify(req *frame.Request) (string, int64, *grants, error) {
	id, exp, claims, err := a.identifyToken(req)
	if err != nil || claims == nil {
		return id, exp, nil, err
	}
	g, why := newGrants(claims)
	if why != "" {
		return "", 0, nil, a.tokenUnauthorized("invalid", why)
	}
	return id, exp, g, nil
}

func (a *App) identifyToken(req *frame.Request) (string, int64, *connClaims, error) {
	if a.verify == nil {
		id := req.Query("user")
		if id == "" {
			a.m.authFailure("missing")
			return "", 0, nil, frame.NewHTTPError(http.StatusUnauthorized, "missing user: connect to /ws?user=<id>")
		}
		if !validName(id) {
			a.m.authFailure("bad_user_id")
			return "", 0, nil, frame.NewHTTPError(http.StatusBadRequest, "user id must be 1-128 printable ASCII characters")
		}
		return id, 0, nil, nil
	}
	tok := req.Query("token")
	if tok == "" {
		tok = bearer(req.Authorization)
	}
	if tok == "" {
		return "", 0, nil, a.tokenUnauthorized("missing", "missing token: use ?token= or Authorization: Bearer")
	}
	// rooms and publish are only read under policy claims: elsewhere a
	// token's other claims, whatever their shape, are not ours to refuse.
	var claims connClaims
	into := jwt.Claims(&claims.RegisteredClaims)
	if a.cfg.RoomPolicy == PolicyClaims {
		into = &claims
	}
	reason, msg := a.verify.check(tok, into, &claims.RegisteredClaims)
	if reason != "" {
		return "", 0, nil, a.tokenUnauthorized(reason, msg)
	}
	if claims.Subject == "" {
		return "", 0, nil, a.tokenUnauthorized("missing", "token has no sub claim")
	}
	if !validName(claims.Subject) {
		a.m.authFailure("bad_user_id")
		return "", 0, nil, frame.NewHTTPError(http.StatusBadRequest, "user id (sub) must be 1-128 printable ASCII characters")
	}
	if a.cfg.RoomPolicy != PolicyClaims {
		return claims.Subject, unixNanos(claims.ExpiresAt), nil, nil
	}
	return claims.Subject, unixNanos(claims.ExpiresAt), &claims, nil
}

// bearer returns the credentials of an "Authorization: Bearer <token>"
// value, or "".
func bearer(h string) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
}

// OnOpen registers the user; the user's oldest connection past
// Config.ConnsPerUser is detached and closed with 4000.
func (a *App) OnOpen(c *edge.Conn) {
	u := c.Value().(*user)
	a.armExpiry(c, u)
	for _, old := range a.users.put(u, a.cfg.ConnsPerUser) {
		a.evict(old, "replaced", CloseReplaced)
	}
	// OnClose may run on another goroutine; if it already detached u, it
	// found nothing to unregister, so undo the put here.
	u.mu.Lock()
	closed := u.closed
	u.mu.Unlock()
	if closed {
		a.users.remove(u)
		a.cluster.UserDown(u.id)
	} else {
		a.cluster.UserUp(u.id, u.connectedAt)
	}
}

// OnClose forgets the user, unless a newer connection already took its id.
func (a *App) OnClose(c *edge.Conn, _ ws.StatusCode) {
	u, _ := c.Value().(*user)
	if u == nil {
		return
	}
	a.disarmExpiry(u)
	a.users.remove(u)
	a.detach(u)
	a.cluster.UserDown(u.id)
}

// OnMessage handles one client message on the connection's worker. While
// a join waits on the hook (or recovers, or a publish waits for its ack),
// later messages wait behind it (OnWake).
func (a *App) OnMessage(c *edge.Conn, op ws.OpCode, p []byte) {
	u := c.Value().(*user)
	if op != ws.OpText {
		a.m.clientMessage("binary")
		c.Close(ws.StatusUnsupportedData, "binary messages are not supported")
		return
	}
	w := u.waiting()
	for w != nil && len(w.backlog) >= maxBacklog && w.acked != nil {
		// A full backlog behind a publish: a client sending faster than
		// JetStream acks waits here, at most -cluster-timeout per
		// publish, and TCP holds the rest, as without the backlog.
		if !w.done.Load() {
			c.WillBlock()
		}
		<-w.acked
		a.resume(u)
		if c.Closing() {
			return // a Close held for the ack: the rest is dropped
		}
		w = u.waiting()
	}
	if w != nil && len(w.backlog) >= maxBacklog {
		a.refuseRate(u, p) // over the backlog: counted against the rate
		return
	}
	if u.limiter != nil && !a.allow(u, p) {
		return
	}
	if w != nil {
		w.backlog = append(w.backlog, slices.Clone(p))
		return
	}
	a.handle(u, p)
}

// handle acts on one client message.
func (a *App) handle(u *user, p []byte) {
	msg, perr := parseClientMessage(p)
	if perr != nil {
		a.m.clientMessage("invalid")
		a.reply(u, appendError(nil, perr))
		return
	}
	a.m.clientMessage(msg.typ)
	switch msg.typ {
	case typePing:
		a.reply(u, appendPong(nil, msg.id))
	case typeSend:
		a.send(u, &msg)
	case typeJoin:
		a.authorizeJoin(u, &msg)
	case typeLeave:
		a.leave(u, msg.room)
		a.ack(u, msg.id)
	case typeRefresh:
		a.refresh(u, &msg)
	case typePublish:
		member, mayPublish := a.mayPublish(u, msg.room)
		if !member {
			a.replyError(u, msg.id, codeNotMember, "join the room before publishing to it")
			return
		}
		a.policyDecision(typePublish, mayPublish)
		if !mayPublish {
			a.replyError(u, msg.id, codeForbidden, "you may not publish to room "+msg.room)
			return
		}
		if a.chist != nil {
			a.chist.clientPublish(u, &msg)
			return
		}
		fr, _, ok := a.publishRoom(msg.room, u.id, msg.data)
		if !ok {
			a.refuseTooLarge(u, msg.id) // refused before any member gets it
			return
		}
		if !a.cluster.PublishRoom(msg.room, fr) {
			a.m.dropped("unavailable", 1) // the members on other nodes, however many
		}
		a.ack(u, msg.id)
	}
}

// joinRoom adds the member the room policy allowed and answers the client;
// with history on, since (the join's raw member) asks for what was missed.
func (a *App) joinRoom(u *user, room string, id []byte, pub bool, since json.RawMessage) {
	var err error
	switch {
	case a.chist != nil:
		pos, ok := parseSince(since)
		if !ok {
			a.replyError(u, id, codeBadRequest, `"since" must be {"offset":<integer >= 0>,"epoch":<string>}`)
			return
		}
		a.chist.join(u, room, pub, pos, id) // acks itself, maybe later
		return
	case a.hist == nil:
		if err = a.join(u, room, pub); err == nil {
			a.ack(u, id)
		}
	default:
		pos, ok := parseSince(since)
		if !ok {
			a.replyError(u, id, codeBadRequest, `"since" must be {"offset":<integer >= 0>,"epoch":<string>}`)
			return
		}
		err = a.joinRecover(u, room, pub, pos, id) // acks itself
	}
	a.joinError(u, id, err)
}

// allow applies the client rate limit: the first message over it gets
// rate_limited, the next one over it closes the connection with 1008.
func (a *App) allow(u *user, p []byte) bool {
	if u.limiter.Allow() {
		u.overLimit = false
		return true
	}
	a.refuseRate(u, p)
	return false
}

// refuseRate refuses a message over the client's rate: the first one gets
// rate_limited, the next one in a row closes the connection with 1008.
func (a *App) refuseRate(u *user, p []byte) {
	a.m.dropped("rate_limited", 1)
	if u.overLimit {
		a.m.clientMessage("rate_limited")
		u.conn.Close(ws.StatusPolicyViolation, "rate limit exceeded")
		return
	}
	u.overLimit = true
	a.m.clientMessage("rate_limited")
	m, perr := parseClientMessage(p)
	id := m.id
	if perr != nil {
		id = perr.id
	}
	a.replyError(u, id, codeRateLimited, "too many messages: slow down or be disconnected")
}

// send delivers a direct message to one user: to each of its connections,
// here and, with more than one allowed per user, on the other nodes.
func (a *App) send(from *user, msg *clientMessage) {
	payload := appendMessage(nil, from.id, "", msg.data)
	if a.cfg.ConnsPerUser > 1 {
		a.sendAll(from, msg, payload)
		return
	}
	if to := a.users.conns(msg.to); to != nil {
		d, _ := a.writeUser(to, payload)
		a.sent(from, msg.id, msg.to, d, nil)
		return
	}
	if !a.cluster.Fits(msg.to, len(payload)) {
		a.refuseTooLarge(from, msg.id)
		return
	}
	// The answer may come after the handler returned: keep the id.
	id, name := slices.Clone(msg.id), msg.to
	a.cluster.SendUser(name, payload, func(d cluster.Delivery, err error) {
		if err == nil && d == cluster.NotConnected {
			a.m.dropped("not_connected", 1)
		}
		a.sent(from, id, name, d, err)
	})
}

// sent answers a client's send: an ack, or why it was not delivered.
func (a *App) sent(from *user, id []byte, to string, d cluster.Delivery, err error) {
	switch {
	case err != nil:
		a.m.dropped("unavailable", 1)
		a.replyError(from, id, codeUnavailable, "the cluster did not answer in time; the message may not have been delivered")
	case d == cluster.Delivered:
		a.ack(from, id)
	case d == cluster.Dropped:
		a.replyError(from, id, codeDropped, "user "+to+" is not reading; message dropped")
	default:
		a.replyError(from, id, codeNotConnected, "user "+to+" is not connected")
	}
}

// delivery names a write's outcome.
func delivery(err error) cluster.Delivery {
	switch err {
	case nil:
		return cluster.Delivered
	case edge.ErrDropped:
		return cluster.Dropped
	}
	return cluster.NotConnected
}

// refuseTooLarge answers a client whose send or publish cannot cross the bus.
func (a *App) refuseTooLarge(u *user, id []byte) {
	a.m.dropped(codeTooLarge, 1)
	a.replyError(u, id, codeTooLarge, "message too large for the cluster bus (NATS max payload "+strconv.FormatInt(a.cluster.MaxPayload(), 10)+" bytes)")
}

// writeUser writes payload to each of a user's connections: Delivered when
// one took it, and how many did.
func (a *App) writeUser(conns []*user, payload []byte) (cluster.Delivery, int) {
	d, n := cluster.NotConnected, 0
	for _, u := range conns {
		switch delivery(a.write(u, payload, kindUser)) {
		case cluster.Delivered:
			d, n = cluster.Delivered, n+1
		case cluster.Dropped:
			if d != cluster.Delivered {
				d = cluster.Dropped
			}
		}
	}
	return d, n
}

// deliverAll writes payload to a user's connections here and on the other
// nodes (Config.ConnsPerUser > 1); done gets the outcome and the count.
// False (done not called): too large for the bus and no connection here.
func (a *App) deliverAll(to string, payload []byte, done func(cluster.Delivery, int)) bool {
	conns := a.users.conns(to)
	fits := a.cluster.Fits(to, len(payload))
	if conns == nil && !fits {
		return false
	}
	d, n := a.writeUser(conns, payload)
	if !fits {
		done(d, n) // too large for the bus: the local connections only
		return true
	}
	a.cluster.SendUsers(to, payload, func(rd cluster.Delivery, rn int) {
		if rd == cluster.Delivered || (rd == cluster.Dropped && d == cluster.NotConnected) {
			d = rd
		}
		done(d, n+rn)
	})
	return true
}

// sendAll is a client's send with several connections per user allowed.
func (a *App) sendAll(from *user, msg *clientMessage, payload []byte) {
	id, name := slices.Clone(msg.id), msg.to // the answer may come after the handler returned
	if !a.deliverAll(name, payload, func(d cluster.Delivery, _ int) {
		if d == cluster.NotConnected {
			a.m.dropped("not_connected", 1)
		}
		a.sent(from, id, name, d, nil)
	}) {
		a.refuseTooLarge(from, msg.id)
	}
}

// write sends one message to one connection and counts the outcome.
func (a *App) write(u *user, payload []byte, kind string) error {
	err := u.conn.WriteMessage(ws.OpText, payload)
	a.m.outcome(kind, err, 1)
	return err
}

func (a *App) ack(u *user, id []byte) {
	if id != nil {
		a.reply(u, appendAck(nil, id))
	}
}

func (a *App) replyError(u *user, id []byte, code, message string) {
	a.reply(u, appendError(nil, &protoError{code: code, message: message, id: id}))
}

// reply answers the client itself (acks, errors, pongs).
func (a *App) reply(u *user, payload []byte) {
	_ = u.conn.WriteMessage(ws.OpText, payload)
}
