package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// ScenarioStorm is wsbench storm: N clients that reconnect the way
// clients/js does, held while the server restarts.
const ScenarioStorm = "storm"

// StormConfig describes a storm run.
type StormConfig struct {
	URL   string   // WebSocket endpoint
	Admin []string // admin base URLs whose /metrics are sampled (old and new server)
	Conns int
	Rate  float64 // connections per second while ramping up (0: 1000)
	// RestartCmd, when set, runs (sh -c) once every client is connected;
	// otherwise the operator restarts the server.
	RestartCmd  string
	Deadline    time.Duration // the whole run; default 2m
	DialTimeout time.Duration // default 10s
	MaxDialing  int           // handshakes in flight at once; default 1000
	UserPrefix  string
	JWTSecret   string
	// Sources are local addresses bound round robin, as in Config: one
	// address runs out of ephemeral ports (and into the server's
	// per-address pending bound) at 19,000 reconnecting clients.
	Sources []netip.Addr
	// BackoffBase and BackoffCap are clients/js's full-jitter backoff
	// (defaults 500ms, 20s); HintJitter is added to a reconnect hint's
	// after_ms (default 1s).
	BackoffBase, BackoffCap, HintJitter time.Duration
}

// StormResult is what a storm run reports.
type StormResult struct {
	Conns int `json:"conns"`
	// Lost is the clients that lost their connection at least once;
	// Hinted, those that got a reconnect hint first.
	Lost   int64 `json:"lost"`
	Hinted int64 `json:"hinted"`
	// AllBack is from the first lost connection until every client was
	// connected again (0: not within the deadline).
	AllBack Duration `json:"all_back"`
	// Connect is the handshake latency of reconnections during the storm.
	Connect  *Latency         `json:"connect"`
	Failures map[string]int64 `json:"failures"` // failed handshakes during the storm, by reason
	// PeakConnectRate is the most reconnections completed in one second.
	PeakConnectRate int64 `json:"peak_connect_rate"`
	// PeakConnect100ms is the most in one 100 ms bucket: at one second a
	// burst of N clients can show no more than N, which hides how fast it was.
	PeakConnect100ms int64 `json:"peak_connect_100ms"`
	// MaxDown is the longest any client went without a connection;
	// MaxOverWait, the longest beyond the wait it chose when it lost it
	// (hint plus jitter, else its first backoff): failed attempts and the
	// handshake.
	MaxDown       Duration `json:"max_down"`
	MaxOverWait   Duration `json:"max_over_wait"`
	ServerPeakCPU float64  `json:"server_peak_cpu_cores"` // from the first lost connection on
	ServerPeakRSS int64    `json:"server_peak_rss_bytes"`
	Stop          string   `json:"stop"` // all_back, deadline or interrupted
}

type storm struct {
	cfg  StormConfig
	d    *dialer
	log  io.Writer
	rec  *Recorder
	t0   time.Time
	conn []atomic.Pointer[conn]

	connected, lost, hinted atomic.Int64
	stormAt                 atomic.Int64 // ns since t0 of the first loss; 0: none yet
	buckets                 []atomic.Int64
	maxDown, maxOverWait    atomic.Int64 // ns
	mu                      sync.Mutex
	failures                map[string]int64
}

// stormBucket is the resolution of the connect-rate count.
const stormBucket = 100 * time.Millisecond

