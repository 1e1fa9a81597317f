package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/ants/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/netpoll"
	"github.com/wsedge/wsedge/wheel"
)

// Server is one wsedge node. Create it with New, then Start; Shutdown ends
// it. Two servers can run in one process.
type Server struct {
	cfg    Config
	log    *slog.Logger
	routes map[string]*route
	hsCfg  frame.HandshakeConfig
	decCfg frame.DecoderConfig
	epoch  time.Time

	poller  *netpoll.Poller
	ln      *netpoll.Listener
	pool    *ants.PoolWithFunc
	wheel   *wheel.Wheel
	metrics *metrics

	admin   *http.Server
	adminLn net.Listener
	mux     *http.ServeMux

	decoders sync.Pool // *frame.Decoder, between messages
	frames   sync.Pool // *[]byte, encode buffers
	hsBufs   sync.Pool // *[]byte, upgrade requests that arrive in pieces
	requests sync.Pool // *frame.Request, parsed in place: a handshake leaves no garbage
	partial  sync.Map  // *Conn -> *[]byte: requests not complete yet (rare, and bounded by the handshake timeout)
	pending  *pendingTable
	refusals map[string][]byte // reason -> complete 503 answer, built once
	batches  sync.Pool         // *timerBatch

	readiness  func() error // nil: always ready
	callerRuns atomic.Int64
	open       atomic.Int64 // WebSocket connections past the handshake
	draining   atomic.Bool
	started    atomic.Bool
	stopOnce   sync.Once
	done       chan struct{}

	logSlow, logAccept, logPanic rate.Sometimes

	// afterOpen is a seam for tests: it runs just after the phase turns
	// open, where a Shutdown's Close may land (nil in production).
	afterOpen func(*Conn)
}

// timerBatch carries a copy of one wheel batch to a pool worker.
type timerBatch struct{ items []wheel.Expired }

// New checks cfg and builds a server; nothing is bound until Start.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		routes:   make(map[string]*route),
		hsCfg:    frame.HandshakeConfig{MaxHeaderBytes: cfg.MaxHeaderBytes},
		decCfg:   frame.DecoderConfig{MaxMessage: cfg.MaxMessage},
		done:     make(chan struct{}),
		mux:      http.NewServeMux(),
		pending:  newPendingTable(),
		refusals: map[string][]byte{},
	}
	for _, r := range []string{refusedMaxConns, refusedPendingHandshakes, refusedPendingPerIP} {
		s.refusals[r] = refusal(r)
	}
	for path, h := range cfg.Handlers {
		s.routes[path] = &route{h: h, srv: s}
	}
	if cfg.Echo {
		if _, taken := s.routes["/echo"]; !taken {
			s.routes["/echo"] = &route{h: echoHandler{}, srv: s}
		}
	}
	for _, st := range []*rate.Sometimes{&s.logSlow, &s.logAccept, &s.logPanic} {
		st.Interval = 10 * time.Second
	}
	s.decoders.New = func() any { return new(frame.Decoder) }
	s.frames.New = func() any { b := make([]byte, 0, 512); return &b }
	s.hsBufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	s.requests.New = func() any { return new(frame.Request) }
	s.batches.New = func() any { return &timerBatch{items: make([]wheel.Expired, 0, wheel.MaxBatch)} }
	s.metrics = newMetrics(s)
	return s, nil
}

