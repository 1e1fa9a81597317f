package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// worker is the client side of a scenario in one process. The driver calls
// connect, then load until stop is closed, then finish, each once and in
// that order; progress may be called at any time from any goroutine.
type worker interface {
	connect(ctx context.Context)
	load(ctx context.Context, stop <-chan struct{})
	finish() *Result
	progress() Progress
}

func newWorker(cfg *Config) (worker, error) {
	buffered := cfg.Scenario != ScenarioIdle && cfg.Scenario != ScenarioChurn
	p, err := newPool(cfg, buffered)
	if err != nil {
		return nil, err
	}
	switch cfg.Scenario {
	case ScenarioIdle:
		return &idleWorker{pool: p}, nil
	case ScenarioEcho:
		return &echoWorker{pool: p, rtt: NewRecorder()}, nil
	case ScenarioFanout:
		return newFanoutWorker(p), nil
	case ScenarioChat:
		return &chatWorker{pool: p, delivery: NewRecorder(), ack: NewRecorder(), codes: map[string]int64{}}, nil
	case ScenarioChurn:
		return &churnWorker{pool: p}, nil
	}
	return nil, fmt.Errorf("%w: unknown scenario %q", ErrConfig, cfg.Scenario)
}

func discard(*conn, ws.OpCode, []byte) {}

// finishPool closes the connections and fills the common result fields.
func finishPool(p *pool) *Result {
	held := p.held
	r := &Result{Scenario: p.cfg.Scenario}
	peakRSS := selfRSS()
	p.closeAll()
	p.fill(r, held)
	user, sys, maxRSS := selfUsage()
	r.Client = ClientStats{
		UserSeconds: user - p.userBefore, SystemSeconds: sys - p.sysBefore, PeakRSS: maxRSS,
		Goroutines: max(p.goroutines, int64(runtime.NumGoroutine())),
		IO:         p.io(),
	}
	b := &p.d.bytes
	r.Wire = &WireStats{Offered: p.cfg.Compression, Negotiated: b.negotiated.Load(), In: b.in.load(), Out: b.out.load()}
	if held > 0 && peakRSS > p.rssBefore {
		r.Client.RSSPerConn = float64(peakRSS-p.rssBefore) / float64(held)
	}
	return r
}

// idle: open, hold, close.
type idleWorker struct {
	*pool
}

func (w *idleWorker) connect(ctx context.Context) {
	w.openAll(ctx, w.cfg.Conns, w.cfg.Rate, discard)
}

func (w *idleWorker) load(ctx context.Context, stop <-chan struct{}) {
	w.markHeld()
	select {
	case <-ctx.Done():
	case <-stop:
	}
}

func (w *idleWorker) finish() *Result { return finishPool(w.pool) }

// echo: every message carries its send time in its first 8 bytes; the
// round trip is measured when it comes back.
type echoWorker struct {
	*pool
	rtt     *Recorder
	loading atomic.Bool
	began   time.Time
	ended   time.Time
	late    atomic.Int64 // open-loop sends more than 10ms behind schedule
}

func (w *echoWorker) connect(ctx context.Context) {
	w.openAll(ctx, w.cfg.Conns, w.cfg.ConnectRate, w.onMessage)
}

func (w *echoWorker) payload(ts time.Time) []byte {
	b := make([]byte, w.cfg.Size)
	binary.LittleEndian.PutUint64(b, uint64(ts.UnixNano()))
	for i := 8; i < len(b); i++ {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

func (w *echoWorker) onMessage(c *conn, op ws.OpCode, b []byte) {
	if !w.loading.Load() || len(b) < 8 {
		return
	}
	now := time.Now()
	sent := time.Unix(0, int64(binary.LittleEndian.Uint64(b)))
	w.rtt.Record(c.idx, now.Sub(sent))
	w.received.Add(1)
	if w.cfg.ClosedLoop {
		binary.LittleEndian.PutUint64(b, uint64(now.UnixNano()))
		if err := c.write(ws.OpBinary, b); err != nil {
			w.errs.Add(1)
			return
		}
		w.sent.Add(1)
	}
}

func (w *echoWorker) load(ctx context.Context, stop <-chan struct{}) {
	w.markHeld()
	w.began = time.Now()
	w.loading.Store(true)
	conns := w.snapshot()
	var wg sync.WaitGroup
	if w.cfg.ClosedLoop {
		for _, c := range conns {
			if c.write(ws.OpBinary, w.payload(time.Now())) == nil {
				w.sent.Add(1)
			}
		}
	} else if len(conns) > 0 {
		// Open loop: each sender owns a share of the connections and of
		// the rate. The payload carries the scheduled send time, so a
		// stalled sender shows up as latency (no coordinated omission).
		senders := min(len(conns), 2*runtime.GOMAXPROCS(0))
		rate := w.cfg.Rate / float64(senders)
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.sendOpenLoop(ctx, stop, conns, s, senders, rate)
			}()
		}
	}
	select {
	case <-ctx.Done():
	case <-stop:
	}
	w.loading.Store(false)
	w.ended = time.Now()
	wg.Wait()
}

