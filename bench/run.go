package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"
)

var (
	// ErrServerUnreachable means the admin URL did not answer before the run.
	ErrServerUnreachable = errors.New("server unreachable")
	// ErrNoConnections means not a single connection could be opened.
	ErrNoConnections = errors.New("no connection could be opened")
)

// fdReserve is the number of file descriptors a worker process keeps for
// itself (stdio, pipes, the admin client, the poller).
const fdReserve = 64

// Options are the hooks a command gives Run.
type Options struct {
	// Spawn returns the command that runs one worker process: a re-exec
	// of the program that calls ServeWorker. Required when Procs > 1. Run
	// sets its stdin and stdout.
	Spawn func(ctx context.Context) (*exec.Cmd, error)
	// OnProgress, if set, is called about once a second while the run goes.
	OnProgress func(p Progress, elapsed time.Duration)
}

// Run executes one scenario and returns its merged result. The run stops by
// itself after its hold, duration or fan-out, and at the latest at the hard
// deadline; when ctx is cancelled it stops early and returns the partial
// result with Stop set to "interrupted". A non-nil error with a nil result
// means nothing ran (bad configuration, server unreachable); with a result,
// the run went but failed as a whole (no connection at all).
func Run(ctx context.Context, cfg Config, opt Options) (*Result, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	procs := max(1, cfg.Procs)
	if procs > 1 && opt.Spawn == nil {
		return nil, fmt.Errorf("%w: -procs needs a way to start worker processes", ErrConfig)
	}
	if lim := openFileLimit(); lim > 0 {
		per := (cfg.Conns + procs - 1) / procs
		if per > lim-fdReserve {
			return nil, fmt.Errorf("%w: %d connections per process but the open-file limit is %d: use -procs %d or more",
				ErrConfig, per, lim, (cfg.Conns+lim-fdReserve-1)/(lim-fdReserve))
		}
	}
	d := &driver{cfg: cfg, opt: opt, started: time.Now()}
	if len(cfg.Admin) > 0 {
		d.admin = newAdmin(&d.cfg)
	}
	return d.run(ctx, procs)
}

// driver runs the phases of one run over its worker handles.
type driver struct {
	cfg     Config
	opt     Options
	admin   *admin
	started time.Time
	handles []handle
	server  ServerStats
	load    *LoadCPU
	fanout  *FanoutStats
	postTS  []int64
}

func (d *driver) run(parent context.Context, procs int) (*Result, error) {
	ctx, cancel := context.WithTimeout(parent, d.cfg.Deadline)
	defer cancel()
	if d.sampling() {
		s, err := d.sample(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrServerUnreachable, err)
		}
		d.server.Source = s.Source
		d.server.Before = s
		d.server.PeakRSS = s.RSS
	}
	busy0, total0, cpuOK := machineCPU()
	user0, sys0, _ := selfUsage()

	for i, wc := range splitConfig(d.cfg, procs) {
		h, err := d.startWorker(ctx, wc, procs)
		if err != nil {
			for _, h := range d.handles {
				h.stop()
			}
			d.collect()
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		d.handles = append(d.handles, h)
	}
	stopProgress := d.reportProgress(ctx)

	for _, h := range d.handles {
		select {
		case <-h.ready():
		case <-ctx.Done():
		}
	}
	if ctx.Err() == nil {
		if d.cfg.Scenario != ScenarioIdle || d.cfg.PID > 0 {
			d.sampleServer(ctx, &d.server.Holding)
		}
		load := d.beginLoad()
		for _, h := range d.handles {
			h.start()
		}
		d.loadPhase(ctx)
		d.endLoad(load)
	}
	for _, h := range d.handles {
		h.stop()
	}
	parts, werr := d.collect()
	stopProgress()

	res, err := mergeWorkers(parts)
	if err != nil {
		return nil, err
	}
	res.Scenario = d.cfg.Scenario
	res.Config = d.cfg
	res.Started = d.started
	res.Elapsed = Duration(time.Since(d.started))
	res.Stop = StopCompleted
	switch {
	case parent.Err() != nil:
		res.Stop = StopInterrupted
	case ctx.Err() != nil:
		res.Stop = StopDeadline
	}
	if werr != nil {
		res.Warnings = append(res.Warnings, werr.Error())
	}
	d.finishServer(parent, res)
	d.finishFanout(res)
	d.finishClient(res, busy0, total0, cpuOK, user0+sys0)
	res.countErrors()
	d.warn(res)
	if res.Conns.Established == 0 && res.Conns.Attempted > 0 {
		return res, fmt.Errorf("%w: %s", ErrNoConnections, failureText(res.Conns))
	}
	return res, nil
}

