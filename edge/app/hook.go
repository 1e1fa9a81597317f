package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// hooks asks the join hook (PolicyHook) on a fixed set of goroutines
// (Config.HookConcurrency) fed by a bounded queue (Config.HookQueue), so
// that a slow hook never holds a worker or a poller shard: a join that
// misses the cache is queued, its connection's later messages wait behind
// it (hookWait), and the answer goes back to the connection's owner
// through edge.Conn.Wake.
type hooks struct {
	url, token, node string
	client           *http.Client
	timeout          time.Duration
	queue            chan hookCall
	cache            *hookCache // nil: off
	latency          prometheus.Histogram
	results          *prometheus.CounterVec // by result
	stop             chan struct{}
	wg               sync.WaitGroup
}

// hookCall is one queued question: may user join room?
type hookCall struct {
	u    *user
	w    *hookWait
	user string
	room string
}

// hookAnswer is the hook's 200 body.
type hookAnswer struct {
	Allow   *bool `json:"allow"`
	Publish bool  `json:"publish"`
}

// maxHookAnswer bounds the hook's answer read: it is a small JSON object.
const maxHookAnswer = 4 << 10

func newHooks(cfg Config, node string) *hooks {
	h := &hooks{
		url:     cfg.JoinHook,
		token:   cfg.AdminToken,
		node:    node,
		timeout: cfg.HookTimeout,
		client: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.HookConcurrency,
			MaxConnsPerHost:     cfg.HookConcurrency,
			IdleConnTimeout:     90 * time.Second,
		}},
		queue: make(chan hookCall, cfg.HookQueue),
		stop:  make(chan struct{}),
	}
	if cfg.HookCache > 0 {
		h.cache = newHookCache(cfg.HookCache, cfg.HookCacheSize)
	}
	return h
}

// start runs the callers; finish answers each call on the connection's owner.
func (h *hooks) start(n int, finish func(hookCall)) {
	for range n {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for {
				select {
				case <-h.stop:
					return
				case c := <-h.queue:
					c.w.answer = h.ask(c.user, c.room)
					finish(c)
				}
			}
		}()
	}
}

func (h *hooks) close() {
	close(h.stop)
	h.wg.Wait()
	h.client.CloseIdleConnections()
}

// enqueue queues c; false when the queue is full.
func (h *hooks) enqueue(c hookCall) bool {
	select {
	case h.queue <- c:
		return true
	default:
		h.results.WithLabelValues("queue_full").Inc()
		return false
	}
}

// ask calls the hook once (or answers from the cache). Anything but a 200
// with {"allow":...} or a 403 is unavailable: never an allow.
func (h *hooks) ask(user, room string) decision {
	key := user + "\x00" + room
	if d, ok := h.cache.get(key); ok {
		h.results.WithLabelValues("cached").Inc()
		return d
	}
	start := time.Now()
	d, result := h.call(user, room)
	h.latency.Observe(time.Since(start).Seconds())
	h.results.WithLabelValues(result).Inc()
	if d != unavailable {
		h.cache.put(key, d)
	}
	return d
}

func (h *hooks) call(user, room string) (decision, string) {
	body, _ := json.Marshal(struct {
		User string `json:"user"`
		Room string `json:"room"`
		Node string `json:"node"`
	}{user, room, h.node})
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return unavailable, "error"
	}
	req.Header.Set("Content-Type", "application/json")
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return unavailable, "timeout"
		}
		return unavailable, "error"
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxHookAnswer+1))
	switch {
	case resp.StatusCode == http.StatusForbidden:
		return denied, "deny"
	case resp.StatusCode != http.StatusOK:
		return unavailable, "error"
	case err != nil:
		if errors.Is(err, context.DeadlineExceeded) {
			return unavailable, "timeout"
		}
		return unavailable, "error"
	}
	var ans hookAnswer
	if len(raw) > maxHookAnswer || json.Unmarshal(raw, &ans) != nil || ans.Allow == nil {
		return unavailable, "bad_answer"
	}
	switch {
	case !*ans.Allow:
		return denied, "deny"
	case ans.Publish:
		return allowedPub, "allow"
	}
	return allowed, "allow"
}

// hookCache keeps the hook's answers per user and room for a while. An
// entry's expiry is checked when it is read, so nothing sweeps; at the size
// bound an arbitrary entry makes room (Go's map order), O(1).
type hookCache struct {
	ttl  time.Duration
	size int
	mu   sync.Mutex
	m    map[string]cachedAnswer
}

type cachedAnswer struct {
	d   decision
	exp int64 // unix nanoseconds
}

func newHookCache(ttl time.Duration, size int) *hookCache {
	return &hookCache{ttl: ttl, size: size, m: make(map[string]cachedAnswer)}
}

func (c *hookCache) get(key string) (decision, bool) {
	if c == nil {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return 0, false
	}
	if time.Now().UnixNano() >= e.exp {
		delete(c.m, key)
		return 0, false
	}
	return e.d, true
}

func (c *hookCache) put(key string, d decision) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.size {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = cachedAnswer{d: d, exp: time.Now().Add(c.ttl).UnixNano()}
}
