package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ThresholdHelp documents the -fail-on grammar (shown by wsbench -h).
const ThresholdHelp = `-fail-on takes comma-separated conditions METRIC OP VALUE; the run
fails (exit code 1) when ANY condition is true. OP is one of > >= < <= == !=.
VALUE is a number with an optional unit: ns us ms s m for latencies,
B KB MB GB KiB MiB GiB for bytes, % for percentages.
Metrics:
  errors            all errors (failed connects, drops, error replies, failed POSTs)
  failures          failed connects        drops   established connections lost
  conns             connections held       established   connections opened
  p50 p90 p99 p999 max   the scenario's latency: connect (idle, churn),
                    round trip (echo), delivery (fanout, chat)
  connect_p50 connect_p99 connect_max   handshake latency
  completion_p50 completion_p99 completion_max   fanout POST to last client
  msgs_per_sec      received messages per second (echo, chat)
  delivered_pct     fanout deliveries / expected; chat received / sent
  rss_per_conn      server RSS per held connection (needs -admin)
  client_cpu        wsbench CPU, percent of all CPUs
  drift_fds drift_goroutines drift_rss   server after - before (needs -admin)
A metric the run did not measure counts as failed.
Example: -fail-on 'errors>0,p99>50ms,rss_per_conn>8KiB'`

// Threshold is one -fail-on condition.
type Threshold struct {
	Metric string
	Op     string
	Value  float64
	Text   string
}

var thresholdOps = []string{">=", "<=", "==", "!=", ">", "<"}

// ParseThresholds parses a -fail-on value.
func ParseThresholds(s string) ([]Threshold, error) {
	var out []Threshold
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t := Threshold{Text: part}
		for _, op := range thresholdOps {
			if i := strings.Index(part, op); i > 0 {
				t.Metric, t.Op = strings.TrimSpace(part[:i]), op
				v, err := parseValue(strings.TrimSpace(part[i+len(op):]))
				if err != nil {
					return nil, fmt.Errorf("%w: -fail-on %q: %v", ErrConfig, part, err)
				}
				t.Value = v
				break
			}
		}
		if t.Op == "" {
			return nil, fmt.Errorf("%w: -fail-on %q: want METRIC OP VALUE", ErrConfig, part)
		}
		if _, known := metricGetters[t.Metric]; !known {
			return nil, fmt.Errorf("%w: -fail-on %q: unknown metric %q", ErrConfig, part, t.Metric)
		}
		out = append(out, t)
	}
	return out, nil
}

var valueUnits = []struct {
	suffix string
	scale  float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"ns", float64(time.Nanosecond)}, {"us", float64(time.Microsecond)},
	{"µs", float64(time.Microsecond)}, {"ms", float64(time.Millisecond)},
	{"s", float64(time.Second)}, {"m", float64(time.Minute)},
	{"B", 1}, {"%", 1},
}

// parseValue reads a number with an optional unit; latencies come out in
// nanoseconds, sizes in bytes.
func parseValue(s string) (float64, error) {
	for _, u := range valueUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil {
				return 0, fmt.Errorf("bad number %q", num)
			}
			return v * u.scale, nil
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return v, nil
}

// mainLatency is the latency the plain p50..max metrics refer to.
func (r *Result) mainLatency() *Latency {
	switch r.Scenario {
	case ScenarioEcho, ScenarioChat:
		if r.Messages != nil {
			return r.Messages.Latency
		}
		return nil
	case ScenarioFanout:
		if r.Fanout != nil {
			return r.Fanout.Latency
		}
		return nil
	}
	return r.Conns.Connect
}

func latencyGetter(pick func(*Result) *Latency, q func(*Latency) Duration) func(*Result) (float64, bool) {
	return func(r *Result) (float64, bool) {
		l := pick(r)
		if l == nil || l.Count == 0 {
			return 0, false
		}
		return float64(q(l)), true
	}
}

var (
	qP50  = func(l *Latency) Duration { return l.P50 }
	qP90  = func(l *Latency) Duration { return l.P90 }
	qP99  = func(l *Latency) Duration { return l.P99 }
	qP999 = func(l *Latency) Duration { return l.P999 }
	qMax  = func(l *Latency) Duration { return l.Max }

	pickMain       = (*Result).mainLatency
	pickConnect    = func(r *Result) *Latency { return r.Conns.Connect }
	pickCompletion = func(r *Result) *Latency {
		if r.Fanout == nil {
			return nil
		}
		return r.Fanout.Completion
	}
)