// splitConfig divides connections, users and rates over the workers.
func splitConfig(cfg Config, procs int) []Config {
	out := make([]Config, procs)
	first := 0
	if cfg.PortSeed == 0 {
		cfg.PortSeed = rand.Uint32() | 1 // one base for all workers
	}
	for i := range out {
		c := cfg
		c.Procs = 0
		c.WorkerIndex, c.WorkerCount = i, procs
		c.Conns = cfg.Conns / procs
		if i < cfg.Conns%procs {
			c.Conns++
		}
		c.FirstUser = first
		first += c.Conns
		c.TotalUsers = cfg.Conns
		c.Rate = cfg.Rate / float64(procs)
		c.ConnectRate = cfg.ConnectRate / float64(procs)
		out[i] = c
	}
	return out
}

func (d *driver) startWorker(ctx context.Context, cfg Config, procs int) (handle, error) {
	if procs == 1 {
		return startLocal(ctx, cfg)
	}
	cmd, err := d.opt.Spawn(ctx)
	if err != nil {
		return nil, err
	}
	return startChild(cmd, cfg)
}

func (d *driver) progress() Progress {
	var p Progress
	for _, h := range d.handles {
		p.add(h.progress())
	}
	return p
}

// reportProgress calls OnProgress each second until the returned func is
// called; that func returns once no call is running.
func (d *driver) reportProgress(ctx context.Context) func() {
	if d.opt.OnProgress == nil {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				d.opt.OnProgress(d.progress(), time.Since(d.started))
			}
		}
	}()
	return func() { close(done); <-exited }
}

// loadMark is the client's and the server's CPU as the load phase begins.
type loadMark struct {
	at             time.Time
	client, server float64
	serverOK       bool
}

// beginLoad and endLoad measure the CPU of the load phase alone, apart from
// connecting (whose loopback TCP handshakes the kernel charges mostly to
// the connecting side): that is the phase whose latencies the report gives.
func (d *driver) beginLoad() loadMark {
	m := loadMark{at: time.Now(), client: d.progress().CPUSeconds}
	if d.cfg.PID > 0 {
		if s, err := procSample(d.cfg.PID); err == nil {
			m.server, m.serverOK = s.CPUSeconds, true
		}
	}
	return m
}

func (d *driver) endLoad(m loadMark) {
	d.load = &LoadCPU{Seconds: time.Since(m.at).Seconds(), ClientCPUSeconds: d.progress().CPUSeconds - m.client}
	if m.serverOK {
		if s, err := procSample(d.cfg.PID); err == nil {
			d.load.ServerCPUSeconds = s.CPUSeconds - m.server
		}
	}
}

// sampling reports whether the run reads the server's figures at all.
func (d *driver) sampling() bool { return d.cfg.PID > 0 || d.admin != nil }

// sample reads the server: /proc/PID with -pid, else /metrics.
func (d *driver) sample(ctx context.Context) (*ServerSample, error) {
	if d.cfg.PID > 0 {
		return procSample(d.cfg.PID)
	}
	return d.admin.sample(ctx)
}

