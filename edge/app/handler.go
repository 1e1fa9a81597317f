package app

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
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
	id, exp, err := a.identify(req)
	if err != nil {
		return err
	}
	u := &user{id: id, conn: c, connectedAt: time.Now().UnixNano()}
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
// configured, else the user query parameter; and the token's exp in unix
// nanoseconds (0 without one).
func (a *App) identify(req *frame.Request) (string, int64, error) {
	if a.verify == nil {
		id := req.Query("user")
		if id == "" {
			a.m.authFailure("missing")
			return "", 0, frame.NewHTTPError(http.StatusUnauthorized, "missing user: connect to /ws?user=<id>")
		}
		if !validName(id) {
			a.m.authFailure("bad_user_id")
			return "", 0, frame.NewHTTPError(http.StatusBadRequest, "user id must be 1-128 printable ASCII characters")
		}
		return id, 0, nil
	}
	tok := req.Query("token")
	if tok == "" {
		tok = bearer(req.Authorization)
	}
	if tok == "" {
		return "", 0, a.tokenUnauthorized("missing", "missing token: use ?token= or Authorization: Bearer")
	}
	claims, reason, msg := a.verify.checkToken(tok)
	if reason != "" {
		return "", 0, a.tokenUnauthorized(reason, msg)
	}
	if claims.Subject == "" {
		return "", 0, a.tokenUnauthorized("missing", "token has no sub claim")
	}
	if !validName(claims.Subject) {
		a.m.authFailure("bad_user_id")
		return "", 0, frame.NewHTTPError(http.StatusBadRequest, "user id (sub) must be 1-128 printable ASCII characters")
	}
	return claims.Subject, unixNanos(claims.ExpiresAt), nil
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

// OnOpen registers the user; an older connection of the same user is
// detached and closed with 4000.
func (a *App) OnOpen(c *edge.Conn) {
	u := c.Value().(*user)
	a.armExpiry(c, u)
	if old := a.users.put(u); old != nil {
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

// OnMessage handles one client message on the connection's worker.
func (a *App) OnMessage(c *edge.Conn, op ws.OpCode, p []byte) {
	u := c.Value().(*user)
	if op != ws.OpText {
		a.m.clientMessage("binary")
		c.Close(ws.StatusUnsupportedData, "binary messages are not supported")
		return
	}
	if u.limiter != nil && !a.allow(u, p) {
		return
	}
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
		var err error
		if a.chist != nil {
			since, ok := parseSince(msg.since)
			if !ok {
				a.replyError(u, msg.id, codeBadRequest, `"since" must be {"offset":<integer >= 0>,"epoch":<string>}`)
				return
			}
			a.chist.join(u, msg.room, since, msg.id) // acks itself, maybe later
			return
		}
		if a.hist == nil {
			if err = a.join(u, msg.room); err == nil {
				a.ack(u, msg.id)
			}
		} else {
			since, ok := parseSince(msg.since)
			if !ok {
				a.replyError(u, msg.id, codeBadRequest, `"since" must be {"offset":<integer >= 0>,"epoch":<string>}`)
				return
			}
			err = a.joinRecover(u, msg.room, since, msg.id) // acks itself
		}
		switch err {
		case errTooManyRooms:
			a.m.joinRefused("max_rooms_per_conn")
			a.replyError(u, msg.id, codeTooManyRooms, "at most "+strconv.Itoa(a.cfg.MaxRoomsPerConn)+" rooms per connection")
		case errNodeRooms:
			a.m.joinRefused("max_rooms")
			a.replyError(u, msg.id, codeTooManyRooms, "this server holds its maximum of "+strconv.Itoa(a.cfg.MaxRooms)+" rooms: join an existing room or try again later")
		}
		// errDetached: the connection is being closed; say nothing.
	case typeLeave:
		a.leave(u, msg.room)
		a.ack(u, msg.id)
	case typeRefresh:
		a.refresh(u, &msg)
	case typePublish:
		if !u.isMember(msg.room) {
			a.replyError(u, msg.id, codeNotMember, "join the room before publishing to it")
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

// allow applies the client rate limit: the first message over it gets
// rate_limited, the next one over it closes the connection with 1008.
func (a *App) allow(u *user, p []byte) bool {
	if u.limiter.Allow() {
		u.overLimit = false
		return true
	}
	a.m.dropped("rate_limited", 1)
	if u.overLimit {
		a.m.clientMessage("rate_limited")
		u.conn.Close(ws.StatusPolicyViolation, "rate limit exceeded")
		return false
	}
	u.overLimit = true
	a.m.clientMessage("rate_limited")
	m, perr := parseClientMessage(p)
	id := m.id
	if perr != nil {
		id = perr.id
	}
	a.replyError(u, id, codeRateLimited, "too many messages: slow down or be disconnected")
	return false
}

// send delivers a direct message to one user.
func (a *App) send(from *user, msg *clientMessage) {
	payload := appendMessage(nil, from.id, "", msg.data)
	to := a.users.get(msg.to)
	if to != nil {
		a.sent(from, msg.id, msg.to, delivery(a.write(to, payload, kindUser)), nil)
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

// write sends one message to one user and counts the outcome.
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
