package bench

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// How a run ended.
const (
	StopCompleted   = "completed"
	StopInterrupted = "interrupted"
	StopDeadline    = "deadline"
)

// Result is the full outcome of a run, as written by -json. Workers return
// partial Results that the driver merges.
type Result struct {
	Scenario string    `json:"scenario"`
	Config   Config    `json:"config"`
	Started  time.Time `json:"started"`
	Elapsed  Duration  `json:"elapsed"`
	// Stop is "completed", "interrupted" (Ctrl-C) or "deadline" (the hard
	// deadline cut the run short); the last two mean a partial report.
	Stop    string `json:"stop"`
	Workers int    `json:"workers"`

	Conns    ConnStats     `json:"conns"`
	Messages *MessageStats `json:"messages,omitempty"`
	Fanout   *FanoutStats  `json:"fanout,omitempty"`
	Server   *ServerStats  `json:"server,omitempty"`
	Client   ClientStats   `json:"client"`
	Wire     *WireStats    `json:"wire,omitempty"`

	// Errors counts every failure: failed connects, connections the server
	// or network dropped, error replies, failed admin calls.
	Errors   int64    `json:"errors"`
	Warnings []string `json:"warnings,omitempty"`
}

// ConnStats counts connection attempts and their outcomes.
type ConnStats struct {
	Attempted   int64 `json:"attempted"`
	Established int64 `json:"established"`
	Failed      int64 `json:"failed"`
	// Held is the number open when the load phase began (idle: the hold).
	Held int64 `json:"held"`
	// PeakOpen is the most open at once (summed over workers).
	PeakOpen int64 `json:"peak_open"`
	// Failures counts failed connects by reason: refused, timeout,
	// http_<status>, reset, eof, no_local_port, client_fd_limit, other.
	Failures map[string]int64 `json:"failures,omitempty"`
	// FailureExample is the first error message seen for each reason.
	FailureExample map[string]string `json:"failure_example,omitempty"`
	// Drops counts established connections that ended before we closed
	// them: close_<code> when the server sent a close frame, else eof,
	// reset, timeout, too_big or other.
	Drops   map[string]int64 `json:"drops,omitempty"`
	Connect *Latency         `json:"connect_latency,omitempty"`
}

// MessageStats describes the message load of echo and chat.
type MessageStats struct {
	Sent     int64 `json:"sent"`
	Received int64 `json:"received"`
	// LoadSeconds is how long the load ran; PerSec = Received / it.
	LoadSeconds float64 `json:"load_seconds"`
	PerSec      float64 `json:"per_sec"`
	// Latency is the round trip (echo) or the delivery latency (chat).
	Latency *Latency `json:"latency,omitempty"`

	Acks         int64            `json:"acks,omitempty"`
	AckLatency   *Latency         `json:"ack_latency,omitempty"`
	ErrorsByCode map[string]int64 `json:"errors_by_code,omitempty"`
	SendErrors   int64            `json:"send_errors,omitempty"`
}

// FanoutStats describes server pushes through the admin API.
type FanoutStats struct {
	Messages int              `json:"messages"`
	Posted   int              `json:"posted"`
	Failed   map[string]int64 `json:"post_failures,omitempty"`
	// Expected is posted messages times connections held; Delivered counts
	// receipts.
	Expected  int64 `json:"expected"`
	Delivered int64 `json:"delivered"`
	// Latency is POST to receipt, per delivery.
	Latency *Latency `json:"latency,omitempty"`
	// Completion is POST to the last client's receipt, per message; a
	// message some client never got is counted in Incomplete instead.
	Completion *Latency `json:"completion,omitempty"`
	Incomplete int      `json:"incomplete"`

	// Per sequence number: receipts, and the latest receipt (unix ns). Only
	// workers fill these; the driver folds them into Completion.
	SeqCount []int64 `json:"seq_count,omitempty"`
	SeqLast  []int64 `json:"seq_last,omitempty"`
}

// WireStats counts the data messages each way with their payload bytes
// and the bytes those payloads took on the wire: smaller when compressed
// (permessage-deflate), equal otherwise. Frame headers are not counted.
type WireStats struct {
	// Offered is Config.Compression; Negotiated counts the connections
	// whose server accepted the offer.
	Offered    bool      `json:"offered"`
	Negotiated int64     `json:"negotiated"`
	In         ByteCount `json:"in"`
	Out        ByteCount `json:"out"`
}