// sampleServer stores a server sample in *dst, keeping the peak RSS; a
// failed scrape is recorded, not fatal.
func (d *driver) sampleServer(ctx context.Context, dst **ServerSample) {
	if !d.sampling() {
		return
	}
	s, err := d.sample(ctx)
	if err != nil {
		if ctx.Err() == nil && len(d.server.ScrapeErrors) < 10 {
			d.server.ScrapeErrors = append(d.server.ScrapeErrors, err.Error())
		}
		return
	}
	*dst = s
	d.server.PeakRSS = max(d.server.PeakRSS, s.RSS)
}

// waitSampling waits for dur, or until until() is true (checked every
// 20ms) when until is set. With -pid it samples the server each second
// into Holding; /metrics is not scraped while connections are held, since
// every scrape grows the server's heap (docs/benchmarks.md).
func (d *driver) waitSampling(ctx context.Context, dur time.Duration, until func() bool) {
	end := time.Now().Add(dur)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	nextSample := time.Now().Add(time.Second)
	for time.Now().Before(end) {
		if until != nil && until() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if d.cfg.PID > 0 && time.Now().After(nextSample) {
			d.sampleServer(ctx, &d.server.Holding)
			nextSample = time.Now().Add(time.Second)
		}
	}
}

// loadPhase runs the scenario's middle phase in the driver.
func (d *driver) loadPhase(ctx context.Context) {
	switch d.cfg.Scenario {
	case ScenarioIdle:
		d.waitSampling(ctx, d.cfg.Hold, nil)
		d.sampleServer(ctx, &d.server.Holding)
	case ScenarioFanout:
		d.postFanout(ctx)
	default:
		d.waitSampling(ctx, d.cfg.Duration, nil)
	}
}

// postFanout pushes Messages messages through the admin API, Interval
// apart, then waits until every held connection has them all or Wait ends.
func (d *driver) postFanout(ctx context.Context) {
	f := &FanoutStats{Messages: d.cfg.Messages}
	d.fanout = f
	path := "/v1/broadcast"
	if d.cfg.Room != "" {
		path = "/v1/rooms/" + d.cfg.Room + "/messages"
	}
	d.postTS = make([]int64, d.cfg.Messages)
	next := time.Now()
	for k := 0; k < d.cfg.Messages && ctx.Err() == nil; k++ {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		next = next.Add(d.cfg.Interval)
		ts := time.Now().UnixNano()
		body := fanoutBody(ts, k, d.cfg.Size)
		if err := d.admin.post(ctx, path, body); err != nil {
			if ctx.Err() != nil {
				break
			}
			f.Failed = addCounts(f.Failed, map[string]int64{postFailure(err): 1})
			continue
		}
		d.postTS[k] = ts
		f.Posted++
	}
	var held int64
	for _, h := range d.handles {
		held += h.progress().Open
	}
	want := int64(f.Posted) * held
	d.waitSampling(ctx, d.cfg.Wait, func() bool { return d.progress().Received >= want })
}

// fanoutBody is the JSON posted for fan-out message k: the stamp, padded
// to size bytes (when larger) with chat-like items, so that compression
// sees what a chat room sends rather than a short run of digits.
func fanoutBody(ts int64, k, size int) []byte {
	b := make([]byte, 0, max(size, 64))
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, int64(k), 10)
	if size <= len(b)+len(`,"items":[]}`) {
		return append(b, '}')
	}
	b = append(b, `,"items":[`...)
	for i := 0; ; i++ {
		item := fmt.Appendf(nil, `{"id":%d,"user":"user-%d","text":"hello from the lobby","likes":%d}`, i, i%7, i*3)
		if i > 0 {
			item = append([]byte{','}, item...)
		}
		if i > 0 && len(b)+len(item)+2 > size {
			break
		}
		b = append(b, item...)
	}
	return append(b, "]}"...)
}

func postFailure(err error) string {
	if s := err.Error(); len(s) > 0 {
		if i := indexHTTP(s); i >= 0 {
			return "http_" + s[i:min(i+3, len(s))]
		}
	}
	return classifyDialErr(err)
}

