package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wsedge/wsedge/bench"
)

// The servers compare knows: wsedge from cmd/wsedge, the peers from
// bench/peers/<name>.
var compareServers = []string{"wsedge", "gorilla", "gobwas", "nbio", "gws"}

const compareHelp = `Usage: wsbench compare [flags]

Builds wsedge and every comparison server in bench/peers, then runs each in
turn on free loopback ports through the same idle, fanout and echo
scenarios, and prints one table with each server's figures and wsedge's
ratio to the best peer. Needs the Go toolchain and the source tree (-repo),
unless -bin holds prebuilt binaries (wsedge, peer-<name>) and -no-build.

Flags:
`

type compareOptions struct {
	repo, bin, jsonFile string
	servers             string
	noBuild             bool
	idleConns           int
	idlePath            string
	idleRate            float64
	hold                time.Duration
	echoConns           int
	echoSize            int
	duration            time.Duration
	fanoutConns         int
	fanoutSize          int
	messages            int
	procs               int
	compression         bool
}

// compareRun is one server's results.
type compareRun struct {
	Server  string                   `json:"server"`
	Error   string                   `json:"error,omitempty"`
	Results map[string]*bench.Result `json:"results"`
	Notes   []string                 `json:"notes,omitempty"`
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o compareOptions
	fs := flag.NewFlagSet("wsbench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, compareHelp); fs.PrintDefaults() }
	fs.StringVar(&o.repo, "repo", "", "wsedge source tree (default: found upwards from the working directory)")
	fs.StringVar(&o.bin, "bin", "", "directory for the built binaries (default: a temporary one)")
	fs.BoolVar(&o.noBuild, "no-build", false, "use the binaries already in -bin")
	fs.StringVar(&o.servers, "servers", strings.Join(compareServers, ","), "servers to run, in order")
	fs.IntVar(&o.idleConns, "conns", 1000, "idle: connections held (one process holds about 19,900; more use -procs)")
	fs.Float64Var(&o.idleRate, "rate", 2000, "idle: connections per second")
	fs.StringVar(&o.idlePath, "idle-path", "/ws", "idle: path to hold connections on (/echo measures the transport alone, with no user record)")
	fs.DurationVar(&o.hold, "hold", 5*time.Second, "idle: hold time")
	fs.IntVar(&o.fanoutConns, "fanout-conns", 0, "fanout: connections (default -conns)")
	fs.IntVar(&o.messages, "messages", 20, "fanout: broadcasts")
	fs.IntVar(&o.fanoutSize, "fanout-size", 0, "fanout: JSON body padded to this many `bytes` (default: the 40-byte stamp alone)")
	fs.BoolVar(&o.compression, "compression", false, "clients offer permessage-deflate and the peers run with theirs on (wsedge: its default, on); adds wire bytes per delivery")
	fs.IntVar(&o.echoConns, "echo-conns", 100, "echo: connections, closed loop")
	fs.IntVar(&o.echoSize, "size", 64, "echo: message size")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "echo: duration")
	fs.IntVar(&o.procs, "procs", 0, "worker processes (default: enough for the open-file limit)")
	fs.StringVar(&o.jsonFile, "json", "", "write every result as JSON to `FILE`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if o.fanoutConns == 0 {
		o.fanoutConns = o.idleConns
	}
	if o.procs == 0 {
		o.procs = (max(o.idleConns, o.fanoutConns) + 18999) / 19000
	}
	servers := strings.Split(o.servers, ",")
	for _, s := range servers {
		if !contains(compareServers, s) {
			fmt.Fprintf(stderr, "wsbench compare: unknown server %q (know %s)\n", s, strings.Join(compareServers, ", "))
			return exitUsage
		}
	}
	if o.bin == "" {
		dir, err := os.MkdirTemp("", "wsbench-compare-")
		if err != nil {
			fmt.Fprintln(stderr, "wsbench compare:", err)
			return exitFailed
		}
		defer os.RemoveAll(dir)
		o.bin = dir
	}
	if !o.noBuild {
		if err := buildServers(ctx, &o, servers, stderr); err != nil {
			fmt.Fprintln(stderr, "wsbench compare:", err)
			return exitFailed
		}
	}
	var runs []*compareRun
	for _, s := range servers {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "wsbench compare: %s ...\n", s)
		runs = append(runs, compareOne(ctx, &o, s, stderr))
	}
	printCompare(stdout, &o, runs)
	if o.jsonFile != "" {
		b, _ := json.MarshalIndent(runs, "", "  ")
		if err := os.WriteFile(o.jsonFile, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "wsbench compare:", err)
			return exitFailed
		}
	}
	if ctx.Err() != nil {
		return exitInterrupted
	}
	for _, r := range runs {
		if r.Error != "" {
			return exitFailed
		}
	}
	return exitOK
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// findRepo walks up from the working directory to the wsedge module root.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/wsedge/wsedge\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("wsedge source tree not found: run from inside it or pass -repo")
		}
		dir = parent
	}
}

