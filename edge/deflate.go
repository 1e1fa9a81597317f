package edge

import (
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsedge/wsedge/frame"
)

// permessage-deflate on the server: negotiated at the upgrade (handshake),
// one byte per connection (Conn.comp), and the frame package's shared
// Deflate for everything else. With no context takeover a connection holds
// no compressor between messages, so an idle one costs nothing more.

// Fanout is one data message on its way to many connections, written with
// WriteFanout. Each form a connection needs (plain, or compressed for its
// window) is encoded once, by the first writer that needs it, and every
// connection of that form gets the same bytes; it is safe for the
// concurrent batches of one fan-out. The payload must not change while the
// Fanout is in use.
type Fanout struct {
	s     *Server
	n     int                       // payload length, for the bytes metric
	forms [9]atomic.Pointer[[]byte] // by formIndex: the fast path is one load
	mu    sync.Mutex                // guards f: frame.Fanout encodes a form on first use
	f     frame.Fanout
}

// NewFanout prepares payload (op OpText or OpBinary) for many connections.
func (s *Server) NewFanout(op ws.OpCode, payload []byte) *Fanout {
	return &Fanout{s: s, n: len(payload), f: s.deflate.Fanout(op, payload)}
}

// FanoutOfFrame prepares a complete plain server data frame, such as one
// relayed by the cluster bus, for many connections: the plain form is fr
// itself, and the compressed forms are made from its payload. fr must be
// one unmasked, final text or binary frame without RSV bits (the bus checks
// that) and stay unchanged while the Fanout is in use.
func (s *Server) FanoutOfFrame(fr []byte) *Fanout {
	n := payloadLen(fr)
	f := s.NewFanout(ws.OpCode(fr[0]&0x0f), fr[len(fr)-n:])
	f.forms[0].Store(&fr)
	return f
}

// Plain is the uncompressed frame, as frame.AppendFrame encodes it: what the
// cluster bus carries and what WritePrepared takes.
func (f *Fanout) Plain() []byte { return f.frame(frame.CompressionNone) }

