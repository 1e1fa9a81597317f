package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteSummary prints the result for people.
func (r *Result) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	c := r.Config
	p("wsbench %s\t%s", r.Scenario, strings.Join(c.URLs, " "))
	p("run\t%s, %s, %d process(es)", r.Stop, r.Elapsed, r.Client.Procs)
	p("connections\t%d attempted, %d established, %d failed, %d held, peak %d open",
		r.Conns.Attempted, r.Conns.Established, r.Conns.Failed, r.Conns.Held, r.Conns.PeakOpen)
	for _, k := range sortedKeys(r.Conns.Failures) {
		p("  failed: %s\t%d\t%s", k, r.Conns.Failures[k], r.Conns.FailureExample[k])
	}
	for _, k := range sortedKeys(r.Conns.Drops) {
		p("  dropped: %s\t%d", k, r.Conns.Drops[k])
	}
	if l := r.Conns.Connect; l != nil && l.Count > 0 {
		p("connect latency\t%s", latencyLine(l))
	}
	if m := r.Messages; m != nil {
		p("messages\t%d sent, %d received in %.1fs: %.0f msgs/s", m.Sent, m.Received, m.LoadSeconds, m.PerSec)
		name := "round trip"
		if r.Scenario == ScenarioChat {
			name = "delivery"
		}
		if m.Latency != nil && m.Latency.Count > 0 {
			p("%s latency\t%s", name, latencyLine(m.Latency))
		}
		if r.Scenario == ScenarioChat {
			p("acks\t%d", m.Acks)
			if m.AckLatency != nil && m.AckLatency.Count > 0 {
				p("ack latency\t%s", latencyLine(m.AckLatency))
			}
		}
		for _, k := range sortedKeys(m.ErrorsByCode) {
			p("  error: %s\t%d", k, m.ErrorsByCode[k])
		}
		if m.SendErrors > 0 {
			p("  send errors\t%d", m.SendErrors)
		}
	}
	if f := r.Fanout; f != nil {
		p("fan-out\t%d of %d messages posted; %d of %d deliveries (%.2f%%)",
			f.Posted, f.Messages, f.Delivered, f.Expected, pct(f.Delivered, f.Expected))
		for _, k := range sortedKeys(f.Failed) {
			p("  POST failed: %s\t%d", k, f.Failed[k])
		}
		if f.Latency != nil && f.Latency.Count > 0 {
			p("delivery latency\t%s", latencyLine(f.Latency))
		}
		if f.Completion != nil && f.Completion.Count > 0 {
			p("completion (POST to last client)\tp50 %s  p99 %s  max %s  over %d messages", f.Completion.P50, f.Completion.P99, f.Completion.Max, f.Completion.Count)
		}
		if f.Incomplete > 0 {
			p("  incomplete messages\t%d", f.Incomplete)
		}
	}
	if wr := r.Wire; wr != nil {
		if wr.Offered {
			p("compression\tpermessage-deflate offered; %d of %d connections negotiated it", wr.Negotiated, r.Conns.Established)
		}
		for _, d := range []struct {
			name string
			b    ByteCount
		}{{"received", wr.In}, {"sent", wr.Out}} {
			if d.b.Messages == 0 {
				continue
			}
			payload, wire := d.b.PerMessage()
			p("bytes %s\t%d messages (%d compressed): payload %.0f B, wire %.0f B per message (%.1f%%)",
				d.name, d.b.Messages, d.b.Compressed, payload, wire, 100*wire/max(payload, 1))
		}
	}
	if s := r.Server; s != nil {
		p("server (%s)\t%s", sourceName(s.Source), sampleLine("before", s.Before))
		if s.Holding != nil {
			p("\t%s", sampleLine("holding", s.Holding))
		}
		p("\t%s", sampleLine("after", s.After))
		if s.RSSPerConn != 0 {
			p("server RSS per connection\t%s (peak RSS %s)", fmtBytes(s.RSSPerConn), fmtBytes(s.PeakRSS))
		}
		if d := s.Drift; d != nil && (r.Scenario == ScenarioChurn || d.Connections != 0) {
			p("server drift (after - before)\tconnections %+.0f, open fds %+.0f, goroutines %+.0f, RSS %s",
				d.Connections, d.OpenFDs, d.Goroutines, fmtBytes(d.RSS))
		}
		if s.Source == SourceProc {
			p("server CPU\t%.1fs (%.1f%% of %d CPUs over %s)", s.CPUSeconds, s.CPUPercent, r.Client.CPUs,
				s.After.At.Sub(s.Before.At).Round(100*time.Millisecond))
		}
		for _, e := range s.ScrapeErrors {
			p("  scrape error\t%s", e)
		}
	}
	cl := r.Client
	p("client CPU\t%.1fs (%.1fs user, %.1fs sys, %.1fs driver), %.1f%% of %d CPUs over %s; machine busy %.0f%%",
		cl.UserSeconds+cl.SystemSeconds+cl.DriverSeconds, cl.UserSeconds, cl.SystemSeconds, cl.DriverSeconds,
		cl.CPUPercent, cl.CPUs, r.Elapsed, cl.MachineBusyPercent)
	if l := cl.Load; l != nil {
		server := "server not read (give -pid)"
		if l.ServerCPUSeconds > 0 {
			server = fmt.Sprintf("server %.1fs", l.ServerCPUSeconds)
		}
		p("load phase CPU\tclient %.1fs, %s, over %.1fs", l.ClientCPUSeconds, server, l.Seconds)
	}
	work := ""
	if r.Config.ClientWork > 0 && cl.IO == "epoll" {
		work = fmt.Sprintf(" (plus %v of -client-work per read)", r.Config.ClientWork)
	}
	p("client\t%s I/O%s, peak RSS %s (%s per held connection), %d goroutines",
		cl.IO, work, fmtBytes(float64(cl.PeakRSS)), fmtBytes(cl.RSSPerConn), cl.Goroutines)
	p("errors\t%d", r.Errors)
	for _, wn := range r.Warnings {
		p("WARNING\t%s", wn)
	}
	return tw.Flush()
}

func latencyLine(l *Latency) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)", l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
}

func sourceName(src string) string {
	if src == SourceProc {
		return "/proc/PID"
	}
	return "/metrics, outside the hold"
}

func sampleLine(name string, s *ServerSample) string {
	if s == nil {
		return name + ": no sample"
	}
	if s.Source == SourceProc {
		return fmt.Sprintf("%s: RSS %s, %.0f open fds, CPU %.1fs", name, fmtBytes(s.RSS), s.OpenFDs, s.CPUSeconds)
	}
	return fmt.Sprintf("%s: %.0f connections, RSS %s, %.0f open fds, %.0f goroutines",
		name, s.Connections, fmtBytes(s.RSS), s.OpenFDs, s.Goroutines)
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
