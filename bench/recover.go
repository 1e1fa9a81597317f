package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// ScenarioRecover is wsbench recover: N clients in a room lose their
// connections at once and rejoin with since (docs/protocol.md, Recovery).
const ScenarioRecover = "recover"

// RecoverConfig describes a recover run.
type RecoverConfig struct {
	URL        string // WebSocket endpoint
	Admin      string // admin base URL: the messages are POSTed there
	AdminToken string
	// PID is a local server's process id: its peak RSS is read from
	// /proc/PID; otherwise from Admin's /metrics.
	PID   int
	Conns int
	Room  string // room name; with Rooms > 1, Room plus the room's index
	Rooms int    // rooms, client i in room i%Rooms (default 1)
	// Before messages are published live before the drop, During while
	// every client is away (spread over Outage), After once the
	// reconnections start (Interval apart).
	Before, During, After int
	Outage                time.Duration // default 2s
	Interval              time.Duration // default 100ms
	Rate                  float64       // connections per second for the first connect (default 2000)
	Deadline              time.Duration // the whole run; default 2m
	DialTimeout           time.Duration // default 10s
	MaxDialing            int           // handshakes in flight at once; default 1000
	Sources               []netip.Addr
	UserPrefix            string
	JWTSecret             string
}

// RecoverResult is what a recover run reports. Missing, Duplicated and
// Errors are 0 when the server keeps the Recovery contract.
type RecoverResult struct {
	Conns     int   `json:"conns"`
	Rooms     int   `json:"rooms"`
	Published int   `json:"published_per_room"`
	Joined    int64 `json:"joined"` // first joins acknowledged
	// Recovered is the rejoins acknowledged with recovered:true, Gaps
	// those with recovered:false (the client must reload).
	Recovered int64 `json:"recovered"`
	Gaps      int64 `json:"gaps"`
	// Missing is the messages a client that recovered never got;
	// Duplicated, those it got again or out of order; GapMissing, the
	// messages missed by clients told recovered:false.
	Missing    int64 `json:"missing"`
	Duplicated int64 `json:"duplicated_or_reordered"`
	GapMissing int64 `json:"gap_missing"`
	// Replayed is the messages received before a rejoin's ack (from the
	// history), Live the rest.
	Replayed int64 `json:"replayed"`
	Live     int64 `json:"live"`
	Errors   int64 `json:"errors"` // error replies from the server
	// Reconnect is the handshake latency of the reconnections.
	Reconnect *Latency         `json:"reconnect"`
	Failures  map[string]int64 `json:"failures"` // failed handshakes, by reason
	// AllRecovered is from the start of the reconnections until every
	// rejoin was acknowledged; AllCaughtUp, until every client that
	// recovered also had every message published (0: not reached).
	AllRecovered  Duration `json:"all_recovered"`
	AllCaughtUp   Duration `json:"all_caught_up"`
	ServerPeakRSS int64    `json:"server_peak_rss_bytes"`
	RSSSource     string   `json:"rss_source"` // proc, metrics or none
	Stop          string   `json:"stop"`       // completed, deadline or interrupted
}

// recoverClient is one client's view of its room. next, offset and epoch
// are written by the goroutine reading its connection only.
type recoverClient struct {
	room   int
	offset int64
	epoch  string
	c      atomic.Pointer[conn]
	// next is the index of the next message the client expects.
	next      atomic.Int64
	gap       atomic.Bool
	missing   atomic.Int64
	rejoining bool // a rejoin was sent and its ack has not come
}

type recoverRun struct {
	cfg     RecoverConfig
	d       *dialer
	clients []recoverClient
	rec     *Recorder

	joined, recovered, gaps, duplicated, replayed, live, errors atomic.Int64

	mu       sync.Mutex
	failures map[string]int64
}