// indexHTTP finds the status code after "HTTP " in an admin error.
func indexHTTP(s string) int {
	for i := 0; i+8 <= len(s); i++ {
		if s[i:i+5] == "HTTP " {
			return i + 5
		}
	}
	return -1
}

// collect waits for every worker's result. A worker that fails is reported
// in the returned error; the others still count.
func (d *driver) collect() ([]*Result, error) {
	parts := make([]*Result, len(d.handles))
	errs := make([]error, len(d.handles))
	var wg sync.WaitGroup
	for i, h := range d.handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i], errs[i] = h.result()
			if errs[i] != nil {
				errs[i] = fmt.Errorf("worker %d: %w", i, errs[i])
			}
		}()
	}
	wg.Wait()
	return parts, errors.Join(errs...)
}

// finishServer takes the closing sample. It first waits (up to 5s) for the
// server to report its starting connection count, so that the drift is what
// the server kept, not what it was still closing.
func (d *driver) finishServer(parent context.Context, res *Result) {
	if !d.sampling() || d.server.Before == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 10*time.Second)
	defer cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.sampleServer(ctx, &d.server.After)
		a, b := d.server.After, d.server.Before
		// /proc has no connection count: the descriptors stand in for it,
		// with a few for the admin client's keep-alive connections.
		settled := a == nil || a.Connections <= b.Connections
		if a != nil && a.Source == SourceProc {
			settled = a.OpenFDs <= b.OpenFDs+16
		}
		if settled || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	s := d.server
	if s.Before != nil && s.After != nil {
		s.Drift = &ServerSample{
			At:          s.After.At,
			Connections: s.After.Connections - s.Before.Connections,
			RSS:         s.After.RSS - s.Before.RSS,
			OpenFDs:     s.After.OpenFDs - s.Before.OpenFDs,
			Goroutines:  s.After.Goroutines - s.Before.Goroutines,
		}
	}
	if s.Before != nil && s.Holding != nil && res.Conns.Held > 0 {
		s.RSSPerConn = (s.Holding.RSS - s.Before.RSS) / float64(res.Conns.Held)
	}
	if s.Before != nil && s.After != nil && s.Source == SourceProc {
		s.CPUSeconds = s.After.CPUSeconds - s.Before.CPUSeconds
		if secs := s.After.At.Sub(s.Before.At).Seconds(); secs > 0 {
			s.CPUPercent = 100 * s.CPUSeconds / (secs * float64(runtime.NumCPU()))
		}
	}
	res.Server = &s
}

// finishFanout folds the per-sequence receipts into completion times.
func (d *driver) finishFanout(res *Result) {
	if d.fanout == nil {
		res.Fanout = nil
		return
	}
	f := d.fanout
	if w := res.Fanout; w != nil {
		f.Delivered = w.Delivered
		f.Latency = w.Latency
		rec := NewRecorder()
		for k, ts := range d.postTS {
			if ts == 0 || k >= len(w.SeqCount) {
				continue
			}
			if w.SeqCount[k] < res.Conns.Held {
				f.Incomplete++
				continue
			}
			rec.Record(k, time.Duration(w.SeqLast[k]-ts))
		}
		f.Completion = rec.Latency()
	}
	f.Expected = int64(f.Posted) * res.Conns.Held
	res.Fanout = f
}

func (d *driver) finishClient(res *Result, busy0, total0 uint64, cpuOK bool, cpu0 float64) {
	c := &res.Client
	c.Procs = len(d.handles)
	if c.Procs > 1 {
		// The workers' own CPU is in the result; the driver's (admin
		// calls, merging) is this process's.
		user, sys, _ := selfUsage()
		c.DriverSeconds = user + sys - cpu0
	}
	c.CPUs = runtime.NumCPU()
	if secs := time.Duration(res.Elapsed).Seconds(); secs > 0 {
		c.CPUPercent = 100 * (c.UserSeconds + c.SystemSeconds + c.DriverSeconds) / (secs * float64(c.CPUs))
	}
	if busy1, total1, ok := machineCPU(); ok && cpuOK && total1 > total0 {
		c.MachineBusyPercent = 100 * float64(busy1-busy0) / float64(total1-total0)
	}
	c.Saturated = c.CPUPercent > 90
	c.Load = d.load
}