func (w *echoWorker) sendOpenLoop(ctx context.Context, stop <-chan struct{}, conns []*conn, s, step int, rate float64) {
	start := time.Now()
	buf := w.payload(start)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i, k := 0, s; ; i, k = i+1, k+step {
		if k >= len(conns) {
			k = s
		}
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if time.Until(due) < -10*time.Millisecond {
			w.late.Add(1) // the sender fell behind its schedule
		}
		if !sleepUntil(ctx, stop, timer, due) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		default:
		}
		binary.LittleEndian.PutUint64(buf, uint64(due.UnixNano()))
		if err := conns[k].write(ws.OpBinary, buf); err != nil {
			w.errs.Add(1)
			continue
		}
		w.sent.Add(1)
	}
}

func (w *echoWorker) finish() *Result {
	r := finishPool(w.pool)
	secs := w.ended.Sub(w.began).Seconds()
	r.Messages = &MessageStats{
		Sent: w.sent.Load(), Received: w.received.Load(), LoadSeconds: secs,
		Latency: w.rtt.Latency(),
	}
	if secs > 0 {
		r.Messages.PerSec = float64(r.Messages.Received) / secs
	}
	if late := w.late.Load(); late > 0 && late*20 > r.Messages.Sent {
		r.Warnings = append(r.Warnings, fmt.Sprintf(
			"client fell behind the send schedule: %d of %d sends were more than 10ms late (latency includes that delay)", late, r.Messages.Sent))
	}
	return r
}

// serverMsg is the subset of the wsedge client protocol that bench reads.
type serverMsg struct {
	Type string          `json:"type"`
	ID   string          `json:"id"`
	Code string          `json:"code"`
	Data json.RawMessage `json:"data"`
}

// stamp is the data bench puts in every message it sends or has pushed.
type stamp struct {
	TS  int64 `json:"ts"`
	Seq int   `json:"seq"`
}

// fanout: clients wait for pushed messages {"ts":..,"seq":k}.
type fanoutWorker struct {
	*pool
	lat      *Recorder
	seqCount []atomic.Int64
	seqLast  []atomic.Int64
	joined   atomic.Int64
}

func newFanoutWorker(p *pool) *fanoutWorker {
	return &fanoutWorker{
		pool: p, lat: NewRecorder(),
		seqCount: make([]atomic.Int64, p.cfg.Messages),
		seqLast:  make([]atomic.Int64, p.cfg.Messages),
	}
}

func (w *fanoutWorker) connect(ctx context.Context) {
	w.openAll(ctx, w.cfg.Conns, w.cfg.ConnectRate, w.onMessage)
	if w.cfg.Room == "" {
		return
	}
	join, _ := json.Marshal(map[string]string{"type": "join", "room": w.cfg.Room, "id": "join"})
	want := int64(0)
	for _, c := range w.snapshot() {
		if c.write(ws.OpText, join) == nil {
			want++
		}
	}
	deadline := time.Now().Add(w.cfg.DialTimeout)
	for w.joined.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if n := w.joined.Load(); n < want {
		w.errs.Add(want - n)
	}
}