// Config is the configuration in force, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Mux is the admin listener's router, for the application layer to extend
// before Start.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// Registry is the server's Prometheus registry, for the application layer's
// own series (register them before Start).
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Start binds the listeners and starts serving. It returns once the server
// accepts connections.
func (s *Server) Start() error {
	if s.started.Swap(true) {
		return errors.New("edge: server already started")
	}
	s.epoch = time.Now()
	var err error
	s.pool, err = ants.NewPoolWithFunc(s.cfg.Workers, s.runTask,
		ants.WithNonblocking(true),
		ants.WithPanicHandler(func(v any) {
			s.metrics.panics.Inc()
			s.logPanic.Do(func() { s.log.Error("panic in worker task", "panic", v) })
		}))
	if err != nil {
		return fmt.Errorf("worker pool: %w", err)
	}
	s.wheel, err = wheel.New(wheel.Config{Tick: s.cfg.WheelTick, Slots: s.cfg.WheelSlots, Expire: s.onExpire})
	if err != nil {
		s.pool.Release()
		return err
	}
	s.poller, err = netpoll.New(netpoll.Config{
		Shards:         s.cfg.Pollers,
		ReadBufferSize: s.cfg.ReadBufferSize,
		WriteQueue:     s.cfg.WriteQueue,
		Handler:        s,
		Dispatch:       s.dispatch,
		OnPanic: func(c *netpoll.Conn, v any) {
			s.metrics.panics.Inc()
			s.logPanic.Do(func() { s.log.Error("panic serving a connection; closed it", "conn", c.ID(), "panic", v) })
		},
	})
	if err != nil {
		s.wheel.Close()
		s.pool.Release()
		return err
	}
	if s.ln, err = netpoll.Listen(s.cfg.Addr, s.cfg.Backlog); err != nil {
		s.closeEngines()
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	if err := s.startAdmin(); err != nil {
		s.ln.Close()
		s.ln.Wait()
		s.closeEngines()
		return err
	}
	go s.ln.Serve(s.accept, s.acceptError)
	return nil
}

// Addr is the WebSocket listener's address.
func (s *Server) Addr() *net.TCPAddr { return s.ln.Addr() }

// AdminAddr is the admin listener's address (nil when off).
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// SetReadinessCheck installs check, asked on every GET /readyz: an error
// makes /readyz answer 200 "degraded: <error>" (the node still serves its
// own clients, so it stays in the load balancer). While draining /readyz is
// 503 whatever check says. Call it before Start.
func (s *Server) SetReadinessCheck(check func() error) { s.readiness = check }

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// Done is closed when Shutdown has finished.
func (s *Server) Done() <-chan struct{} { return s.done }

// nowMs is the server's monotonic clock in milliseconds. It wraps after 49
// days; compare stamps only by (wrap-safe) differences.
func (s *Server) nowMs() uint32 { return uint32(time.Since(s.epoch) / time.Millisecond) }

// closeEngines stops the shards, the wheel and the pool, waiting (bounded)
// for the tasks still running: once it returns no Handler call is in
// flight, so every OnClose has run.
func (s *Server) closeEngines() {
	s.poller.Close()
	s.wheel.Close()
	_ = s.pool.ReleaseTimeout(5 * time.Second)
}

// dispatch hands a connection's task to the pool; false makes the shard run
// it (the pool is full).
func (s *Server) dispatch(c *netpoll.Conn) bool {
	if s.pool.Invoke(c) != nil {
		s.callerRuns.Add(1)
		return false
	}
	return true
}

// runTask is the pool's one function: a connection's task or a timer batch.
func (s *Server) runTask(arg any) {
	switch t := arg.(type) {
	case *netpoll.Conn:
		s.poller.Serve(t)
	case *timerBatch:
		s.runTimers(t)
	case func():
		t()
	}
}

// Submit runs fn on the worker pool, or on the calling goroutine when the
// pool is full (so it never blocks waiting for a worker and never drops
// fn). Fan-out batches use it.
func (s *Server) Submit(fn func()) {
	if s.pool.Invoke(fn) != nil {
		s.callerRuns.Add(1)
		fn()
	}
}

// accept registers a new socket at once, before reading a byte, and starts
// its handshake timeout; over -max-conns, -max-pending-handshakes or
// -max-pending-per-ip it answers 503 at once and closes the socket instead,
// so silent sockets can never take the fds the admin listener needs. It
// runs on the listener's one goroutine: the count it checks only grows here.
func (s *Server) accept(fd int) {
	s.metrics.accepted.Inc()
	if s.poller.Open() >= int64(s.cfg.MaxConns) {
		s.refuse(fd, refusedMaxConns)
		return
	}
	c := &Conn{}
	if reason := s.pending.add(c, peerIP(fd), s.cfg.MaxPendingHandshakes, s.cfg.MaxPendingPerIP); reason != "" {
		s.refuse(fd, reason)
		return
	}
	err := s.poller.Register(&c.nc, fd, func(*netpoll.Conn) {
		c.lastActive.Store(s.nowMs() | 1)
		c.timer = s.wheel.Schedule(s.cfg.HandshakeTimeout, c.ID())
	})
	if err != nil {
		s.wheel.Stop(c.timer)
		s.pending.done(c)
		closeFD(fd)
		s.metrics.handshakeFailures.WithLabelValues("register").Inc()
		s.logAccept.Do(func() { s.log.Error("register connection", "err", err) })
	}
}

// refuse answers a socket over a bound with 503 (Retry-After) and closes it.
func (s *Server) refuse(fd int, reason string) {
	s.metrics.refused[reason].Inc()
	refuseFD(fd, s.refusals[reason])
}

func (s *Server) acceptError(err error) {
	errno := "other"
	var se *os.SyscallError
	if errors.As(err, &se) {
		errno = se.Err.Error()
	}
	s.metrics.acceptErrors.WithLabelValues(errno).Inc()
	s.logAccept.Do(func() { s.log.Error("accept", "err", err) })
}

// OnData is netpoll's callback for bytes read; it runs on the worker that
// holds the connection.
func (s *Server) OnData(nc *netpoll.Conn, p []byte) error {
	c := connOf(nc)
	s.metrics.bytesIn.Add(float64(len(p)))
	switch c.phase.Load() {
	case phaseHandshake:
		s.handshake(c, p)
	case phaseOpen, phaseClosing:
		c.lastActive.Store(s.nowMs() | 1)
		c.feed(p)
	}
	// phaseDraining: discard until the peer closes.
	return nil
}

// OnClose is netpoll's callback after a socket is closed.
func (s *Server) OnClose(nc *netpoll.Conn, err error) {
	c := connOf(nc)
	s.wheel.Stop(c.timer)
	if c.dec != nil {
		c.dec.Release()
		s.decoders.Put(c.dec)
		c.dec = nil
	}
	s.releaseHandshakeBuf(c)
	if c.route == nil {
		s.pending.done(c) // never opened: its handshake is over now at the latest
	}
	if c.route != nil {
		code := c.closeCode()
		s.open.Add(-1)
		s.metrics.closed(int(code))
		c.route.h.OnClose(c, code)
	} else if c.phase.Load() == phaseHandshake {
		s.metrics.handshakeFailures.WithLabelValues("peer_closed").Inc()
	}
}

// handshake accumulates the upgrade request and answers it.
func (s *Server) handshake(c *Conn, p []byte) {
	buf := p
	var hs *[]byte
	if v, ok := s.partial.Load(c); ok {
		hs = v.(*[]byte)
		*hs = append(*hs, p...)
		buf = *hs
	}
	// The request's strings alias buf, which stays put until this returns;
	// nothing of the request outlives the call.
	req := s.requests.Get().(*frame.Request)
	defer func() {
		*req = frame.Request{}
		s.requests.Put(req)
	}()
	err := frame.ParseRequestInto(req, buf, s.hsCfg)
	if errors.Is(err, frame.ErrIncomplete) {
		if hs == nil {
			hs = s.hsBufs.Get().(*[]byte)
			*hs = append((*hs)[:0], p...)
			s.partial.Store(c, hs)
		}
		return
	}
	if err != nil {
		s.reject(c, err)
		return
	}
	rt, ok := s.routes[req.Path]
	switch {
	case !ok:
		s.reject(c, frame.NewHTTPError(http.StatusNotFound, "no WebSocket endpoint at "+req.Path))
		return
	case s.draining.Load():
		s.reject(c, frame.NewHTTPError(http.StatusServiceUnavailable, "server is shutting down"))
		return
	}
	h := rt.h
	if err := h.Accept(c, req); err != nil {
		s.reject(c, err)
		return
	}
	bp := s.frames.Get().(*[]byte)
	*bp = frame.AppendAcceptResponse((*bp)[:0], req, "")
	err = c.nc.Write(*bp)
	s.frames.Put(bp)
	if err != nil {
		c.terminate(0)
		return
	}
	c.lastActive.Store(s.nowMs() | 1)
	// route is set before the phase says open (a Close that sees open
	// reaches the server through it). Close (Shutdown's, or the handshake
	// timeout's) may have come since the 101: then the connection never
	// opens, and route goes back to nil: no OnOpen/OnClose is owed. Only
	// this goroutine (holding busy) reads route while the phase is not open.
	c.route = rt
	if !c.phase.CompareAndSwap(phaseHandshake, phaseOpen) {
		c.route = nil
		return
	}
	s.pending.done(c)
	if s.afterOpen != nil {
		s.afterOpen(c)
	}
	s.open.Add(1)
	// Armed before OnOpen: a Close from OnOpen arms the close timeout, which
	// this must not overwrite.
	s.wheel.Reset(c.timer, s.cfg.PingInterval)
	h.OnOpen(c)
	if len(req.Rest) > 0 && c.phase.Load() == phaseOpen {
		c.feed(req.Rest)
	}
	s.releaseHandshakeBuf(c)
}

// releaseHandshakeBuf drops the connection's partial request, if any.
func (s *Server) releaseHandshakeBuf(c *Conn) {
	if v, ok := s.partial.LoadAndDelete(c); ok {
		hs := v.(*[]byte)
		if cap(*hs) <= 2*s.cfg.MaxHeaderBytes {
			*hs = (*hs)[:0]
			s.hsBufs.Put(hs)
		}
	}
}

// reject answers a handshake with an HTTP error, shuts our side and drains.
func (s *Server) reject(c *Conn, err error) {
	var he *frame.HTTPError
	if !errors.As(err, &he) {
		s.log.Error("handshake handler failed", "err", err)
		he = frame.NewHTTPError(http.StatusInternalServerError, "internal error")
	}
	s.metrics.handshakeFailures.WithLabelValues(failureReason(he.Status)).Inc()
	// Built before the partial request goes back to its pool: a handler's
	// reason may quote the request, whose strings alias that buffer.
	resp := he.Response()
	s.releaseHandshakeBuf(c)
	s.pending.done(c)
	if !c.phase.CompareAndSwap(phaseHandshake, phaseDraining) {
		return
	}
	if c.nc.Write(resp) != nil || c.nc.Shutdown() != nil {
		c.nc.Close()
		return
	}
	s.wheel.Reset(c.timer, s.cfg.CloseTimeout)
}

func failureReason(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusUpgradeRequired:
		return "upgrade_required"
	case http.StatusRequestHeaderFieldsTooLarge:
		return "header_too_large"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return fmt.Sprintf("status_%d", status)
}

// onExpire runs on the wheel's goroutine: it copies the batch and hands it
// to the pool.
func (s *Server) onExpire(batch []wheel.Expired) {
	tb := s.batches.Get().(*timerBatch)
	tb.items = append(tb.items[:0], batch...)
	if s.pool.Invoke(tb) != nil {
		s.callerRuns.Add(1)
		s.runTimers(tb)
	}
}

func (s *Server) runTimers(tb *timerBatch) {
	now := s.nowMs()
	for _, e := range tb.items {
		if nc := s.poller.Lookup(e.Data); nc != nil {
			s.fireTimer(nc, now)
		}
	}
	tb.items = tb.items[:0]
	s.batches.Put(tb)
}

// fireTimer runs one expiry inside a panic boundary: a close it causes
// runs Handler.OnClose (application code), and a panic there must neither
// kill the wheel's goroutine (when the pool is full) nor skip the rest of
// the batch (those connections would never be timed again). The panic is
// counted and that one connection closed.
func (s *Server) fireTimer(nc *netpoll.Conn, now uint32) {
	defer func() {
		if v := recover(); v != nil {
			s.metrics.panics.Inc()
			s.logPanic.Do(func() { s.log.Error("panic in a timer; closed the connection", "conn", nc.ID(), "panic", v) })
			nc.Close()
		}
	}()
	connOf(nc).onTimer(s, now)
}

// onTimer is the connection's one wheel entry firing. Activity only stamped
// lastActive; here the stamp decides between re-arming, a ping, and a close.
func (c *Conn) onTimer(s *Server, now uint32) {
	cfg := &s.cfg
	since := func(stamp uint32) time.Duration { return time.Duration(max(int32(now-stamp), 0)) * time.Millisecond }
	switch c.phase.Load() {
	case phaseHandshake:
		s.metrics.handshakeFailures.WithLabelValues("timeout").Inc()
		c.terminate(0)
	case phaseOpen:
		last, sent := c.lastActive.Load(), c.pingSent.Load()
		// Stamps are ms|1; life in the ping's own millisecond counts as
		// an answer (the conservative side: the next ping asks again).
		if sent != 0 && int32(last-sent) < 0 {
			if waited := since(sent); waited < cfg.PongTimeout {
				s.wheel.Reset(c.timer, cfg.PongTimeout-waited)
				return
			}
			s.metrics.pongTimeouts.Inc()
			c.terminate(ws.StatusGoingAway)
			return
		}
		if idle := since(last); idle < cfg.PingInterval {
			s.wheel.Reset(c.timer, cfg.PingInterval-idle)
			return
		}
		c.pingSent.Store(now | 1)
		s.metrics.pingsSent.Inc()
		c.writeControl(ws.OpPing, nil)
		s.wheel.Reset(c.timer, cfg.PongTimeout)
	case phaseClosing, phaseDraining:
		s.metrics.closeTimeouts.Inc()
		c.nc.Close()
	}
}

// Shutdown drains the server: /readyz turns 503, accepting stops, every
// client gets close 1001, and once they are gone (or ctx ends, or the
// shutdown timeout passes) the rest are dropped and everything stops.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.started.Load() {
		return errors.New("edge: server not started")
	}
	var err error
	s.stopOnce.Do(func() {
		defer close(s.done)
		s.draining.Store(true)
		ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
		s.ln.Close()
		s.ln.Wait()
		s.poller.Range(func(nc *netpoll.Conn) bool {
			connOf(nc).Close(ws.StatusGoingAway, "server shutting down")
			return true
		})
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	wait:
		for s.poller.Open() > 0 {
			select {
			case <-ctx.Done():
				err = ctx.Err()
				break wait
			case <-tick.C:
			}
		}
		s.poller.Range(func(nc *netpoll.Conn) bool {
			nc.Close()
			return true
		})
		s.closeEngines()
		if s.admin != nil {
			actx, acancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.admin.Shutdown(actx)
			acancel()
		}
	})
	return err
}