// ByteCount is one direction's data messages (Compressed of them arrived or
// went with RSV1) and their payload and wire bytes.
type ByteCount struct {
	Messages     int64 `json:"messages"`
	Compressed   int64 `json:"compressed"`
	PayloadBytes int64 `json:"payload_bytes"`
	WireBytes    int64 `json:"wire_bytes"`
}

func (b *ByteCount) add(o ByteCount) {
	b.Messages += o.Messages
	b.Compressed += o.Compressed
	b.PayloadBytes += o.PayloadBytes
	b.WireBytes += o.WireBytes
}

// PerMessage returns the mean payload and wire bytes per message.
func (b ByteCount) PerMessage() (payload, wire float64) {
	if b.Messages == 0 {
		return 0, 0
	}
	return float64(b.PayloadBytes) / float64(b.Messages), float64(b.WireBytes) / float64(b.Messages)
}

// ServerStats are the server's own figures, from /proc/PID (-pid) or from
// /metrics scraped before the connections, once they are all open (at the
// end of the hold for idle) and after.
type ServerStats struct {
	// Source is SourceProc or SourceMetrics.
	Source string        `json:"source"`
	Before *ServerSample `json:"before,omitempty"`
	// Holding is the last sample while every connection was open.
	Holding *ServerSample `json:"holding,omitempty"`
	After   *ServerSample `json:"after,omitempty"`
	PeakRSS float64       `json:"peak_rss_bytes,omitempty"`
	// RSSPerConn = (Holding.RSS - Before.RSS) / Conns.Held.
	RSSPerConn float64 `json:"rss_per_conn_bytes,omitempty"`
	// Drift = After - Before (churn: what the server failed to give back).
	Drift        *ServerSample `json:"drift,omitempty"`
	ScrapeErrors []string      `json:"scrape_errors,omitempty"`
	// CPUSeconds is the server's CPU from Before to After (proc only), and
	// CPUPercent that over the window and all CPUs, to set beside the
	// client's.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	CPUPercent float64 `json:"cpu_percent,omitempty"`
}

// ClientStats is the load generator's own cost, to tell when it, not the
// server, was the limit.
type ClientStats struct {
	Procs int `json:"procs"`
	CPUs  int `json:"cpus"`
	// CPU seconds of every wsbench process over the run.
	UserSeconds   float64 `json:"user_seconds"`
	SystemSeconds float64 `json:"system_seconds"`
	// DriverSeconds is the parent's own CPU when workers are children.
	DriverSeconds float64 `json:"driver_seconds,omitempty"`
	// CPUPercent is CPU seconds over elapsed time and all CPUs.
	CPUPercent float64 `json:"cpu_percent"`
	// MachineBusyPercent is the whole machine's busy share (server too).
	MachineBusyPercent float64 `json:"machine_busy_percent,omitempty"`
	// PeakRSS sums the processes' peak resident sets; RSSPerConn divides
	// the growth of the resident set by the connections held.
	PeakRSS    int64   `json:"peak_rss_bytes"`
	RSSPerConn float64 `json:"rss_per_conn_bytes,omitempty"`
	Goroutines int64   `json:"goroutines"`
	// IO is how the client's ws:// connections are driven: "epoll" (event
	// loops, Linux) or "goroutines" (one reader goroutine per connection:
	// wss://, other platforms, and the scenarios docs/benchmarks.md names).
	IO        string `json:"io"`
	Saturated bool   `json:"saturated"`
	// Load is the CPU of the load phase alone (after every connection is
	// open, until the hold, duration or fan-out ends).
	Load *LoadCPU `json:"load,omitempty"`
}

// LoadCPU sets the client's CPU beside the server's (with -pid) over the
// load phase.
type LoadCPU struct {
	Seconds          float64 `json:"seconds"`
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
}

// addCounts adds every count of b to a (maps may be nil).
func addCounts(a map[string]int64, b map[string]int64) map[string]int64 {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = map[string]int64{}
	}
	for k, v := range b {
		a[k] += v
	}
	return a
}