func driftGetter(f func(*ServerSample) float64) func(*Result) (float64, bool) {
	return func(r *Result) (float64, bool) {
		if r.Server == nil || r.Server.Drift == nil {
			return 0, false
		}
		return f(r.Server.Drift), true
	}
}

// metricGetters reads each -fail-on metric from a result; false means the
// run did not measure it.
var metricGetters = map[string]func(*Result) (float64, bool){
	"errors":      func(r *Result) (float64, bool) { return float64(r.Errors), true },
	"failures":    func(r *Result) (float64, bool) { return float64(r.Conns.Failed), true },
	"drops":       func(r *Result) (float64, bool) { return float64(sumCounts(r.Conns.Drops)), true },
	"conns":       func(r *Result) (float64, bool) { return float64(r.Conns.Held), true },
	"established": func(r *Result) (float64, bool) { return float64(r.Conns.Established), true },

	"p50": latencyGetter(pickMain, qP50), "p90": latencyGetter(pickMain, qP90),
	"p99": latencyGetter(pickMain, qP99), "p999": latencyGetter(pickMain, qP999),
	"max":         latencyGetter(pickMain, qMax),
	"connect_p50": latencyGetter(pickConnect, qP50), "connect_p99": latencyGetter(pickConnect, qP99),
	"connect_max":    latencyGetter(pickConnect, qMax),
	"completion_p50": latencyGetter(pickCompletion, qP50), "completion_p99": latencyGetter(pickCompletion, qP99),
	"completion_max": latencyGetter(pickCompletion, qMax),

	"msgs_per_sec": func(r *Result) (float64, bool) {
		if r.Messages == nil {
			return 0, false
		}
		return r.Messages.PerSec, true
	},
	"delivered_pct": func(r *Result) (float64, bool) {
		switch {
		case r.Fanout != nil && r.Fanout.Expected > 0:
			return pct(r.Fanout.Delivered, r.Fanout.Expected), true
		case r.Messages != nil && r.Messages.Sent > 0 && r.Scenario == ScenarioChat:
			return pct(r.Messages.Received, r.Messages.Sent), true
		}
		return 0, false
	},
	"rss_per_conn": func(r *Result) (float64, bool) {
		if r.Server == nil || r.Server.Holding == nil || r.Conns.Held == 0 {
			return 0, false
		}
		return r.Server.RSSPerConn, true
	},
	"client_cpu":       func(r *Result) (float64, bool) { return r.Client.CPUPercent, true },
	"drift_fds":        driftGetter(func(s *ServerSample) float64 { return s.OpenFDs }),
	"drift_goroutines": driftGetter(func(s *ServerSample) float64 { return s.Goroutines }),
	"drift_rss":        driftGetter(func(s *ServerSample) float64 { return s.RSS }),
}

// Violations returns, for each condition that holds on r, a line saying so.
func Violations(r *Result, ts []Threshold) []string {
	var out []string
	for _, t := range ts {
		v, ok := metricGetters[t.Metric](r)
		if !ok {
			out = append(out, fmt.Sprintf("%s: %s was not measured in this run", t.Text, t.Metric))
			continue
		}
		var hit bool
		switch t.Op {
		case ">":
			hit = v > t.Value
		case ">=":
			hit = v >= t.Value
		case "<":
			hit = v < t.Value
		case "<=":
			hit = v <= t.Value
		case "==":
			hit = v == t.Value
		case "!=":
			hit = v != t.Value
		}
		if hit {
			out = append(out, fmt.Sprintf("%s: %s is %s", t.Text, t.Metric, showMetric(t.Metric, v)))
		}
	}
	return out
}

func showMetric(name string, v float64) string {
	switch {
	case strings.HasPrefix(name, "p") || strings.HasSuffix(name, "_p50") || strings.HasSuffix(name, "_p99") || strings.HasSuffix(name, "max"):
		return Duration(time.Duration(v)).String()
	case name == "rss_per_conn" || name == "drift_rss":
		return fmtBytes(v)
	case strings.HasSuffix(name, "pct") || name == "client_cpu":
		return strconv.FormatFloat(v, 'f', 2, 64) + "%"
	}
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