// frame returns the frame for a connection whose outbound form is c.
func (f *Fanout) frame(c frame.Compression) []byte {
	i := formIndex(c)
	if p := f.forms[i].Load(); p != nil {
		return *p
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.forms[i].Load(); p != nil {
		return *p
	}
	fr := f.f.Frame(c)
	if compressed(fr) {
		f.s.deflateMetrics.fanoutEncodes.Inc()
	}
	f.forms[i].Store(&fr)
	return fr
}

// formIndex maps a Compression (none, or a window of 8..15 bits) to 0..8.
func formIndex(c frame.Compression) int {
	if c < 8 || c > 15 {
		return 0
	}
	return int(c) - 7
}

// WriteFanout sends f's frame in this connection's form: compressed when it
// negotiated permessage-deflate and the payload reaches the minimum size.
// Like WritePrepared, a full socket queues a reference to the shared bytes.
func (c *Conn) WriteFanout(f *Fanout) error {
	r := c.route.Load()
	if r == nil {
		return ErrClosed
	}
	fr := f.frame(c.comp) // comp was set before route was published
	err := c.send(r.srv, fr, true, true)
	if err == nil {
		r.srv.deflateMetrics.countOut(f.n, fr)
	}
	return err
}

// decoderConfig is the decoder configuration of a connection with outbound
// form comp: inflating with the server's Deflate when it negotiated it.
func (s *Server) decoderConfig(comp frame.Compression) frame.DecoderConfig {
	cfg := s.decCfg
	if comp != frame.CompressionNone {
		cfg.Deflate = s.deflate
	}
	return cfg
}

// negotiate answers the request's permessage-deflate offers into dst: the
// 101 with the extension accepted, and the connection's outbound form.
func (s *Server) negotiate(dst []byte, req *frame.Request) ([]byte, frame.Compression) {
	m := &s.deflateMetrics
	if req.Extensions == "" {
		return frame.AppendAcceptResponse(dst, req, ""), frame.CompressionNone
	}
	if s.deflate == nil {
		m.offers[offerDisabled].Inc()
		return frame.AppendAcceptResponse(dst, req, ""), frame.CompressionNone
	}
	p, ok := req.NegotiateDeflate()
	if !ok {
		m.offers[offerDeclined].Inc()
		return frame.AppendAcceptResponse(dst, req, ""), frame.CompressionNone
	}
	m.offers[offerAccepted].Inc()
	return frame.AppendAcceptResponseDeflate(dst, req, "", p), p.Compression()
}

// compressed reports whether a server frame has RSV1 (permessage-deflate) set.
func compressed(fr []byte) bool { return len(fr) > 0 && fr[0]&0x40 != 0 }

// payloadLen is the payload length of a complete unmasked server frame.
func payloadLen(fr []byte) int {
	switch fr[1] & 0x7f {
	case 126:
		return len(fr) - 4
	case 127:
		return len(fr) - 10
	}
	return len(fr) - 2
}

// Results of a permessage-deflate offer, the label of wsedge_deflate_offers_total.
const (
	offerAccepted = iota
	offerDeclined
	offerDisabled
)

// deflateMetrics are the permessage-deflate series.
type deflateMetrics struct {
	open                atomic.Int64 // open connections that negotiated it
	outPayload, outWire prometheus.Counter
	inPayload, inWire   prometheus.Counter
	fanoutEncodes       prometheus.Counter
	offers              [3]prometheus.Counter
	rejected            map[string]prometheus.Counter // by frame.Decoder.DeflateRejection
}

func (m *deflateMetrics) register(reg *prometheus.Registry) {
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: "deflate_bytes_total",
		Help: `Payload bytes of messages sent or received compressed (permessage-deflate), by direction (out, in) and stage: "payload" uncompressed, "wire" compressed.`},
		[]string{"direction", "stage"})
	m.outPayload, m.outWire = bytes.WithLabelValues("out", "payload"), bytes.WithLabelValues("out", "wire")
	m.inPayload, m.inWire = bytes.WithLabelValues("in", "payload"), bytes.WithLabelValues("in", "wire")
	m.fanoutEncodes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "wsedge", Name: "deflate_fanout_encodes_total",
		Help: "Fan-out messages compressed: once per message and window, however many connections get it."})
	offers := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: "deflate_offers_total",
		Help: "Upgrades offering permessage-deflate, by result: accepted, declined (no offer it can honour), disabled (-compression=false)."},
		[]string{"result"})
	m.offers = [3]prometheus.Counter{offers.WithLabelValues("accepted"), offers.WithLabelValues("declined"), offers.WithLabelValues("disabled")}
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: "deflate_rejected_total",
		Help: "Connections failed by a permessage-deflate violation, by reason: rsv1 (1002), corrupt (1002), too_big (1009 after inflation), invalid_utf8 (1007)."},
		[]string{"reason"})
	m.rejected = map[string]prometheus.Counter{}
	for _, r := range []string{"rsv1", "corrupt", "too_big", "invalid_utf8"} {
		m.rejected[r] = rejected.WithLabelValues(r)
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "deflate_connections",
		Help: "Open connections that negotiated permessage-deflate."}, func() float64 { return float64(m.open.Load()) })
	reg.MustRegister(bytes, m.fanoutEncodes, offers, rejected, gauge)
}

// countOut counts a data frame sent for a payload of n bytes, if compressed.
func (m *deflateMetrics) countOut(n int, fr []byte) {
	if compressed(fr) {
		m.outPayload.Add(float64(n))
		m.outWire.Add(float64(payloadLen(fr)))
	}
}

// countIn counts a compressed message received.
func (m *deflateMetrics) countIn(wire, payload int) {
	m.inWire.Add(float64(wire))
	m.inPayload.Add(float64(payload))
}

// countRejection counts a decoder failure that broke a permessage-deflate rule.
func (m *deflateMetrics) countRejection(d *frame.Decoder, err error) {
	if c, ok := m.rejected[d.DeflateRejection(err)]; ok {
		c.Inc()
	}
}