func (w *fanoutWorker) onMessage(c *conn, op ws.OpCode, b []byte) {
	now := time.Now()
	s, ok := pushedStamp(b)
	if !ok {
		var m serverMsg
		if json.Unmarshal(b, &m) != nil {
			return
		}
		switch m.Type {
		case "ack":
			if m.ID == "join" {
				w.joined.Add(1)
			}
			return
		case "message":
			if json.Unmarshal(m.Data, &s) != nil {
				return
			}
		default:
			return
		}
	}
	if s.TS == 0 || s.Seq < 0 || s.Seq >= len(w.seqCount) {
		return
	}
	w.lat.Record(c.idx, now.Sub(time.Unix(0, s.TS)))
	w.received.Add(1)
	w.seqCount[s.Seq].Add(1)
	for last := w.seqLast[s.Seq].Load(); now.UnixNano() > last; last = w.seqLast[s.Seq].Load() {
		if w.seqLast[s.Seq].CompareAndSwap(last, now.UnixNano()) {
			break
		}
	}
}

func (w *fanoutWorker) load(ctx context.Context, stop <-chan struct{}) {
	w.markHeld()
	select {
	case <-ctx.Done():
	case <-stop:
	}
}

func (w *fanoutWorker) finish() *Result {
	r := finishPool(w.pool)
	f := &FanoutStats{
		Delivered: w.received.Load(), Latency: w.lat.Latency(),
		SeqCount: make([]int64, len(w.seqCount)), SeqLast: make([]int64, len(w.seqLast)),
	}
	for i := range w.seqCount {
		f.SeqCount[i] = w.seqCount[i].Load()
		f.SeqLast[i] = w.seqLast[i].Load()
	}
	r.Fanout = f
	return r
}

// pushedStamp reads the stamp of a pushed message in the exact form wsedge
// sends it, {"type":"message",...,"data":{"ts":N,"seq":K}} or with the
// padding fanoutBody adds after K (bench's own POST body), without encoding/json, whose two decodes per message were a fifth
// of the client's CPU at 19,000 connections; false for anything else, which
// the caller decodes in full.
func pushedStamp(b []byte) (stamp, bool) {
	const head, data, seq = `{"type":"message",`, `"data":{"ts":`, `,"seq":`
	if !bytes.HasPrefix(b, []byte(head)) {
		return stamp{}, false
	}
	i := bytes.Index(b, []byte(data))
	if i < 0 {
		return stamp{}, false
	}
	rest := b[i+len(data):]
	ts, n := leadingInt(rest)
	if n == 0 || !bytes.HasPrefix(rest[n:], []byte(seq)) {
		return stamp{}, false
	}
	rest = rest[n+len(seq):]
	k, n := leadingInt(rest)
	if n == 0 || (!bytes.HasPrefix(rest[n:], []byte("}}")) && !bytes.HasPrefix(rest[n:], []byte(`,"items":[`))) {
		return stamp{}, false // what follows the seq is the padding of -size (fanoutBody)
	}
	return stamp{TS: ts, Seq: int(k)}, true
}

// leadingInt parses the decimal digits at the start of b and returns the
// value and how many bytes it used; 0 used for none or an int64 overflow.
func leadingInt(b []byte) (int64, int) {
	var v int64
	n := 0
	for ; n < len(b) && b[n] >= '0' && b[n] <= '9'; n++ {
		d := int64(b[n] - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, 0
		}
		v = v*10 + d
	}
	return v, n
}

// chat: clients send to random other users and measure delivery (from the
// timestamp in data) and acknowledgement (from the timestamp in the id).
type chatWorker struct {
	*pool
	delivery, ack *Recorder
	acks          atomic.Int64
	mu            sync.Mutex
	codes         map[string]int64
	began, ended  time.Time
}

func (w *chatWorker) connect(ctx context.Context) {
	w.openAll(ctx, w.cfg.Conns, w.cfg.ConnectRate, w.onMessage)
}

