package app

import (
	"encoding/json"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsedge/wsedge/edge"
)

// maxBacklog bounds the messages a connection may send while a join of its
// waits on the hook or recovers; more count against its rate
// (rate_limited, then 1008). Behind a publish waiting for its ack, the
// worker waits for the ack instead (OnMessage).
const maxBacklog = 16

var _ edge.Waker = (*App)(nil)

// policyMetrics are the room policy's series.
type policyMetrics struct {
	decisions *prometheus.CounterVec // by policy, action, decision
}

// startPolicy registers the room policy's metrics and, under PolicyHook,
// starts the hook callers. Mount calls it.
func (a *App) startPolicy(reg prometheus.Registerer) error {
	a.policyM.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: "room_policy_decisions_total",
		Help: "Joins and publishes decided by the room policy, by policy (open, claims, hook), action (join, publish) and decision (allow, forbidden, unavailable)."},
		[]string{"policy", "action", "decision"})
	cs := []prometheus.Collector{a.policyM.decisions}
	for _, act := range []string{typeJoin, typePublish} {
		for _, d := range []string{"allow", "forbidden", "unavailable"} {
			a.policyM.decisions.WithLabelValues(a.cfg.RoomPolicy, act, d)
		}
	}
	if a.cfg.RoomPolicy == PolicyHook {
		h := newHooks(a.cfg, a.cluster.Node())
		h.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "wsedge", Name: "room_hook_duration_seconds",
			Help:    "Join hook calls, from request to answer (timeouts included).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12)})
		h.results = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: "room_hook_requests_total",
			Help: "Join hook questions, by result (allow, deny, cached, timeout, error, bad_answer, queue_full: over -hook-queue)."}, []string{"result"})
		for _, r := range []string{"allow", "deny", "cached", "timeout", "error", "bad_answer", "queue_full"} {
			h.results.WithLabelValues(r)
		}
		cs = append(cs, h.latency, h.results)
		a.hook = h
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	if a.hook != nil {
		a.hook.start(a.cfg.HookConcurrency, a.hookAnswered)
	}
	if a.verify != nil && a.cfg.RoomPolicy == PolicyOpen {
		a.log.Warn("room policy open with a JWT key: any authenticated user may join any room and publish to it (set -room-policy claims or hook)")
	}
	return nil
}

// stopPolicy stops the hook callers; App.Close calls it.
func (a *App) stopPolicy() {
	if a.hook != nil {
		a.hook.close()
	}
}

func (a *App) policyDecision(action string, ok bool) {
	d := "forbidden"
	if ok {
		d = "allow"
	}
	a.policyM.decisions.WithLabelValues(a.cfg.RoomPolicy, action, d).Inc()
}

// authorizeJoin is the room policy's step before a membership is added:
// it decides at once (open, claims, a cached hook answer) or queues the
// hook call and holds the connection's later messages until OnWake.
func (a *App) authorizeJoin(u *user, msg *clientMessage) {
	d, why := allowedPub, ""
	switch a.cfg.RoomPolicy {
	case PolicyClaims:
		d, why = a.authorizeClaims(u, msg.room, msg.token)
	case PolicyHook:
		var ok bool
		if d, ok = a.hook.cache.get(u.id + "\x00" + msg.room); ok {
			a.hook.results.WithLabelValues("cached").Inc()
			break
		}
		w := &hookWait{room: msg.room, id: slices.Clone(msg.id), since: slices.Clone(msg.since)}
		if !a.hook.enqueue(hookCall{u: u, w: w, user: u.id, room: msg.room}) {
			d = unavailable
			break
		}
		u.setWait(w)
		return
	}
	a.decideJoin(u, msg.room, msg.id, msg.since, d, why)
}

// decideJoin carries out the room policy's decision on a join.
func (a *App) decideJoin(u *user, room string, id []byte, since json.RawMessage, d decision, why string) {
	a.policyM.decisions.WithLabelValues(a.cfg.RoomPolicy, typeJoin, d.label()).Inc()
	switch d {
	case denied:
		if why == "" {
			why = "you may not join room " + room
		}
		a.replyError(u, id, codeForbidden, why)
	case unavailable:
		a.replyError(u, id, codeUnavailable, "the join hook did not answer in time; try again")
	default:
		a.joinRoom(u, room, id, d == allowedPub, since)
	}
}

// hookAnswered runs on a hook caller: it hands the answer to the
// connection's owner. A connection gone meanwhile is not woken; its
// OnClose drops the wait with the user.
func (a *App) hookAnswered(c hookCall) {
	c.w.done.Store(true)
	c.u.conn.Wake()
}

// OnWake finishes the join that waited on the hook (or what else the
// connection's later messages waited behind), on the connection's owner.
func (a *App) OnWake(c *edge.Conn) {
	if u, _ := c.Value().(*user); u != nil {
		a.resume(u)
	}
}

// HoldsClose (edge.CloseHolder) holds a Close while the connection's
// publish waits for its ack off the worker, so that the ack goes before
// the close frame (at most -cluster-timeout). Other waits do not hold it.
func (a *App) HoldsClose(c *edge.Conn) bool {
	u, _ := c.Value().(*user)
	if u == nil {
		return false
	}
	w := u.waiting()
	return w != nil && w.acked != nil && !w.done.Load()
}

var _ edge.CloseHolder = (*App)(nil)

// resume finishes u's wait if it is done, then handles the messages that
// waited behind it in order, until one of them waits in turn; owner only.
func (a *App) resume(u *user) {
	w := u.waiting()
	if w == nil || !w.done.Load() {
		return
	}
	u.setWait(nil)
	if u.conn.Closing() {
		return // the messages behind the wait are dropped, as with the connection
	}
	if !w.joined && w.acked == nil {
		a.decideJoin(u, w.room, w.id, w.since, w.answer, "")
	}
	for i, p := range w.backlog {
		if u.conn.Closing() {
			return // a Close (held for a publish's ack) came meanwhile
		}
		if next := u.waiting(); next != nil { // the join or a message before p waits in turn
			next.backlog = append(next.backlog, w.backlog[i:]...)
			return
		}
		a.handle(u, p)
	}
}