// RunStorm opens the clients, waits for the restart (running RestartCmd if
// set) and returns once every client that lost its connection is back, or
// at the deadline.
func RunStorm(ctx context.Context, cfg StormConfig, log io.Writer) (*StormResult, error) {
	if cfg.URL == "" || cfg.Conns <= 0 {
		return nil, fmt.Errorf("%w: storm needs -url and -conns", ErrConfig)
	}
	standaloneDefaults(&cfg.Deadline, &cfg.DialTimeout, &cfg.MaxDialing)
	positive(&cfg.BackoffBase, 500*time.Millisecond)
	positive(&cfg.BackoffCap, 20*time.Second)
	positive(&cfg.HintJitter, time.Second)
	if cfg.Rate <= 0 {
		cfg.Rate = 1000
	}
	if cfg.UserPrefix == "" {
		cfg.UserPrefix = "u"
	}
	bc := &Config{URLs: []string{cfg.URL}, UserPrefix: cfg.UserPrefix, JWTSecret: cfg.JWTSecret,
		DialTimeout: cfg.DialTimeout, MaxDialing: cfg.MaxDialing, Sources: cfg.Sources, Scenario: ScenarioStorm}
	d, err := newDialer(bc, false)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	s := &storm{cfg: cfg, d: d, log: log, rec: NewRecorder(), t0: time.Now(),
		conn: make([]atomic.Pointer[conn], cfg.Conns), failures: map[string]int64{},
		buckets: make([]atomic.Int64, cfg.Deadline/stormBucket+1)}
	res := &StormResult{Conns: cfg.Conns, Stop: "deadline"}
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() { defer sampler.Done(); s.sampleServer(ctx, res) }()
	var clients sync.WaitGroup
	pace(ctx, cfg.Conns, cfg.Rate, func(i int) {
		clients.Add(1)
		go func() { defer clients.Done(); s.client(ctx, i) }()
	}, nil)
	s.waitFor(ctx, func() bool { return s.connected.Load() == int64(cfg.Conns) })
	if ctx.Err() == nil {
		fmt.Fprintf(log, "wsbench storm: %d clients connected; ", cfg.Conns)
		if cfg.RestartCmd != "" {
			fmt.Fprintf(log, "running %q\n", cfg.RestartCmd)
			cmd := exec.CommandContext(ctx, "sh", "-c", cfg.RestartCmd)
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Start(); err != nil {
				return nil, fmt.Errorf("-restart-cmd: %w", err)
			}
			go func() { _ = cmd.Wait() }()
		} else {
			fmt.Fprintln(log, "restart the server now")
		}
	}
	s.waitFor(ctx, func() bool { return s.stormAt.Load() != 0 && s.connected.Load() == int64(cfg.Conns) })
	if at := s.stormAt.Load(); at != 0 && s.connected.Load() == int64(cfg.Conns) {
		res.AllBack = Duration(time.Since(s.t0) - time.Duration(at))
		res.Stop = "all_back"
	} else if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
		res.Stop = "interrupted"
	}
	cancel()
	for i := range s.conn {
		if c := s.conn[i].Load(); c != nil {
			c.close()
		}
	}
	clients.Wait()
	sampler.Wait()
	res.Lost, res.Hinted = s.lost.Load(), s.hinted.Load()
	res.Connect = s.rec.Latency()
	s.mu.Lock()
	res.Failures = s.failures
	s.mu.Unlock()
	res.MaxDown, res.MaxOverWait = Duration(s.maxDown.Load()), Duration(s.maxOverWait.Load())
	for i := range s.buckets {
		res.PeakConnect100ms = max(res.PeakConnect100ms, s.buckets[i].Load())
		var sum int64
		for j := i; j < len(s.buckets) && j < i+int(time.Second/stormBucket); j++ {
			sum += s.buckets[j].Load()
		}
		res.PeakConnectRate = max(res.PeakConnectRate, sum)
	}
	return res, nil
}

