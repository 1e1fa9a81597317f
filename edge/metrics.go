package edge

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series, on a registry of its own (no
// global state: two servers in one process do not share counters).
type metrics struct {
	reg *prometheus.Registry

	connections       prometheus.Gauge
	accepted          prometheus.Counter
	handshakeFailures *prometheus.CounterVec
	closes            *prometheus.CounterVec
	pingsSent         prometheus.Counter
	pongTimeouts      prometheus.Counter
	closeTimeouts     prometheus.Counter
	bytesIn           prometheus.Counter
	bytesOut          prometheus.Counter
	messagesIn        prometheus.Counter
	messagesOut       prometheus.Counter
	slowConsumers     *prometheus.CounterVec
	acceptErrors      *prometheus.CounterVec
	panics            prometheus.Counter
	wheelTimers       prometheus.GaugeFunc

	closeByCode map[int]prometheus.Counter // pre-resolved for the codes we see most
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
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "wsedge", Name: name, Help: help})
		f(g)
		return g
	}
	m.connections = gauge("connections", "Open WebSocket connections (handshake done, not yet closed).")
	m.accepted = counter("connections_accepted_total", "TCP connections accepted.")
	m.handshakeFailures = counterVec("handshake_failures_total", "Opening handshakes that failed, by reason.", "reason")
	m.closes = counterVec("closes_total", "WebSocket connections closed, by close code (1006: no close frame).", "code")
	m.pingsSent = counter("pings_sent_total", "Keepalive pings sent.")
	m.pongTimeouts = counter("pong_timeouts_total", "Connections closed because nothing arrived within the pong timeout after a ping.")
	m.closeTimeouts = counter("close_timeouts_total", "Connections closed because the peer did not finish the close handshake in time.")
	m.bytesIn = counter("bytes_received_total", "Bytes read from client sockets.")
	m.bytesOut = counter("bytes_sent_total", "Bytes written or queued to client sockets.")
	m.messagesIn = counter("messages_received_total", "Text and binary messages received.")
	m.messagesOut = counter("messages_sent_total", "Text and binary messages sent or queued.")
	m.slowConsumers = counterVec("slow_consumer_total", "Writes refused by a full outbound queue, by action taken (close, drop).", "action")
	m.acceptErrors = counterVec("accept_errors_total", "accept4 failures, by errno.", "errno")
	m.panics = counter("worker_panics_total", "Panics recovered in a worker; each closed one connection.")
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "outbound_queued_bytes", Help: "Bytes waiting in per-connection outbound queues (each bounded by -write-queue)."},
		func() float64 { return float64(s.poller.QueuedBytes()) }))
	m.wheelTimers = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "wheel_timers", Help: "Timers resident in the timing wheel."},
		func() float64 { return float64(s.wheel.Len()) })
	f(m.wheelTimers)
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "pool_running", Help: "Worker pool goroutines running a task."},
		func() float64 { return float64(s.pool.Running()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "pool_waiting", Help: "Tasks waiting for a worker (always 0: a full pool makes the caller run the task)."},
		func() float64 { return float64(s.pool.Waiting()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "pool_capacity", Help: "Worker pool size (-workers)."},
		func() float64 { return float64(s.pool.Cap()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsedge", Name: "pool_caller_runs_total", Help: "Tasks run by a shard or timer because the pool was full."},
		func() float64 { return float64(s.callerRuns.Load()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "tcp_connections", Help: "TCP connections registered with the poller (handshaking, open or closing)."},
		func() float64 { return float64(s.poller.Open()) }))
	m.closeByCode = make(map[int]prometheus.Counter)
	for _, code := range []int{1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1011, 4000, 4001} {
		m.closeByCode[code] = m.closes.WithLabelValues(strconv.Itoa(code))
	}
	return m
}

func (m *metrics) closed(code int) {
	if c, ok := m.closeByCode[code]; ok {
		c.Inc()
		return
	}
	m.closes.WithLabelValues(strconv.Itoa(code)).Inc()
}
