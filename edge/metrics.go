package edge

import (
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series, on a registry of its own (no
// global state: two servers in one process do not share counters).
type metrics struct {
	reg *prometheus.Registry

	accepted          prometheus.Counter
	handshakeFailures *prometheus.CounterVec
	closes            *prometheus.CounterVec
	pingsSent         prometheus.Counter
	pongTimeouts      prometheus.Counter
	closeTimeouts     prometheus.Counter
	bytesIn           *stripedCounter // the per-message path's four: striped, see counters.go
	bytesOut          *stripedCounter
	messagesIn        *stripedCounter
	messagesOut       *stripedCounter
	slowConsumers     *prometheus.CounterVec
	acceptErrors      *prometheus.CounterVec
	panics            prometheus.Counter
	wheelTimers       prometheus.GaugeFunc
	drainClosed       prometheus.Counter

	refused map[string]prometheus.Counter // by reason, pre-resolved: accept allocates nothing

	closeByCode map[int]prometheus.Counter // every code the server itself uses; the rest count as "other"
	closeOther  prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "wsedge", Name: name, Help: help})
		f(c)
		return c
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: name, Help: help}, labels)
		f(c)
		return c
	}
	// The count Stats reports, read here too: one number, two readers.
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "connections", Help: "Open WebSocket connections (handshake done, not yet closed)."},
		func() float64 { return float64(s.open.Load()) }))
	m.accepted = counter("connections_accepted_total", "TCP connections accepted.")
	m.handshakeFailures = counterVec("handshake_failures_total", "Opening handshakes that failed, by reason.", "reason")
	m.closes = counterVec("closes_total", `WebSocket connections closed, by close code (1006: no close frame; "other": a code the server never sends, chosen by the client).`, "code")
	m.pingsSent = counter("pings_sent_total", "Keepalive pings sent.")
	m.pongTimeouts = counter("pong_timeouts_total", "Connections closed because nothing arrived within the pong timeout after a ping.")
	m.closeTimeouts = counter("close_timeouts_total", "Connections closed because the peer did not finish the close handshake in time.")
	m.bytesIn = newStripedCounter(m.reg, "bytes_received_total", "Bytes read from client sockets.")
	m.bytesOut = newStripedCounter(m.reg, "bytes_sent_total", "Bytes written or queued to client sockets.")
	m.messagesIn = newStripedCounter(m.reg, "messages_received_total", "Text and binary messages received.")
	m.messagesOut = newStripedCounter(m.reg, "messages_sent_total", "Text and binary messages sent or queued.")
	m.slowConsumers = counterVec("slow_consumer_total", "Writes refused by a full outbound queue, by action taken (close, drop).", "action")
	m.acceptErrors = counterVec("accept_errors_total", "accept4 failures, by errno.", "errno")
	m.drainClosed = counter("drain_closed_total", "Connections closed on their -drain-window deadline (reconnect hint, then 1012).")
	m.panics = counter("worker_panics_total", "Panics recovered in a worker task or a timer; each closed one connection.")
	refused := counterVec("connections_refused_total", "Sockets answered 503 at accept and closed, by the bound reached (max_conns, pending_handshakes, pending_per_ip, accept_rate).", "reason")
	m.refused = make(map[string]prometheus.Counter)
	for _, r := range []string{refusedMaxConns, refusedPendingHandshakes, refusedPendingPerIP, refusedAcceptRate} {
		m.refused[r] = refused.WithLabelValues(r)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "pending_handshakes", Help: "Sockets in the upgrade handshake (bounded by -max-pending-handshakes)."},
		func() float64 { return float64(s.pending.len()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "outbound_queued_bytes", Help: "Bytes waiting in per-connection outbound queues (each bounded by -write-queue)."},
		func() float64 { return float64(s.poller.QueuedBytes()) }))
	m.wheelTimers = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "wheel_timers", Help: "Timers resident in the timing wheel."},
		func() float64 { return float64(s.wheel.Len()) })
	f(m.wheelTimers)
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "pool_running", Help: "Worker pool goroutines running a task."},
		func() float64 { return float64(s.pool.Running()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "pool_capacity", Help: "Worker pool size (-workers)."},
		func() float64 { return float64(s.pool.Cap()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsedge", Name: "pool_caller_runs_total", Help: "Tasks run by a shard or timer because the pool was full."},
		func() float64 { return float64(s.callerRuns.Load()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsedge", Name: "poll_rounds_in_place_total", Help: "Quiet shard rounds (one batch) served by the shard itself instead of a worker (-poll-in-place)."},
		func() float64 { served, _ := s.poller.InPlace(); return float64(served) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsedge", Name: "poll_moved_off_total", Help: "Rounds served in place that ran past -poll-in-place, or whose task said it would wait (a publish waiting for JetStream): the shard's polling moved to a new goroutine."},
		func() float64 { _, moved := s.poller.InPlace(); return float64(moved) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "tcp_connections", Help: "TCP connections registered with the poller (handshaking, open or closing)."},
		func() float64 { return float64(s.poller.Open()) }))
	m.closeByCode = make(map[int]prometheus.Counter)
	// The codes the server and the application send, plus 1005 (a close
	// frame without a code). The client picks any other code, so it must not
	// pick a label: that would be up to ~4,000 series of its choosing.
	for _, code := range []int{1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012, 4000, 4001, 4003} {
		m.closeByCode[code] = m.closes.WithLabelValues(strconv.Itoa(code))
	}
	m.closeOther = m.closes.WithLabelValues("other")
	// Series that exist from the start, so a scrape shows them at zero
	// (closes_total above, connections_refused_total where it is made).
	for _, r := range handshakeReasons {
		m.handshakeFailures.WithLabelValues(r)
	}
	for _, r := range []string{"timeout", "peer_closed", "register"} {
		m.handshakeFailures.WithLabelValues(r)
	}
	for _, a := range []string{"close", "drop"} {
		m.slowConsumers.WithLabelValues(a)
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		m.acceptErrors.WithLabelValues(e.Error()) // the usual ones; others appear when they happen
	}
	return m
}

func (m *metrics) closed(code int) {
	if c, ok := m.closeByCode[code]; ok {
		c.Inc()
		return
	}
	m.closeOther.Inc()
}