// waitFor polls cond until it holds or ctx ends.
func (s *storm) waitFor(ctx context.Context, cond func() bool) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// client is one simulated clients/js connection: connect, read until the
// connection ends, wait (the server's hint plus jitter, else full-jitter
// backoff), connect again.
func (s *storm) client(ctx context.Context, i int) {
	attempt := 0
	wasLost := false
	var lostAt time.Time // zero: not in an outage
	var wait time.Duration
	for ctx.Err() == nil {
		c, took, err := s.d.dial(ctx, i)
		storming := s.stormAt.Load() != 0
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if storming {
				s.mu.Lock()
				s.failures[classifyDialErr(err)]++
				s.mu.Unlock()
			}
			attempt++
			if !sleepCtx(ctx, s.backoff(attempt)) {
				return
			}
			continue
		}
		if !lostAt.IsZero() {
			down := time.Since(lostAt)
			storeMax(&s.maxDown, int64(down))
			storeMax(&s.maxOverWait, int64(down-wait))
			lostAt = time.Time{}
		}
		if storming {
			s.rec.Record(i, took)
			if b := int(time.Since(s.t0) / stormBucket); b < len(s.buckets) {
				s.buckets[b].Add(1)
			}
		}
		attempt = 0
		s.conn[i].Store(c)
		s.connected.Add(1)
		hint := -1
		c.readLoop(func(_ ws.OpCode, p []byte) {
			var m struct {
				Type    string `json:"type"`
				AfterMs *int   `json:"after_ms"`
			}
			if json.Unmarshal(p, &m) == nil && m.Type == "reconnect" && m.AfterMs != nil {
				hint = *m.AfterMs
			}
		})
		s.connected.Add(-1)
		s.conn[i].Store(nil)
		if ctx.Err() != nil {
			return
		}
		lostAt = time.Now()
		s.stormAt.CompareAndSwap(0, int64(lostAt.Sub(s.t0)))
		if !wasLost {
			wasLost = true
			s.lost.Add(1)
			if hint >= 0 {
				s.hinted.Add(1)
			}
		}
		delay := s.backoff(0)
		if hint >= 0 {
			delay = time.Duration(hint)*time.Millisecond + time.Duration(rand.Int64N(int64(s.cfg.HintJitter)))
		}
		wait = delay
		if !sleepCtx(ctx, delay) {
			return
		}
	}
}

func storeMax(v *atomic.Int64, n int64) {
	for old := v.Load(); n > old && !v.CompareAndSwap(old, n); old = v.Load() {
	}
}

// backoff is clients/js's backoffDelay: uniform in [0, min(cap, base*2^attempt)).
func (s *storm) backoff(attempt int) time.Duration {
	ceiling := s.cfg.BackoffCap
	if attempt < 30 {
		ceiling = min(ceiling, s.cfg.BackoffBase<<attempt)
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sampleServer reads process_cpu_seconds_total and
// process_resident_memory_bytes from each admin URL every 250 ms and keeps
// the peaks (CPU summed over the servers sampled at once: old and new).
func (s *storm) sampleServer(ctx context.Context, res *StormResult) {
	if len(s.cfg.Admin) == 0 {
		return
	}
	type last struct {
		cpu float64
		at  time.Time
	}
	prev := make([]last, len(s.cfg.Admin))
	client := &http.Client{Timeout: time.Second}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var cores float64
		var rss int64
		for i, base := range s.cfg.Admin {
			cpu, mem, ok := scrapeProcess(client, strings.TrimRight(base, "/")+"/metrics")
			now := time.Now()
			if !ok {
				prev[i] = last{}
				continue
			}
			if p := prev[i]; !p.at.IsZero() && cpu >= p.cpu {
				cores += (cpu - p.cpu) / now.Sub(p.at).Seconds()
			}
			prev[i] = last{cpu, now}
			rss += mem
		}
		// CPU from the restart on: the ramp before it is not the storm's.
		if s.stormAt.Load() != 0 {
			res.ServerPeakCPU = max(res.ServerPeakCPU, cores)
		}
		res.ServerPeakRSS = max(res.ServerPeakRSS, rss)
	}
}

func scrapeProcess(client *http.Client, url string) (cpu float64, rss int64, ok bool) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, found := strings.Cut(sc.Text(), " ")
		if !found {
			continue
		}
		switch name {
		case "process_cpu_seconds_total":
			cpu, _ = strconv.ParseFloat(val, 64)
			ok = true
		case "process_resident_memory_bytes":
			f, _ := strconv.ParseFloat(val, 64)
			rss = int64(f)
		}
	}
	return cpu, rss, ok
}

// standaloneDefaults fills what storm and recover share: the whole run's
// deadline (2m), one dial's limit (10s) and the handshakes in flight (1000).
func standaloneDefaults(deadline, dialTimeout *time.Duration, maxDialing *int) {
	positive(deadline, 2*time.Minute)
	positive(dialTimeout, 10*time.Second)
	positive(maxDialing, 1000)
}

// positive sets *v to d unless *v is positive.
func positive[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
