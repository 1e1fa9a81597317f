package app

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsedge/wsedge/edge"
)

// metrics are the application's series on the server's registry.
type metrics struct {
	clientMessages *prometheus.CounterVec // by type
	deliveries     *prometheus.CounterVec // by kind
	drops          *prometheus.CounterVec // by reason
	adminRequests  *prometheus.CounterVec // by route, status
	authFailures   *prometheus.CounterVec // by reason
	evictions      *prometheus.CounterVec // by reason
	joinRefusals   *prometheus.CounterVec // by reason
}

func newMetrics(a *App, reg prometheus.Registerer) (*metrics, error) {
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: name, Help: help}, labels)
	}
	m := &metrics{
		clientMessages: vec("client_messages_total", "Client messages on the application path, by type (send, join, leave, publish, ping, invalid, binary, rate_limited).", "type"),
		deliveries:     vec("deliveries_total", "Application messages accepted for a connection (sent or queued), by kind (user, room, broadcast).", "kind"),
		drops:          vec("drops_total", "Application messages not delivered, by reason (queue_full, closed, not_connected, rate_limited, too_large: over what the cluster bus carries, unavailable: a remote delivery the bus could not make).", "reason"),
		adminRequests:  vec("admin_requests_total", "Admin API requests, by route and HTTP status.", "route", "status"),
		authFailures:   vec("auth_failures_total", "Connections refused at admission, by reason (missing, invalid, expired, not_yet_valid, bad_signature, bad_audience, bad_issuer, missing_exp, bad_user_id, origin).", "reason"),
		evictions:      vec("user_evictions_total", "Connections closed by the application, by reason (replaced, kicked).", "reason"),
		joinRefusals:   vec("join_refusals_total", "Joins refused with too_many_rooms, by reason (max_rooms_per_conn: the connection's limit; max_rooms: the node's room limit).", "reason"),
	}
	cs := []prometheus.Collector{
		m.clientMessages, m.deliveries, m.drops, m.adminRequests, m.authFailures, m.evictions, m.joinRefusals,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "users", Help: "Users connected on the application path."},
			func() float64 { return float64(a.users.count.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "rooms", Help: "Rooms with at least one member."},
			func() float64 { return float64(a.rooms.count.Load()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series that exist from the start, so a scrape shows them at zero.
	for _, t := range []string{typeSend, typeJoin, typeLeave, typePublish, typePing, "invalid"} {
		m.clientMessages.WithLabelValues(t)
	}
	for _, k := range []string{kindUser, kindRoom, kindBroadcast} {
		m.deliveries.WithLabelValues(k)
	}
	for _, r := range []string{"queue_full", "closed", "not_connected", "rate_limited", "too_large", "unavailable"} {
		m.drops.WithLabelValues(r)
	}
	for _, r := range []string{"max_rooms_per_conn", "max_rooms"} {
		m.joinRefusals.WithLabelValues(r)
	}
	for _, r := range []string{"missing", "invalid", "expired", "not_yet_valid", "bad_signature", "bad_audience",
		"bad_issuer", "missing_exp", "bad_user_id", "origin"} {
		m.authFailures.WithLabelValues(r)
	}
	for _, r := range []string{"replaced", "kicked"} {
		m.evictions.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) clientMessage(typ string)  { m.clientMessages.WithLabelValues(typ).Inc() }
func (m *metrics) authFailure(reason string) { m.authFailures.WithLabelValues(reason).Inc() }
func (m *metrics) evicted(reason string)     { m.evictions.WithLabelValues(reason).Inc() }
func (m *metrics) joinRefused(reason string) { m.joinRefusals.WithLabelValues(reason).Inc() }

func (m *metrics) delivered(kind string, n int) {
	if n > 0 {
		m.deliveries.WithLabelValues(kind).Add(float64(n))
	}
}

func (m *metrics) dropped(reason string, n int) {
	if n > 0 {
		m.drops.WithLabelValues(reason).Add(float64(n))
	}
}

// outcome counts one write's result.
func (m *metrics) outcome(kind string, err error, n int) {
	switch {
	case err == nil:
		m.delivered(kind, n)
	case errors.Is(err, edge.ErrDropped):
		m.dropped("queue_full", n)
	default:
		m.dropped("closed", n)
	}
}
