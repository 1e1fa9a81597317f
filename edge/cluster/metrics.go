package cluster

import "github.com/prometheus/client_golang/prometheus"

// busMetrics are the cluster bus's series, on the server's registry.
type busMetrics struct {
	messages      *prometheus.CounterVec // by direction: in, out
	publishErrors prometheus.Counter
	errors        *prometheus.CounterVec // by kind
	disconnects   prometheus.Counter
	reconnects    prometheus.Counter
	remote        *prometheus.CounterVec // by kind: user, room, broadcast
	lookups       *prometheus.CounterVec // by result
	rejected      *prometheus.CounterVec // by reason: see validate.go
	queueDrops    *prometheus.CounterVec // by limit: bytes, count
}

func newBusMetrics(b *Bus, reg prometheus.Registerer) (*busMetrics, error) {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "wsedge", Name: name, Help: help}
	}
	m := &busMetrics{
		messages:      prometheus.NewCounterVec(opts("bus_messages_total", "NATS messages this node published (out) and received (in)."), []string{"direction"}),
		publishErrors: prometheus.NewCounter(opts("bus_publish_errors_total", "NATS publishes that failed (connection closed, reconnect buffer full, ...).")),
		errors:        prometheus.NewCounterVec(opts("bus_errors_total", "Other cluster bus errors, by kind (connect, subscribe, slow_consumer, bad_message, late_reply, too_many_pending, async, panic)."), []string{"kind"}),
		disconnects:   prometheus.NewCounter(opts("bus_disconnects_total", "Times the NATS connection was lost.")),
		reconnects:    prometheus.NewCounter(opts("bus_reconnects_total", "Times the NATS connection was re-established.")),
		remote:        prometheus.NewCounterVec(opts("bus_remote_deliveries_total", "Messages written to this node's clients on behalf of another node, by kind (user, room, broadcast)."), []string{"kind"}),
		lookups:       prometheus.NewCounterVec(opts("bus_lookups_total", "Requests for a user held by another node (sends, pushes, presence, kicks), by result (found, not_connected, timeout, unavailable)."), []string{"result"}),
		rejected:      prometheus.NewCounterVec(opts("bus_rejected_total", "Bus messages dropped because no node could have sent them, by reason (malformed, wrong_subject, name_mismatch, bad_frame, too_large, bad_utf8)."), []string{"reason"}),
		queueDrops:    prometheus.NewCounterVec(opts("bus_queue_drops_total", "Bus messages dropped because the dispatcher queues were full, by limit (bytes: -cluster-queue-bytes, count)."), []string{"limit"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: name, Help: help}, f)
	}
	cs := []prometheus.Collector{
		m.messages, m.publishErrors, m.errors, m.disconnects, m.reconnects, m.remote, m.lookups, m.rejected, m.queueDrops,
		gauge("bus_queue_bytes", "Bytes of bus messages waiting for or being handled by the dispatchers (bounded by -cluster-queue-bytes).", func() float64 {
			return float64(b.queued.Load())
		}),
		gauge("bus_connected", "1 while the NATS connection is up, 0 while the node is degraded to local delivery.", func() float64 {
			if b.nc != nil && b.connected() {
				return 1
			}
			return 0
		}),
		gauge("cluster_nodes", "Live nodes this node knows of, itself included.", func() float64 { return float64(b.peers() + 1) }),
		gauge("bus_subscriptions", "Per-user and per-room NATS subscriptions this node holds.", func() float64 {
			return float64(b.users.Len() + b.rooms.Len())
		}),
		gauge("bus_pending_requests", "Requests waiting for another node's answer.", func() float64 {
			b.pmu.Lock()
			defer b.pmu.Unlock()
			return float64(len(b.pending))
		}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"in", "out"} {
		m.messages.WithLabelValues(d)
	}
	for _, k := range []string{kindUser, kindRoom, kindBroadcast} {
		m.remote.WithLabelValues(k)
	}
	for _, r := range []string{"found", "not_connected", "timeout", "unavailable"} {
		m.lookups.WithLabelValues(r)
	}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	for _, l := range []string{"bytes", "count"} {
		m.queueDrops.WithLabelValues(l)
	}
	return m, nil
}