func sumCounts(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// mergeWorkers folds worker results into one. Counts add up, histograms
// merge; driver-level fields (server, fan-out posts) are left to the caller.
func mergeWorkers(parts []*Result) (*Result, error) {
	out := &Result{}
	var connect, lat, ack, flat []*Latency
	for _, p := range parts {
		if p == nil {
			continue
		}
		out.Workers++
		c := &out.Conns
		c.Attempted += p.Conns.Attempted
		c.Established += p.Conns.Established
		c.Failed += p.Conns.Failed
		c.Held += p.Conns.Held
		c.PeakOpen += p.Conns.PeakOpen
		c.Failures = addCounts(c.Failures, p.Conns.Failures)
		c.Drops = addCounts(c.Drops, p.Conns.Drops)
		for k, v := range p.Conns.FailureExample {
			if c.FailureExample == nil {
				c.FailureExample = map[string]string{}
			}
			if _, ok := c.FailureExample[k]; !ok {
				c.FailureExample[k] = v
			}
		}
		connect = append(connect, p.Conns.Connect)
		if m := p.Messages; m != nil {
			if out.Messages == nil {
				out.Messages = &MessageStats{}
			}
			o := out.Messages
			o.Sent += m.Sent
			o.Received += m.Received
			o.Acks += m.Acks
			o.SendErrors += m.SendErrors
			o.LoadSeconds = max(o.LoadSeconds, m.LoadSeconds)
			o.ErrorsByCode = addCounts(o.ErrorsByCode, m.ErrorsByCode)
			lat = append(lat, m.Latency)
			ack = append(ack, m.AckLatency)
		}
		if f := p.Fanout; f != nil {
			if out.Fanout == nil {
				out.Fanout = &FanoutStats{}
			}
			o := out.Fanout
			o.Delivered += f.Delivered
			flat = append(flat, f.Latency)
			if len(o.SeqCount) < len(f.SeqCount) {
				o.SeqCount = append(o.SeqCount, make([]int64, len(f.SeqCount)-len(o.SeqCount))...)
				o.SeqLast = append(o.SeqLast, make([]int64, len(f.SeqLast)-len(o.SeqLast))...)
			}
			for i := range f.SeqCount {
				o.SeqCount[i] += f.SeqCount[i]
				o.SeqLast[i] = max(o.SeqLast[i], f.SeqLast[i])
			}
		}
		if w := p.Wire; w != nil {
			if out.Wire == nil {
				out.Wire = &WireStats{}
			}
			out.Wire.Offered = out.Wire.Offered || w.Offered
			out.Wire.Negotiated += w.Negotiated
			out.Wire.In.add(w.In)
			out.Wire.Out.add(w.Out)
		}
		cl := &out.Client
		cl.Procs++
		cl.UserSeconds += p.Client.UserSeconds
		cl.SystemSeconds += p.Client.SystemSeconds
		cl.PeakRSS += p.Client.PeakRSS
		cl.RSSPerConn += p.Client.RSSPerConn * float64(p.Conns.Held)
		cl.Goroutines += p.Client.Goroutines
		cl.IO = p.Client.IO
		out.Warnings = append(out.Warnings, p.Warnings...)
	}
	var err error
	if out.Conns.Connect, err = mergeLatency(connect...); err != nil {
		return nil, err
	}
	if out.Conns.Held > 0 {
		out.Client.RSSPerConn /= float64(out.Conns.Held)
	}
	if m := out.Messages; m != nil {
		if m.Latency, err = mergeLatency(lat...); err != nil {
			return nil, err
		}
		if m.AckLatency, err = mergeLatency(ack...); err != nil {
			return nil, err
		}
		if m.LoadSeconds > 0 {
			m.PerSec = float64(m.Received) / m.LoadSeconds
		}
	}
	if f := out.Fanout; f != nil {
		if f.Latency, err = mergeLatency(flat...); err != nil {
			return nil, err
		}
	}
	out.Warnings = slices.Compact(slices.Sorted(slices.Values(out.Warnings)))
	return out, nil
}

// countErrors totals the failures of r into r.Errors.
func (r *Result) countErrors() {
	n := r.Conns.Failed + sumCounts(r.Conns.Drops)
	if m := r.Messages; m != nil {
		n += sumCounts(m.ErrorsByCode) + m.SendErrors
	}
	if f := r.Fanout; f != nil {
		n += sumCounts(f.Failed)
	}
	r.Errors = n
}

// sortedKeys returns the keys of m in order, for stable printing.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// fmtBytes prints a byte count in binary units.
func fmtBytes(b float64) string {
	neg := ""
	if b < 0 {
		neg, b = "-", -b
	}
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%s%.2f GiB", neg, b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%s%.1f KiB", neg, b/(1<<10))
	}
	return fmt.Sprintf("%s%.0f B", neg, b)
}