func buildServers(ctx context.Context, o *compareOptions, servers []string, stderr io.Writer) error {
	if o.repo == "" {
		repo, err := findRepo()
		if err != nil {
			return err
		}
		o.repo = repo
	}
	for _, s := range servers {
		var cmd *exec.Cmd
		if s == "wsedge" {
			cmd = exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(o.bin, "wsedge"), "./cmd/wsedge")
			cmd.Dir = o.repo
		} else {
			cmd = exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(o.bin, "peer-"+s), "./"+s)
			cmd.Dir = filepath.Join(o.repo, "bench", "peers")
		}
		cmd.Stdout, cmd.Stderr = stderr, stderr
		fmt.Fprintf(stderr, "wsbench compare: building %s\n", s)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", s, err)
		}
	}
	return nil
}

// freePort returns a loopback port nothing listens on right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func compareOne(ctx context.Context, o *compareOptions, server string, stderr io.Writer) *compareRun {
	run := &compareRun{Server: server, Results: map[string]*bench.Result{}}
	fail := func(err error) *compareRun { run.Error = err.Error(); return run }
	wsPort, err := freePort()
	if err != nil {
		return fail(err)
	}
	adminPort, err := freePort()
	if err != nil {
		return fail(err)
	}
	bin := filepath.Join(o.bin, "peer-"+server)
	if server == "wsedge" {
		bin = filepath.Join(o.bin, "wsedge")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", wsPort)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	logf, err := os.Create(filepath.Join(o.bin, server+".log"))
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	args := []string{"-addr", addr, "-admin", strings.TrimPrefix(admin, "http://")}
	if server == "wsedge" {
		args = append(args, "-echo") // off by default; the echo and idle-on-/echo scenarios need it
	} else if o.compression {
		args = append(args, "-compression")
		if server == "gobwas" {
			run.Notes = append(run.Notes, "no compression (wsflate not wired into this peer)")
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start %s: %w", bin, err))
	}
	defer stopServer(cmd)
	if err := waitForMetrics(ctx, admin, 15*time.Second); err != nil {
		return fail(fmt.Errorf("%s did not come up (log %s): %w", server, logf.Name(), err))
	}
	base := "ws://" + addr
	idlePath := o.idlePath
	hasWS := endpointExists(ctx, base+"/ws?user=probe")
	if idlePath == "/ws" && !hasWS {
		idlePath = "/echo"
		run.Notes = append(run.Notes, "no /ws: idle measured on /echo, fanout skipped")
	}
	scen := []bench.Config{{
		Scenario: bench.ScenarioIdle, URLs: []string{base + idlePath}, Admin: []string{admin},
		Conns: o.idleConns, Rate: o.idleRate, Hold: o.hold, Procs: o.procs, Compression: o.compression,
	}}
	if hasWS {
		scen = append(scen, bench.Config{
			Scenario: bench.ScenarioFanout, URLs: []string{base + "/ws"}, Admin: []string{admin},
			Conns: o.fanoutConns, ConnectRate: o.idleRate, Messages: o.messages, Interval: 100 * time.Millisecond, Procs: o.procs,
			Size: o.fanoutSize, Compression: o.compression,
			PID: cmd.Process.Pid, // the server's CPU over the pushes, from /proc
		})
	}
	scen = append(scen, bench.Config{
		Scenario: bench.ScenarioEcho, URLs: []string{base + "/echo"}, Admin: []string{admin},
		Conns: o.echoConns, ClosedLoop: true, Size: o.echoSize, Duration: o.duration, Compression: o.compression,
	})
	for _, cfg := range scen {
		res, err := bench.Run(ctx, cfg, bench.Options{Spawn: spawnWorker})
		if err != nil {
			run.Notes = append(run.Notes, fmt.Sprintf("%s: %v", cfg.Scenario, err))
		}
		if res != nil {
			run.Results[cfg.Scenario] = res
			for _, w := range res.Warnings {
				run.Notes = append(run.Notes, cfg.Scenario+": "+w)
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return run
}

// endpointExists dials once and reports whether the upgrade succeeded.
func endpointExists(ctx context.Context, url string) bool {
	res, _ := bench.Run(ctx, bench.Config{
		Scenario: bench.ScenarioIdle, URLs: []string{url}, Conns: 1, Hold: time.Millisecond,
	}, bench.Options{})
	return res != nil && res.Conns.Established == 1
}

func waitForMetrics(ctx context.Context, admin string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(admin + "/metrics")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopServer asks the server to stop (SIGTERM), then kills it after 15s.
func stopServer(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// compareRow is one line of the table: how to read the figure from a
// server's results and whether lower is better.
type compareRow struct {
	name   string
	lower  bool
	get    func(map[string]*bench.Result) (float64, bool)
	format func(float64) string
}

func latencyRow(scenario string, pick func(*bench.Result) *bench.Latency, q func(*bench.Latency) bench.Duration) func(map[string]*bench.Result) (float64, bool) {
	return func(rs map[string]*bench.Result) (float64, bool) {
		r := rs[scenario]
		if r == nil {
			return 0, false
		}
		l := pick(r)
		if l == nil || l.Count == 0 {
			return 0, false
		}
		return float64(q(l)), true
	}
}

func fmtDur(v float64) string { return bench.Duration(time.Duration(v)).String() }

var compareRows = []compareRow{
	{"idle: connections held", false, func(rs map[string]*bench.Result) (float64, bool) {
		r := rs[bench.ScenarioIdle]
		return float64(ifNil(r, func() int64 { return r.Conns.Held })), r != nil
	}, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	{"idle: server RSS per connection", true, func(rs map[string]*bench.Result) (float64, bool) {
		r := rs[bench.ScenarioIdle]
		if r == nil || r.Server == nil || r.Server.Holding == nil || r.Conns.Held == 0 {
			return 0, false
		}
		return r.Server.RSSPerConn, true
	}, func(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }},
	{"idle: server goroutines while holding", true, func(rs map[string]*bench.Result) (float64, bool) {
		r := rs[bench.ScenarioIdle]
		if r == nil || r.Server == nil || r.Server.Holding == nil {
			return 0, false
		}
		return r.Server.Holding.Goroutines, true
	}, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	{"idle: connections that negotiated deflate", false, func(rs map[string]*bench.Result) (float64, bool) {
		r := rs[bench.ScenarioIdle]
		if r == nil || r.Wire == nil || !r.Wire.Offered {
			return 0, false
		}
		return float64(r.Wire.Negotiated), true
	}, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	{"idle: connect p99", true, latencyRow(bench.ScenarioIdle, func(r *bench.Result) *bench.Latency { return r.Conns.Connect }, func(l *bench.Latency) bench.Duration { return l.P99 }), fmtDur},
	{"fanout: delivery p50", true, latencyRow(bench.ScenarioFanout, fanoutLatency, func(l *bench.Latency) bench.Duration { return l.P50 }), fmtDur},
	{"fanout: delivery p99", true, latencyRow(bench.ScenarioFanout, fanoutLatency, func(l *bench.Latency) bench.Duration { return l.P99 }), fmtDur},
	{"fanout: completion p99", true, latencyRow(bench.ScenarioFanout, func(r *bench.Result) *bench.Latency {
		if r.Fanout == nil {
			return nil
		}
		return r.Fanout.Completion
	}, func(l *bench.Latency) bench.Duration { return l.P99 }), fmtDur},
	{"fanout: wire bytes per delivery", true, func(rs map[string]*bench.Result) (float64, bool) {
		r := rs[bench.ScenarioFanout]
		if r == nil || r.Wire == nil || r.Wire.In.Messages == 0 {
			return 0, false
		}
		_, wire := r.Wire.In.PerMessage()
		return wire, true
	}, func(v float64) string { return fmt.Sprintf("%.0f B", v) }},
	{"fanout: server CPU per delivery", true, func(rs map[string]*bench.Result) (float64, bool) {
		r := rs[bench.ScenarioFanout]
		if r == nil || r.Fanout == nil || r.Fanout.Delivered == 0 || r.Client.Load == nil || r.Client.Load.ServerCPUSeconds == 0 {
			return 0, false
		}
		return r.Client.Load.ServerCPUSeconds * 1e9 / float64(r.Fanout.Delivered), true
	}, func(v float64) string { return fmt.Sprintf("%.2f µs", v/1e3) }},
	{"fanout: delivered", false, func(rs map[string]*bench.Result) (float64, bool) {
		r := rs[bench.ScenarioFanout]
		if r == nil || r.Fanout == nil || r.Fanout.Expected == 0 {
			return 0, false
		}
		return 100 * float64(r.Fanout.Delivered) / float64(r.Fanout.Expected), true
	}, func(v float64) string { return fmt.Sprintf("%.2f%%", v) }},
	{"echo: msgs/s (closed loop)", false, func(rs map[string]*bench.Result) (float64, bool) {
		r := rs[bench.ScenarioEcho]
		if r == nil || r.Messages == nil {
			return 0, false
		}
		return r.Messages.PerSec, true
	}, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	{"echo: round trip p99", true, latencyRow(bench.ScenarioEcho, func(r *bench.Result) *bench.Latency { return r.Messages.Latency }, func(l *bench.Latency) bench.Duration { return l.P99 }), fmtDur},
}

func fanoutLatency(r *bench.Result) *bench.Latency {
	if r.Fanout == nil {
		return nil
	}
	return r.Fanout.Latency
}

func ifNil(r *bench.Result, f func() int64) int64 {
	if r == nil {
		return 0
	}
	return f()
}

// printCompare prints the table (Markdown, so it pastes into the docs).
func printCompare(w io.Writer, o *compareOptions, runs []*compareRun) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	head := "| figure\t"
	sep := "|---\t"
	for _, r := range runs {
		head += " " + r.Server + "\t"
		sep += "---\t"
	}
	fmt.Fprintln(tw, head+" wsedge / best peer\t")
	fmt.Fprintln(tw, sep+"---\t")
	for _, row := range compareRows {
		line := "| " + row.name + "\t"
		var wsedge float64
		haveWsedge := false
		best, bestName := math.NaN(), ""
		for _, r := range runs {
			v, ok := row.get(r.Results)
			if !ok || r.Error != "" {
				line += " -\t"
				continue
			}
			line += " " + row.format(v) + "\t"
			if r.Server == "wsedge" {
				wsedge, haveWsedge = v, true
			} else if math.IsNaN(best) || (row.lower && v < best) || (!row.lower && v > best) {
				best, bestName = v, r.Server
			}
		}
		ratio := "-"
		if haveWsedge && !math.IsNaN(best) && best != 0 {
			ratio = fmt.Sprintf("%.2f× (best: %s, %s better)", wsedge/best, bestName, map[bool]string{true: "lower", false: "higher"}[row.lower])
		}
		fmt.Fprintln(tw, line+" "+ratio+"\t")
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nidle: %d conns on %s at %.0f/s held %s; fanout: %d conns, %d broadcasts of %d B; echo: %d conns closed loop, %d B, %s; compression offered %v; %d CPUs\n",
		o.idleConns, o.idlePath, o.idleRate, o.hold, o.fanoutConns, o.messages, o.fanoutSize, o.echoConns, o.echoSize, o.duration, o.compression, numCPU())
	for _, r := range runs {
		if r.Error != "" {
			fmt.Fprintf(w, "%s: FAILED: %s\n", r.Server, r.Error)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%s: %s\n", r.Server, n)
		}
	}
}

func numCPU() int { return runtime.NumCPU() }
