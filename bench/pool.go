package bench

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Progress is a live snapshot of a worker, or of a run summed over workers.
type Progress struct {
	Open      int64 `json:"open"`
	Attempted int64 `json:"attempted"`
	Failed    int64 `json:"failed"`
	Sent      int64 `json:"sent"`
	Received  int64 `json:"received"`
	Errors    int64 `json:"errors"`
	// CPUSeconds is the worker process's CPU (user+system) so far.
	CPUSeconds float64 `json:"cpu_seconds"`
}

func (p *Progress) add(q Progress) {
	p.Open += q.Open
	p.Attempted += q.Attempted
	p.Failed += q.Failed
	p.Sent += q.Sent
	p.Received += q.Received
	p.Errors += q.Errors
	p.CPUSeconds += q.CPUSeconds
}

// pool holds one worker's client connections and counts what happens to
// them. An open connection is read by the pool's event loops (Linux,
// ws://) or by a goroutine of its own (see package doc).
type pool struct {
	cfg     *Config
	d       *dialer
	connect *Recorder
	loops   *evLoops // nil: a reader goroutine per connection

	attempted, established, failed atomic.Int64
	open, peakOpen                 atomic.Int64
	sent, received, errs           atomic.Int64

	mu       sync.Mutex
	conns    map[int]*conn // by slot
	failures map[string]int64
	examples map[string]string
	drops    map[string]int64

	dials   sync.WaitGroup
	readers sync.WaitGroup

	// The process's RSS and CPU seconds when the pool was made, so that a
	// report shows what this run cost.
	rssBefore             int64
	userBefore, sysBefore float64
	// held and goroutines are taken when the load phase begins.
	held, goroutines int64
}

func newPool(cfg *Config, buffered bool) (*pool, error) {
	d, err := newDialer(cfg, buffered)
	if err != nil {
		return nil, err
	}
	var loops *evLoops
	if !cfg.GoroutineClient {
		if loops, err = newEvLoops(cfg.Loops, cfg.ClientWork); err != nil {
			return nil, err
		}
	}
	user, sys, _ := selfUsage()
	return &pool{
		userBefore: user, sysBefore: sys, loops: loops,
		cfg: cfg, d: d, connect: NewRecorder(),
		conns:    map[int]*conn{},
		failures: map[string]int64{},
		examples: map[string]string{},
		drops:    map[string]int64{},
	}, nil
}

// markHeld notes the connections and goroutines as the load phase begins.
func (p *pool) markHeld() {
	p.held = p.open.Load()
	p.goroutines = int64(runtime.NumGoroutine())
}

func (p *pool) progress() Progress {
	user, sys, _ := selfUsage()
	return Progress{
		Open: p.open.Load(), Attempted: p.attempted.Load(), Failed: p.failed.Load(),
		Sent: p.sent.Load(), Received: p.received.Load(), Errors: p.errs.Load(),
		CPUSeconds: user + sys - p.userBefore - p.sysBefore,
	}
}

// onMessage handles one received message of connection c.
type onMessage func(c *conn, op ws.OpCode, payload []byte)

// openOne dials user index user into slot and starts its reader. A failure
// is counted and returned.
func (p *pool) openOne(ctx context.Context, slot, user int, handle onMessage) (*conn, error) {
	p.attempted.Add(1)
	c, took, err := p.d.dial(ctx, user)
	if err != nil {
		if ctx.Err() != nil {
			// The run is ending: an aborted dial is not the server's fault.
			p.attempted.Add(-1)
			return nil, err
		}
		reason := classifyDialErr(err)
		p.failed.Add(1)
		p.errs.Add(1)
		p.mu.Lock()
		p.failures[reason]++
		if _, ok := p.examples[reason]; !ok {
			p.examples[reason] = err.Error()
		}
		p.mu.Unlock()
		return nil, err
	}
	p.connect.Record(slot, took)
	p.established.Add(1)
	if n := p.open.Add(1); n > p.peakOpen.Load() {
		p.peakOpen.Store(n) // approximate under races; only a report figure
	}
	onLoop := p.loops != nil && p.loops.detach(c)
	p.mu.Lock()
	if old := p.conns[slot]; old != nil {
		defer old.close()
	}
	p.conns[slot] = c
	p.mu.Unlock()
	p.readers.Add(1)
	onMessage := func(op ws.OpCode, b []byte) { handle(c, op, b) }
	ended := func(reason string) {
		defer p.readers.Done()
		p.open.Add(-1)
		p.mu.Lock()
		if p.conns[slot] == c {
			delete(p.conns, slot)
		}
		if reason != "" {
			p.drops[reason]++
			p.errs.Add(1)
		}
		p.mu.Unlock()
	}
	if onLoop {
		p.loops.attach(c, onMessage, ended)
		return c, nil
	}
	go func() { ended(c.readLoop(onMessage)) }()
	return c, nil
}