// recoverMsg is the part of a server message the run reads.
type recoverMsg struct {
	Type      string `json:"type"`
	ID        int    `json:"id"`
	Offset    int64  `json:"offset"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
	Data      struct {
		K *int64 `json:"k"`
	} `json:"data"`
}

// RunRecover connects the clients, joins them, publishes Before messages,
// drops every connection, publishes During messages over Outage, then
// reconnects every client at once with since while After messages follow,
// and returns once every client is caught up or at the deadline.
func RunRecover(ctx context.Context, cfg RecoverConfig, log io.Writer) (*RecoverResult, error) {
	if cfg.URL == "" || cfg.Admin == "" || cfg.Conns <= 0 || cfg.Room == "" {
		return nil, fmt.Errorf("%w: recover needs -url, -admin, -room and -conns", ErrConfig)
	}
	if cfg.Before < 0 || cfg.During < 0 || cfg.After < 0 {
		return nil, fmt.Errorf("%w: message counts must not be negative", ErrConfig)
	}
	standaloneDefaults(&cfg.Deadline, &cfg.DialTimeout, &cfg.MaxDialing)
	positive(&cfg.Outage, 2*time.Second)
	positive(&cfg.Interval, 100*time.Millisecond)
	positive(&cfg.Rooms, 1)
	if cfg.Rate <= 0 {
		cfg.Rate = 2000
	}
	if cfg.UserPrefix == "" {
		cfg.UserPrefix = "u"
	}
	bc := &Config{URLs: []string{cfg.URL}, Admin: []string{cfg.Admin}, AdminToken: cfg.AdminToken,
		UserPrefix: cfg.UserPrefix, JWTSecret: cfg.JWTSecret, JWTTTL: 5 * time.Minute,
		DialTimeout: cfg.DialTimeout, MaxDialing: cfg.MaxDialing, Sources: cfg.Sources, Scenario: ScenarioRecover}
	d, err := newDialer(bc, true)
	if err != nil {
		return nil, err
	}
	adm := newAdmin(bc)
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	r := &recoverRun{cfg: cfg, d: d, clients: make([]recoverClient, cfg.Conns), rec: NewRecorder(), failures: map[string]int64{}}
	for i := range r.clients {
		r.clients[i].room = i % cfg.Rooms
	}
	res := &RecoverResult{Conns: cfg.Conns, Rooms: cfg.Rooms, Published: cfg.Before + cfg.During + cfg.After, Stop: "deadline"}

	var sampler sync.WaitGroup
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampler.Add(1)
	go func() { defer sampler.Done(); r.sampleRSS(sampleCtx, adm, res) }()

	var wg sync.WaitGroup
	published := 0
	publish := func(k int) bool {
		for room := 0; room < cfg.Rooms; room++ {
			body := []byte(`{"k":` + strconv.Itoa(k) + `}`)
			if err := adm.post(ctx, "/v1/rooms/"+r.roomName(room)+"/messages", body); err != nil {
				if ctx.Err() == nil {
					fmt.Fprintln(log, "wsbench recover:", err)
				}
				return false
			}
		}
		published = k + 1
		return true
	}
	// Phase 1: everyone joins, then Before messages arrive live.
	pace(ctx, cfg.Conns, cfg.Rate, func(i int) {
		wg.Add(1)
		go func() { defer wg.Done(); r.session(ctx, i, true) }()
	}, nil)
	ok := r.waitFor(ctx, func() bool { return r.joined.Load() == int64(cfg.Conns) })
	for k := 0; ok && k < cfg.Before; k++ {
		ok = publish(k)
	}
	ok = ok && r.waitFor(ctx, func() bool { return r.allAt(int64(cfg.Before)) })
	if ok {
		fmt.Fprintf(log, "wsbench recover: %d clients joined and got %d messages; dropping them all\n", cfg.Conns, cfg.Before)
		// Phase 2: every connection drops; During messages over the outage.
		for i := range r.clients {
			if c := r.clients[i].c.Load(); c != nil {
				c.close()
			}
		}
		wg.Wait()
		outageEnd := time.Now().Add(cfg.Outage)
		for k := cfg.Before; ok && k < cfg.Before+cfg.During; k++ {
			ok = publish(k) && sleepCtx(ctx, cfg.Outage/time.Duration(cfg.During+1))
		}
		ok = ok && sleepCtx(ctx, time.Until(outageEnd))
	}
	if ok {
		// Phase 3: every client reconnects at once with since; After
		// messages follow, Interval apart, while they rejoin.
		start := time.Now()
		for i := range r.clients {
			wg.Add(1)
			go func() { defer wg.Done(); r.session(ctx, i, false) }()
		}
		for k := cfg.Before + cfg.During; ok && k < res.Published; k++ {
			ok = sleepCtx(ctx, cfg.Interval) && publish(k)
		}
		if r.waitFor(ctx, func() bool { return r.recovered.Load()+r.gaps.Load() == int64(cfg.Conns) }) {
			res.AllRecovered = Duration(time.Since(start))
		}
		if ok && r.waitFor(ctx, func() bool { return r.allAt(int64(published)) }) {
			res.AllCaughtUp = Duration(time.Since(start))
			res.Stop = StopCompleted
		}
	}
	if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
		res.Stop = StopInterrupted
	}
	stopSampling()
	cancel()
	for i := range r.clients {
		if c := r.clients[i].c.Load(); c != nil {
			c.close()
		}
	}
	wg.Wait()
	sampler.Wait()
	res.Joined, res.Recovered, res.Gaps = r.joined.Load(), r.recovered.Load(), r.gaps.Load()
	res.Duplicated, res.Replayed, res.Live, res.Errors = r.duplicated.Load(), r.replayed.Load(), r.live.Load(), r.errors.Load()
	for i := range r.clients {
		c := &r.clients[i]
		lost := c.missing.Load() + max(0, int64(published)-c.next.Load())
		if c.gap.Load() {
			res.GapMissing += lost
		} else {
			res.Missing += lost
		}
	}
	res.Reconnect = r.rec.Latency()
	r.mu.Lock()
	res.Failures = r.failures
	r.mu.Unlock()
	return res, nil
}

func (r *recoverRun) roomName(room int) string {
	if r.cfg.Rooms == 1 {
		return r.cfg.Room
	}
	return r.cfg.Room + strconv.Itoa(room)
}

// allAt reports whether every client that did not get a gap expects
// message k next.
func (r *recoverRun) allAt(k int64) bool {
	for i := range r.clients {
		if c := &r.clients[i]; !c.gap.Load() && c.next.Load() < k {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds (true) or ctx ends (false).
func (r *recoverRun) waitFor(ctx context.Context, cond func() bool) bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// session connects client i (retrying failed handshakes every 100 ms),
// joins its room (first: plainly; else with since its last position) and
// reads until the connection ends.
func (r *recoverRun) session(ctx context.Context, i int, first bool) {
	cl := &r.clients[i]
	var c *conn
	for c == nil {
		var took time.Duration
		var err error
		c, took, err = r.d.dial(ctx, i)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.failures[classifyDialErr(err)]++
			r.mu.Unlock()
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		if !first {
			r.rec.Record(i, took)
		}
	}
	cl.c.Store(c)
	defer cl.c.Store(nil)
	join := map[string]any{"type": "join", "room": r.roomName(cl.room), "id": 1}
	if !first {
		join["id"] = 2
		join["since"] = map[string]any{"offset": cl.offset, "epoch": cl.epoch}
		cl.rejoining = true
	}
	b, _ := json.Marshal(join)
	if c.write(ws.OpText, b) != nil {
		return
	}
	c.readLoop(func(_ ws.OpCode, p []byte) { r.onMessage(cl, p) })
}

// onMessage checks one server message against the client's position:
// published message k must come exactly when k is next.
func (r *recoverRun) onMessage(cl *recoverClient, p []byte) {
	var m recoverMsg
	if json.Unmarshal(p, &m) != nil {
		r.errors.Add(1)
		return
	}
	switch m.Type {
	case "ack":
		cl.offset, cl.epoch = m.Offset, m.Epoch
		cl.rejoining = false
		switch {
		case m.ID == 1:
			r.joined.Add(1)
		case m.Recovered != nil && *m.Recovered:
			r.recovered.Add(1)
		default:
			cl.gap.Store(true)
			r.gaps.Add(1)
		}
	case "message":
		if m.Data.K == nil {
			return
		}
		cl.offset = m.Offset
		if cl.rejoining {
			r.replayed.Add(1)
		} else {
			r.live.Add(1)
		}
		k, next := *m.Data.K, cl.next.Load()
		switch {
		case k < next:
			r.duplicated.Add(1)
		case k > next:
			cl.missing.Add(k - next)
			cl.next.Store(k + 1)
		default:
			cl.next.Store(k + 1)
		}
	case "error":
		r.errors.Add(1)
	}
}

// sampleRSS keeps the server's peak RSS: from /proc/PID with cfg.PID,
// else from the admin /metrics, every 100 ms.
func (r *recoverRun) sampleRSS(ctx context.Context, adm *admin, res *RecoverResult) {
	res.RSSSource = "none"
	client := &http.Client{Timeout: time.Second}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		var rss int64
		if r.cfg.PID > 0 {
			if s, err := procSample(r.cfg.PID); err == nil {
				rss, res.RSSSource = int64(s.RSS), SourceProc
			}
		} else if _, mem, ok := scrapeProcess(client, strings.TrimRight(adm.urls[0], "/")+"/metrics"); ok {
			rss, res.RSSSource = mem, SourceMetrics
		}
		res.ServerPeakRSS = max(res.ServerPeakRSS, rss)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
