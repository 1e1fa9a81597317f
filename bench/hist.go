package bench

import (
	"fmt"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1µs to 10 minutes with three
// significant digits; a value above the top is clamped and counted.
const (
	histLowest  = 1
	histHighest = int64(10 * time.Minute / time.Microsecond)
	histDigits  = 3
	// recorderShards spreads concurrent Record calls over this many locks;
	// connections pick a shard by their index.
	recorderShards = 8
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

// Recorder is a latency histogram safe for concurrent use.
type Recorder struct {
	shards [recorderShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
		_  [40]byte // keep shards on separate cache lines
	}
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	r := &Recorder{}
	for i := range r.shards {
		r.shards[i].h = newHist()
	}
	return r
}

// Record adds one latency; hint picks the shard (a connection index).
func (r *Recorder) Record(hint int, d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < histLowest {
		us = histLowest
	}
	if us > histHighest {
		us = histHighest
	}
	s := &r.shards[uint(hint)%recorderShards]
	s.mu.Lock()
	_ = s.h.RecordValue(us) // cannot fail: us is clamped into range
	s.mu.Unlock()
}

// Latency merges the shards into a summary that carries its histogram.
func (r *Recorder) Latency() *Latency {
	h := newHist()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		h.Merge(s.h)
		s.mu.Unlock()
	}
	return latencyOf(h)
}

// Latency is a latency distribution: percentiles for people, and the
// HdrHistogram (V2 compressed, base64) so that results from several
// processes merge exactly.
type Latency struct {
	Count int64    `json:"count"`
	Min   Duration `json:"min"`
	Mean  Duration `json:"mean"`
	P50   Duration `json:"p50"`
	P90   Duration `json:"p90"`
	P99   Duration `json:"p99"`
	P999  Duration `json:"p999"`
	Max   Duration `json:"max"`
	HDR   string   `json:"hdr,omitempty"`

	h *hdrhistogram.Histogram
}

func latencyOf(h *hdrhistogram.Histogram) *Latency {
	us := func(v int64) Duration { return Duration(time.Duration(v) * time.Microsecond) }
	l := &Latency{h: h, Count: h.TotalCount()}
	if l.Count > 0 {
		l.Min = us(h.Min())
		l.Mean = Duration(time.Duration(h.Mean() * float64(time.Microsecond)))
		l.P50 = us(h.ValueAtQuantile(50))
		l.P90 = us(h.ValueAtQuantile(90))
		l.P99 = us(h.ValueAtQuantile(99))
		l.P999 = us(h.ValueAtQuantile(99.9))
		l.Max = us(h.Max())
	}
	if enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err == nil {
		l.HDR = string(enc)
	}
	return l
}

// hist returns the histogram behind l, decoding it after a JSON round trip.
func (l *Latency) hist() (*hdrhistogram.Histogram, error) {
	if l.h != nil {
		return l.h, nil
	}
	if l.HDR == "" {
		return newHist(), nil
	}
	h, err := hdrhistogram.Decode([]byte(l.HDR))
	if err != nil {
		return nil, fmt.Errorf("decode latency histogram: %w", err)
	}
	l.h = h
	return h, nil
}

// mergeLatency merges distributions; nil inputs are skipped, and the result
// is nil only when all are nil.
func mergeLatency(ls ...*Latency) (*Latency, error) {
	var out *hdrhistogram.Histogram
	for _, l := range ls {
		if l == nil {
			continue
		}
		h, err := l.hist()
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = newHist()
		}
		out.Merge(h)
	}
	if out == nil {
		return nil, nil
	}
	return latencyOf(out), nil
}

// Duration is a time.Duration that marshals as nanoseconds in JSON and
// prints rounded for people.
type Duration time.Duration

// String rounds to three significant digits.
func (d Duration) String() string {
	t := time.Duration(d)
	switch {
	case t == 0:
		return "0"
	case t < time.Microsecond:
		return t.String()
	case t < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(t)/float64(time.Microsecond))
	case t < time.Second:
		return fmt.Sprintf("%.3gms", float64(t)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3gs", t.Seconds())
	}
}