// warn adds the warnings a reader must not miss.
func (d *driver) warn(res *Result) {
	add := func(format string, a ...any) { res.Warnings = append(res.Warnings, fmt.Sprintf(format, a...)) }
	c := res.Client
	if c.Saturated {
		add("CLIENT-BOUND: wsbench used %.0f%% of %d CPUs; the figures understate the server (use -procs or another machine)", c.CPUPercent, c.CPUs)
	}
	if c.MachineBusyPercent > 95 {
		add("the machine was %.0f%% busy: client and server competed for CPU", c.MachineBusyPercent)
	}
	if res.Conns.Failures["client_fd_limit"] > 0 {
		add("the client ran out of file descriptors: use -procs to spread connections over processes")
	}
	if res.Conns.Failures["no_local_port"] > 0 {
		add("the client ran out of local ports: use -source to spread over more local addresses")
	}
	if s := res.Server; s != nil && s.Before != nil && s.Source == SourceMetrics && len(s.Before.Missing) > 0 {
		add("server /metrics lacks %v", s.Before.Missing)
	}
	if f := res.Fanout; f != nil && f.Delivered < f.Expected {
		add("fan-out delivered %d of %d expected messages", f.Delivered, f.Expected)
	}
	if l := c.Load; l != nil && l.ServerCPUSeconds > 0 && l.ClientCPUSeconds > l.ServerCPUSeconds {
		add("while loading the client used more CPU (%.1fs) than the server (%.1fs): latency may be the client's",
			l.ClientCPUSeconds, l.ServerCPUSeconds)
	}
	switch res.Stop {
	case StopInterrupted:
		add("interrupted: partial report")
	case StopDeadline:
		add("the hard deadline (%s) cut the run short: partial report", d.cfg.Deadline)
	}
}

// failureText summarises connect failures for an error message.
func failureText(c ConnStats) string {
	s := ""
	for _, k := range sortedKeys(c.Failures) {
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf("%d %s", c.Failures[k], k)
		if ex := c.FailureExample[k]; ex != "" {
			s += " (" + ex + ")"
		}
	}
	return s
}

// handle is the driver's view of one worker, in this process or a child.
type handle interface {
	ready() <-chan struct{}
	start()
	stop()
	progress() Progress
	result() (*Result, error)
}

// localHandle runs a worker in this process.
type localHandle struct {
	w                     worker
	readyC, startC, stopC chan struct{}
	startOnce, stopOnce   sync.Once
	done                  chan struct{}
	res                   *Result
}

func startLocal(ctx context.Context, cfg Config) (*localHandle, error) {
	w, err := newWorker(&cfg)
	if err != nil {
		return nil, err
	}
	h := &localHandle{
		w: w, readyC: make(chan struct{}), startC: make(chan struct{}),
		stopC: make(chan struct{}), done: make(chan struct{}),
	}
	go func() {
		defer close(h.done)
		w.connect(ctx)
		close(h.readyC)
		select {
		case <-h.startC:
			w.load(ctx, h.stopC)
		case <-h.stopC:
		case <-ctx.Done():
		}
		h.res = w.finish()
	}()
	return h, nil
}

func (h *localHandle) ready() <-chan struct{} { return h.readyC }
func (h *localHandle) start()                 { h.startOnce.Do(func() { close(h.startC) }) }
func (h *localHandle) stop()                  { h.stopOnce.Do(func() { close(h.stopC) }) }
func (h *localHandle) progress() Progress     { return h.w.progress() }
func (h *localHandle) result() (*Result, error) {
	<-h.done
	return h.res, nil
}

// encodeJSON is json.Marshal for values that cannot fail to encode.
func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("bench: encode %T: %v", v, err))
	}
	return b
}