// openAll opens n connections (slots 0..n-1, users FirstUser+slot) at rate
// per second (0: as fast as MaxDialing allows) and returns when every
// attempt has finished or ctx is done.
func (p *pool) openAll(ctx context.Context, n int, rate float64, handle onMessage) {
	p.rssBefore = selfRSS()
	pace(ctx, n, rate, func(i int) {
		p.dials.Add(1)
		go func() {
			defer p.dials.Done()
			_, _ = p.openOne(ctx, i, p.cfg.FirstUser+i, handle)
		}()
	}, nil)
	p.dials.Wait()
}

// get returns the open connection in slot, or nil.
func (p *pool) get(slot int) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[slot]
}

// snapshot returns the open connections.
func (p *pool) snapshot() []*conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*conn, 0, len(p.conns))
	for _, c := range p.conns {
		out = append(out, c)
	}
	return out
}

// closeAll closes every connection and waits (bounded) for the readers.
func (p *pool) closeAll() {
	p.dials.Wait()
	conns := p.snapshot()
	var wg sync.WaitGroup
	per := (len(conns) + runtime.GOMAXPROCS(0) - 1) / max(1, runtime.GOMAXPROCS(0))
	for start := 0; start < len(conns); start += per {
		part := conns[start:min(start+per, len(conns))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range part {
				c.close()
			}
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { p.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	if p.loops != nil {
		p.loops.stop()
	}
}

// io names how the pool drives its connections, for the report.
func (p *pool) io() string {
	if p.loops != nil && p.d.plain() {
		return "epoll"
	}
	return "goroutines"
}

// fill writes the pool's connection figures into r.
func (p *pool) fill(r *Result, held int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.Conns = ConnStats{
		Attempted:   p.attempted.Load(),
		Established: p.established.Load(),
		Failed:      p.failed.Load(),
		Held:        held,
		PeakOpen:    p.peakOpen.Load(),
		Failures:    nonEmpty(p.failures),
		Drops:       nonEmpty(p.drops),
		Connect:     p.connect.Latency(),
	}
	if len(p.examples) > 0 {
		r.Conns.FailureExample = map[string]string{}
		for k, v := range p.examples {
			r.Conns.FailureExample[k] = v
		}
	}
}

func nonEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// pace calls fn(i) for i in [0,n) at rate calls per second from now, or
// back to back when rate is 0. It stops early when ctx is done or stop (which
// may be nil) is closed.
func pace(ctx context.Context, n int, rate float64, fn func(i int), stop <-chan struct{}) {
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := 0; i < n; i++ {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		default:
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if !sleepUntil(ctx, stop, timer, due) {
				return
			}
		}
		fn(i)
	}
}

// sleepUntil waits on timer until due (at once if it has passed); false
// when ctx ends or stop closes first. Pacing loops share one timer.
func sleepUntil(ctx context.Context, stop <-chan struct{}, timer *time.Timer, due time.Time) bool {
	wait := time.Until(due)
	if wait <= 0 {
		return true
	}
	timer.Reset(wait)
	select {
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	case <-timer.C:
		return true
	}
}
