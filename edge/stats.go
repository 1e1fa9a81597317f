package edge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Stats is a point-in-time view of the server for the admin API. Its
// counters are the ones /metrics exports, read as typed fields: renaming a
// metric cannot silently turn a figure into 0.
type Stats struct {
	Connections        int64 // open WebSocket connections (the wsedge_connections gauge)
	TCPConnections     int64 // registered sockets, handshaking and closing included
	Accepted           int64 // TCP connections accepted
	MessagesIn         int64 // text and binary messages received
	MessagesOut        int64 // text and binary messages sent or queued
	BytesIn            int64 // bytes read from client sockets
	BytesOut           int64 // bytes written or queued to client sockets
	MessagesDropped    int64 // writes refused by a full outbound queue under -slow-consumer=drop
	SlowConsumerCloses int64 // connections closed by a full outbound queue under -slow-consumer=close
	PoolRunning        int
	PoolCapacity       int
	Uptime             time.Duration
}

// Stats reports the server's current counts (after Start).
func (s *Server) Stats() Stats {
	m := s.metrics
	return Stats{
		Connections:        s.open.Load(),
		TCPConnections:     s.poller.Open(),
		Accepted:           counterValue(m.accepted),
		MessagesIn:         int64(m.messagesIn.value()),
		MessagesOut:        int64(m.messagesOut.value()),
		BytesIn:            int64(m.bytesIn.value()),
		BytesOut:           int64(m.bytesOut.value()),
		MessagesDropped:    counterValue(m.slowConsumers.WithLabelValues("drop")),
		SlowConsumerCloses: counterValue(m.slowConsumers.WithLabelValues("close")),
		PoolRunning:        s.pool.Running(),
		PoolCapacity:       s.pool.Cap(),
		Uptime:             time.Since(s.epoch),
	}
}

// counterValue reads a counter the server owns; the metric itself is the
// field, so no name is looked up.
func counterValue(c prometheus.Counter) int64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0 // a plain counter's Write does not fail
	}
	return int64(d.GetCounter().GetValue())
}
