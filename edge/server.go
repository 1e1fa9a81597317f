package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"net"
	"net/http"
	"os"
	"strconv"
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

	deflate        *frame.Deflate // nil: compression off (its methods then write plain frames)
	deflateMetrics deflateMetrics

	admin   *http.Server
	adminLn net.Listener
	mux     *http.ServeMux

	inbound      sync.Pool // *inbound: a request in pieces, a decoder mid-message
	frames       sync.Pool // *[]byte, encode buffers
	requests     sync.Pool // *frame.Request, parsed in place: a handshake leaves no garbage
	pending      *pendingTable
	refusals     map[string][]byte // reason -> complete 503 answer, built once
	rateRefusals [][]byte          // -accept-rate's answers, by Retry-After
	acceptLim    *rate.Limiter     // nil: no -accept-rate
	drain        drainState

	// clock, when set (tests), drives the wheel by hand and nowMs: the
	// test moves time with wheel.Advance. nil: the real clock.
	clock   wheel.Clock
	reasons *closeReasons

	// partialRequests counts connections holding a request that arrived
	// in pieces (for tests: that each is released).
	partialRequests atomic.Int64

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
		reasons:  newCloseReasons(),
	}
	if !cfg.DisableCompression {
		if s.deflate, err = frame.NewDeflate(frame.DeflateConfig{Level: cfg.CompressionLevel, MinSize: cfg.CompressionMinSize}); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{refusedMaxConns, refusedPendingHandshakes, refusedPendingPerIP} {
		s.refusals[r] = refusal(r)
	}
	s.rateRefusals = rateRefusals()
	if cfg.AcceptRate > 0 {
		s.acceptLim = rate.NewLimiter(rate.Limit(cfg.AcceptRate), cfg.AcceptBurst)
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
	s.inbound.New = func() any { return new(inbound) }
	s.frames.New = func() any { b := make([]byte, 0, 512); return &b }
	s.requests.New = func() any { return new(frame.Request) }
	s.metrics = newMetrics(s)
	s.deflateMetrics.register(s.metrics.reg)
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
	s.epoch = s.now()
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
	s.wheel, err = wheel.New(wheel.Config{Tick: s.cfg.WheelTick, Slots: s.cfg.WheelSlots, Expire: s.onExpire,
		Clock: s.clock, Manual: s.clock != nil})
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
		DispatchBatch:  s.dispatchBatch,
		BatchSize:      s.cfg.PollBatch,
		InPlace:        s.cfg.PollInPlace,
		OnPanic: func(c *netpoll.Conn, v any) {
			s.metrics.panics.Inc()
			// c is nil for a panic that escaped a task's recovery where
			// netpoll ran the task itself (a shard, Wake's caller), as
			// the pool's handler reports one in a worker.
			if c == nil {
				s.logPanic.Do(func() { s.log.Error("panic in worker task", "panic", v) })
				return
			}
			s.logPanic.Do(func() { s.log.Error("panic serving a connection; closed it", "conn", c.ID(), "panic", v) })
		},
	})
	if err != nil {
		s.wheel.Close()
		s.pool.Release()
		return err
	}
	if s.ln, err = (netpoll.ListenConfig{Backlog: s.cfg.Backlog, ReusePort: s.cfg.ReusePort}).Listen(s.cfg.Addr); err != nil {
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
func (s *Server) nowMs() uint32 { return uint32(s.now().Sub(s.epoch) / time.Millisecond) }

func (s *Server) now() time.Time {
	if s.clock != nil {
		return s.clock.Now()
	}
	return time.Now()
}

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

// dispatchBatch is dispatch for a shard's batch of ready connections.
func (s *Server) dispatchBatch(b *netpoll.Batch) bool {
	if s.pool.Invoke(b) != nil {
		s.callerRuns.Add(1)
		return false
	}
	return true
}

// runTask is the pool's one function: a connection's task (for readiness,
// a timer or a close request) or a fan-out batch.
func (s *Server) runTask(arg any) {
	switch t := arg.(type) {
	case *netpoll.Conn:
		s.poller.Serve(t)
	case *netpoll.Batch:
		s.poller.ServeBatch(t)
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
	// Checked before the handshake costs anything: a reconnect storm is
	// answered at accept, and established clients keep their workers.
	if s.acceptLim != nil && !s.acceptLim.Allow() {
		s.metrics.refused[refusedAcceptRate].Inc()
		refuseFD(fd, s.rateRefusals[jitteredRetryAfter()-1])
		return
	}
	c := &Conn{}
	if reason := s.pending.add(c, peerIP(fd), s.cfg.MaxPendingHandshakes, s.cfg.MaxPendingPerIP); reason != "" {
		s.refuse(fd, reason)
		return
	}
	err := s.poller.Register(&c.nc, fd, func(*netpoll.Conn) {
		c.lastActive = s.nowMs() | 1
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
	s.metrics.bytesIn.add(nc.Fd(), uint64(len(p)))
	switch c.phase {
	case phaseHandshake:
		s.handshake(c, p)
	case phaseOpen, phaseClosing:
		c.lastActive = s.nowMs() | 1
		c.feed(s, p)
	}
	// phaseDraining: discard until the peer closes.
	return nil
}

// OnWake is netpoll's callback for work other goroutines handed to the
// connection (its timer fired, a Close was asked for); it runs on the
// worker that holds the connection, like OnData.
func (s *Server) OnWake(nc *netpoll.Conn, events uint8) {
	c := connOf(nc)
	if events&wakeClose != 0 {
		c.takeCloseRequest(s)
	}
	if events&wakeTimer != 0 {
		c.onTimer(s, s.nowMs())
	}
	if events&wakeHandler != 0 {
		c.onHandlerWake()     // wake.go
		c.takeCloseRequest(s) // a Close its handler held (CloseHolder)
	}
}

// OnClose is netpoll's callback after a socket is closed. It runs on
// whoever tore the connection down, holding its busy flag, so it reads the
// owner's fields in order after the owner's last task.
func (s *Server) OnClose(nc *netpoll.Conn, err error) {
	c := connOf(nc)
	s.wheel.Stop(c.timer)
	if c.in != nil {
		s.putInbound(c.in)
		c.in = nil
	}
	rt := c.route.Load()
	if rt == nil {
		s.pending.done(c) // never opened: its handshake is over now at the latest
		if c.phase == phaseHandshake {
			s.metrics.handshakeFailures.WithLabelValues("peer_closed").Inc()
		}
		return
	}
	code := c.closeCode()
	s.open.Add(-1)
	if c.comp != frame.CompressionNone {
		s.deflateMetrics.open.Add(-1)
	}
	s.metrics.closed(int(code))
	rt.h.OnClose(c, code)
}

// putInbound returns a connection's partial input to the pool.
func (s *Server) putInbound(in *inbound) {
	if len(in.req) > 0 {
		s.partialRequests.Add(-1)
	}
	in.dec.Release()
	if cap(in.req) > 2*s.cfg.MaxHeaderBytes {
		in.req = nil
	} else {
		in.req = in.req[:0]
	}
	s.inbound.Put(in)
}

// handshake accumulates the upgrade request and answers it.
func (s *Server) handshake(c *Conn, p []byte) {
	buf := p
	in := c.in
	if in != nil {
		in.req = append(in.req, p...)
		buf = in.req
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
		if in == nil {
			in = s.inbound.Get().(*inbound)
			in.req = append(in.req[:0], p...)
			c.in = in
			s.partialRequests.Add(1)
		}
		return
	}
	if in != nil {
		// Done with the pieces once this returns (a refusal's reason may
		// quote the request, and req.Rest is fed below); c.in is free now
		// for the decoder.
		c.in = nil
		defer s.putInbound(in)
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
		// Jittered like the accept rate's: the clients a drain turns away
		// do not all come back in the same second.
		he := frame.NewHTTPError(http.StatusServiceUnavailable, "server is shutting down")
		he.Header = append(he.Header, [2]string{"Retry-After", strconv.Itoa(jitteredRetryAfter())})
		s.reject(c, he)
		return
	}
	h := rt.h
	if err := h.Accept(c, req); err != nil {
		s.reject(c, err)
		return
	}
	if c.closeReq.Load() != 0 {
		c.terminate(0) // closed (by Accept, or Shutdown) before it opened: dropped
		return
	}
	// The handshake is over: give its pending slot back before the client
	// can see the 101 and open another socket against the bound.
	s.pending.done(c)
	bp := s.frames.Get().(*[]byte)
	var comp frame.Compression
	*bp, comp = s.negotiate((*bp)[:0], req)
	err = c.nc.Write(*bp)
	s.frames.Put(bp)
	if err != nil {
		c.terminate(0)
		return
	}
	c.lastActive = s.nowMs() | 1
	c.phase = phaseOpen
	if c.comp = comp; comp != frame.CompressionNone {
		s.deflateMetrics.open.Add(1)
	}
	// Published last: from here writers on other goroutines reach the
	// server, and OnClose is owed. A Close that comes meanwhile (Shutdown's,
	// or one from Accept) is carried out by this task once OnData returns.
	c.route.Store(rt)
	if s.afterOpen != nil {
		s.afterOpen(c)
	}
	s.open.Add(1)
	s.rearm(c, s.cfg.PingInterval, s.nowMs())
	h.OnOpen(c)
	if len(req.Rest) > 0 {
		c.feed(s, req.Rest)
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
	s.pending.done(c)
	c.phase = phaseDraining
	if c.nc.Write(he.Response()) != nil {
		c.nc.Close()
		return
	}
	c.linger(s)
}

// handshakeReasons names the refusals in wsedge_handshake_failures_total
// (pre-created from it); any other status is status_N.
var handshakeReasons = map[int]string{
	http.StatusBadRequest:                  "bad_request",
	http.StatusUnauthorized:                "unauthorized",
	http.StatusForbidden:                   "forbidden",
	http.StatusNotFound:                    "not_found",
	http.StatusMethodNotAllowed:            "method_not_allowed",
	http.StatusUpgradeRequired:             "upgrade_required",
	http.StatusRequestHeaderFieldsTooLarge: "header_too_large",
	http.StatusServiceUnavailable:          "unavailable",
}

func failureReason(status int) string {
	if r, ok := handshakeReasons[status]; ok {
		return r
	}
	return fmt.Sprintf("status_%d", status)
}

// onExpire runs on the wheel's goroutine. It only wakes each connection:
// the expiry is handled by the task that holds it (OnWake), dispatched to
// the pool like readiness, or run here when the pool is full. A panic there
// is recovered by netpoll's task boundary, counted, and closes only that
// connection; the rest of the batch is woken regardless.
func (s *Server) onExpire(batch []wheel.Expired) {
	for _, e := range batch {
		if nc := s.poller.Lookup(e.Data); nc != nil {
			nc.Wake(wakeTimer)
		}
	}
}

// onTimer is the connection's one wheel entry firing; owner only. Activity
// only stamped lastActive; here the stamps decide between re-arming, a
// ping, and a close. An expiry may be stale (the owner re-armed the timer
// after it fired): the stamps make that a re-arm, never an early close.
func (c *Conn) onTimer(s *Server, now uint32) {
	cfg := &s.cfg
	since := func(stamp uint32) time.Duration { return time.Duration(max(int32(now-stamp), 0)) * time.Millisecond }
	switch c.phase {
	case phaseHandshake:
		s.metrics.handshakeFailures.WithLabelValues("timeout").Inc()
		c.terminate(0)
	case phaseOpen:
		if s.drain.on.Load() && s.drainLeft(c.ID(), now) <= 0 {
			c.closeForRestart(s)
			return
		}
		last, sent := c.lastActive, c.waitFrom
		// Stamps are ms|1; life in the ping's own millisecond counts as
		// an answer (the conservative side: the next ping asks again).
		if sent != 0 && int32(last-sent) < 0 {
			if waited := since(sent); waited < cfg.PongTimeout {
				s.rearm(c, cfg.PongTimeout-waited, now)
				return
			}
			s.metrics.pongTimeouts.Inc()
			c.terminate(ws.StatusGoingAway)
			return
		}
		if idle := since(last); idle < cfg.PingInterval {
			s.rearm(c, cfg.PingInterval-idle, now)
			return
		}
		c.waitFrom = now | 1
		s.metrics.pingsSent.Inc()
		c.writeControl(s, ws.OpPing, nil)
		s.rearm(c, cfg.PongTimeout, now)
	case phaseClosing, phaseDraining:
		if waited := since(c.waitFrom); waited < cfg.CloseTimeout {
			s.wheel.Reset(c.timer, cfg.CloseTimeout-waited)
			return
		}
		s.metrics.closeTimeouts.Inc()
		c.nc.Close()
	}
}

// rearm sets an open connection's timer to d, or to its drain deadline if
// sooner while Shutdown spreads its closes. If the drain began meanwhile
// it arms again: startDrain sets drain.on before it re-arms anyone, so
// either its Reset comes after ours or we see drain.on (atomics are
// sequentially consistent) and a keepalive re-arm never hides a deadline.
func (s *Server) rearm(c *Conn, d time.Duration, now uint32) {
	on := s.drain.on.Load()
	if on {
		d = min(d, max(s.drainLeft(c.ID(), now), 0))
	}
	s.wheel.Reset(c.timer, d)
	if !on && s.drain.on.Load() {
		s.wheel.Reset(c.timer, max(s.drainLeft(c.ID(), s.nowMs()), 0))
	}
}

// Shutdown drains the server: /readyz turns 503, accepting stops, and the
// clients are closed evenly over the drain window (each gets the
// DrainHint message, then 1012 "service restart"; a window of 0 or DrainNow
// closes them all at once). Once they are gone (or ctx ends, or the
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
		s.startDrain(s.cfg.DrainWindow)
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