func (w *chatWorker) onMessage(c *conn, op ws.OpCode, b []byte) {
	now := time.Now()
	var m serverMsg
	if json.Unmarshal(b, &m) != nil {
		return
	}
	switch m.Type {
	case "message":
		var s stamp
		if json.Unmarshal(m.Data, &s) != nil || s.TS == 0 {
			return
		}
		w.delivery.Record(c.idx, now.Sub(time.Unix(0, s.TS)))
		w.received.Add(1)
	case "ack":
		if ts, err := strconv.ParseInt(m.ID, 10, 64); err == nil {
			w.ack.Record(c.idx, now.Sub(time.Unix(0, ts)))
			w.acks.Add(1)
		}
	case "error":
		w.errs.Add(1)
		w.mu.Lock()
		w.codes[m.Code]++
		w.mu.Unlock()
	}
}

func (w *chatWorker) load(ctx context.Context, stop <-chan struct{}) {
	w.markHeld()
	w.began = time.Now()
	conns := w.snapshot()
	var wg sync.WaitGroup
	if len(conns) > 0 {
		senders := min(len(conns), 2*runtime.GOMAXPROCS(0))
		rate := w.cfg.Rate / float64(senders)
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.send(ctx, stop, conns, rate)
			}()
		}
	}
	select {
	case <-ctx.Done():
	case <-stop:
	}
	w.ended = time.Now()
	wg.Wait()
	// Let the replies to messages in flight arrive (bounded), so that sent,
	// acked and errors add up, and so that every acked message, already
	// written to its recipient, is read before the sockets close.
	drain := time.Now().Add(2 * time.Second)
	for (w.acks.Load()+w.replyErrors() < w.sent.Load() || w.received.Load() < w.acks.Load()) &&
		time.Now().Before(drain) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *chatWorker) replyErrors() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sumCounts(w.codes)
}

func (w *chatWorker) send(ctx context.Context, stop <-chan struct{}, conns []*conn, rate float64) {
	total := w.cfg.TotalUsers
	pace(ctx, int(^uint(0)>>1), rate, func(int) {
		select {
		case <-stop:
			return
		default:
		}
		c := conns[rand.IntN(len(conns))]
		to := rand.IntN(total - 1)
		if to >= c.idx {
			to++ // anyone but the sender
		}
		now := time.Now().UnixNano()
		msg, _ := json.Marshal(struct {
			Type string `json:"type"`
			To   string `json:"to"`
			Data stamp  `json:"data"`
			ID   string `json:"id"`
		}{"send", w.d.userID(to), stamp{TS: now}, strconv.FormatInt(now, 10)})
		if err := c.write(ws.OpText, msg); err != nil {
			w.errs.Add(1)
			return
		}
		w.sent.Add(1)
	}, stop)
}

func (w *chatWorker) finish() *Result {
	r := finishPool(w.pool)
	secs := w.ended.Sub(w.began).Seconds()
	w.mu.Lock()
	codes := nonEmpty(w.codes)
	w.mu.Unlock()
	r.Messages = &MessageStats{
		Sent: w.sent.Load(), Received: w.received.Load(), LoadSeconds: secs,
		Latency: w.delivery.Latency(), Acks: w.acks.Load(), AckLatency: w.ack.Latency(),
		ErrorsByCode: codes,
	}
	if secs > 0 {
		r.Messages.PerSec = float64(r.Messages.Received) / secs
	}
	return r
}

// churn: a ring of Conns slots; at Rate per second the next slot's
// connection is closed and a new one opened for a new user, so about Conns
// stay open and each lives Conns/Rate seconds.
type churnWorker struct {
	*pool
}

func (w *churnWorker) connect(context.Context) {}

func (w *churnWorker) load(ctx context.Context, stop <-chan struct{}) {
	rate := w.cfg.Rate
	pace(ctx, int(^uint(0)>>1), rate, func(i int) {
		slot := i % w.cfg.Conns
		if old := w.get(slot); old != nil {
			old.close()
		}
		// Each round of the ring connects new users: a dial still in flight
		// when its slot comes round again must not replace (4000) the
		// connection that follows it, which the client would count as lost.
		user := w.cfg.FirstUser + slot + (i/w.cfg.Conns)*max(w.cfg.TotalUsers, w.cfg.Conns)
		w.dials.Add(1)
		go func() {
			defer w.dials.Done()
			_, _ = w.openOne(ctx, slot, user, discard)
		}()
	}, stop)
}

func (w *churnWorker) finish() *Result {
	return finishPool(w.pool)
}
