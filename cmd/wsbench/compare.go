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
	"slices"
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

One run on a shared machine swings by 15-30%: -rounds N runs the servers
in turn N times (interleaved, a fresh server each run) and prints each
figure's median with its range, and wsedge's ratio to the best peer of
each round as a median with its range.

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
	rounds              int
	loops               int
	clientWork          time.Duration
	interval            time.Duration
	room                string
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
	fs.IntVar(&o.rounds, "rounds", 1, "run the servers in turn this many times (interleaved); medians and ranges")
	fs.IntVar(&o.loops, "loops", 0, "client event loops per process (default one per CPU; 1: a single-threaded client)")
	fs.DurationVar(&o.clientWork, "client-work", 0, "CPU each client event loop spends per readable socket (a dearer client; see wsbench -h)")
	fs.DurationVar(&o.interval, "interval", 100*time.Millisecond, "fanout: time between broadcasts")
	fs.StringVar(&o.room, "room", "", "fanout: wsedge pushes to this room, which every client joins, instead of broadcasting (the peers have no rooms and broadcast)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if o.fanoutConns == 0 {
		o.fanoutConns = o.idleConns
	}
	if o.rounds < 1 || o.interval <= 0 {
		fmt.Fprintln(stderr, "wsbench compare: -rounds must be at least 1 and -interval positive")
		return exitUsage
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
	var rounds [][]*compareRun
	for i := 0; i < o.rounds && ctx.Err() == nil; i++ {
		var runs []*compareRun
		for _, s := range servers {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(stderr, "wsbench compare: round %d of %d: %s ...\n", i+1, o.rounds, s)
			runs = append(runs, compareOne(ctx, &o, s, i+1))
		}
		if len(runs) > 0 { // an interrupted round still reports what it ran
			rounds = append(rounds, runs)
		}
	}
	if len(rounds) > 0 {
		printCompare(stdout, &o, rounds)
	}
	if o.jsonFile != "" {
		var b []byte
		if o.rounds == 1 && len(rounds) == 1 {
			b, _ = json.MarshalIndent(rounds[0], "", "  ")
		} else {
			b, _ = json.MarshalIndent(rounds, "", "  ")
		}
		if err := os.WriteFile(o.jsonFile, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "wsbench compare:", err)
			return exitFailed
		}
	}
	if ctx.Err() != nil {
		return exitInterrupted
	}
	for _, runs := range rounds {
		for _, r := range runs {
			if r.Error != "" {
				return exitFailed
			}
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
// freePorts returns n distinct free loopback ports: their listeners stay
// open until all are picked, so the kernel cannot hand out one twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startServer starts one server on fresh ports, its output in a log of its
// own (per round), and waits until its /metrics answers.
func startServer(ctx context.Context, o *compareOptions, server string, round int, retry bool) (cmd *exec.Cmd, addr, admin string, err error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", "", err
	}
	bin := filepath.Join(o.bin, "peer-"+server)
	if server == "wsedge" {
		bin = filepath.Join(o.bin, "wsedge")
	}
	addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	admin = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	name := server
	if o.rounds > 1 {
		name += fmt.Sprintf("-round%d", round)
	}
	if retry {
		name += "-retry" // keep the failed start's log
	}
	logf, err := os.Create(filepath.Join(o.bin, name+".log"))
	if err != nil {
		return nil, "", "", err
	}
	defer logf.Close() // the child has its own descriptor
	args := []string{"-addr", addr, "-admin", strings.TrimPrefix(admin, "http://")}
	if server == "wsedge" {
		args = append(args, "-echo") // off by default; the echo and idle-on-/echo scenarios need it
	} else if o.compression {
		args = append(args, "-compression")
	}
	cmd = exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, "", "", fmt.Errorf("start %s: %w", bin, err)
	}
	if err := waitForMetrics(ctx, admin, 15*time.Second); err != nil {
		stopServer(cmd)
		return nil, "", "", fmt.Errorf("%s did not come up (log %s): %w", server, logf.Name(), err)
	}
	return cmd, addr, admin, nil
}

func compareOne(ctx context.Context, o *compareOptions, server string, round int) *compareRun {
	run := &compareRun{Server: server, Results: map[string]*bench.Result{}}
	if o.compression && server == "gobwas" {
		run.Notes = append(run.Notes, "no compression (wsflate not wired into this peer)")
	}
	cmd, addr, admin, err := startServer(ctx, o, server, round, false)
	if err != nil && ctx.Err() == nil {
		// Once more on other ports, so one unlucky start does not cost the
		// round; the first failure stays in the notes.
		run.Notes = append(run.Notes, "first start failed, started again: "+err.Error())
		cmd, addr, admin, err = startServer(ctx, o, server, round, true)
	}
	if err != nil {
		run.Error = err.Error()
		return run
	}
	defer stopServer(cmd)
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
		fan := bench.Config{
			Scenario: bench.ScenarioFanout, URLs: []string{base + "/ws"}, Admin: []string{admin},
			Conns: o.fanoutConns, ConnectRate: o.idleRate, Messages: o.messages, Interval: o.interval, Procs: o.procs,
			Size: o.fanoutSize, Compression: o.compression,
			PID: cmd.Process.Pid, // the server's CPU over the pushes, from /proc
		}
		if o.room != "" {
			if server == "wsedge" {
				fan.Room = o.room
			} else {
				run.Notes = append(run.Notes, "no rooms: fanout broadcasts")
			}
		}
		scen = append(scen, fan)
	}
	scen = append(scen, bench.Config{
		Scenario: bench.ScenarioEcho, URLs: []string{base + "/echo"}, Admin: []string{admin},
		Conns: o.echoConns, ClosedLoop: true, Size: o.echoSize, Duration: o.duration, Compression: o.compression,
	})
	for _, cfg := range scen {
		cfg.Loops = o.loops
		cfg.ClientWork = o.clientWork
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

// printCompare prints the table (Markdown, so it pastes into the docs): each
// figure, and wsedge's ratio to the best peer; over several rounds each cell
// is the median with its range, and the ratio is taken per round (against
// that round's best peer) and given as the median with its range.
func printCompare(w io.Writer, o *compareOptions, rounds [][]*compareRun) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	head := "| figure\t"
	sep := "|---\t"
	for _, r := range rounds[0] {
		head += " " + r.Server + "\t"
		sep += "---\t"
	}
	fmt.Fprintln(tw, head+" wsedge / best peer\t")
	fmt.Fprintln(tw, sep+"---\t")
	for _, row := range compareRows {
		line := "| " + row.name + "\t"
		for i := range rounds[0] {
			var vals []float64
			for _, runs := range rounds {
				if i >= len(runs) {
					continue // an interrupted round
				}
				if v, ok := row.get(runs[i].Results); ok && runs[i].Error == "" {
					vals = append(vals, v)
				}
			}
			line += " " + spread(vals, row.format) + "\t"
		}
		var ratios []float64
		bestBy := map[string]int{}
		for _, runs := range rounds {
			if r, best, ok := bestRatio(row, runs); ok {
				ratios = append(ratios, r)
				bestBy[best]++
			}
		}
		ratio := "-"
		if len(ratios) > 0 {
			ratio = spread(ratios, func(v float64) string { return fmt.Sprintf("%.2f×", v) }) +
				fmt.Sprintf(" (best: %s, %s better)", bestNames(bestBy), map[bool]string{true: "lower", false: "higher"}[row.lower])
		}
		fmt.Fprintln(tw, line+" "+ratio+"\t")
	}
	_ = tw.Flush()
	fan := "broadcasts"
	if o.room != "" {
		fan = "pushes to room " + o.room + " (wsedge; the peers broadcast)"
	}
	loops := "one per CPU"
	if o.loops > 0 {
		loops = fmt.Sprint(o.loops)
	}
	if o.clientWork > 0 {
		loops += fmt.Sprintf(", %v of work per read", o.clientWork)
	}
	fmt.Fprintf(w, "\nidle: %d conns on %s at %.0f/s held %s; fanout: %d conns, %d %s of %d B, %s apart; echo: %d conns closed loop, %d B, %s; compression offered %v; client event loops: %s; %d round(s); %d CPUs\n",
		o.idleConns, o.idlePath, o.idleRate, o.hold, o.fanoutConns, o.messages, fan, o.fanoutSize, o.interval, o.echoConns, o.echoSize, o.duration, o.compression, loops, len(rounds), numCPU())
	if len(rounds) > 1 {
		fmt.Fprintln(w, "each cell: median (min-max) over the rounds; the ratio is taken within each round")
	}
	for k, runs := range rounds {
		for _, r := range runs {
			prefix := r.Server
			if len(rounds) > 1 {
				prefix = fmt.Sprintf("round %d: %s", k+1, r.Server)
			}
			if r.Error != "" {
				fmt.Fprintf(w, "%s: FAILED: %s\n", prefix, r.Error)
			}
			for _, n := range r.Notes {
				fmt.Fprintf(w, "%s: %s\n", prefix, n)
			}
		}
	}
}

// bestRatio is wsedge's figure over the best peer's in one round.
func bestRatio(row compareRow, runs []*compareRun) (ratio float64, best string, ok bool) {
	var wsedge float64
	haveWsedge := false
	bestV := math.NaN()
	for _, r := range runs {
		v, ok := row.get(r.Results)
		if !ok || r.Error != "" {
			continue
		}
		if r.Server == "wsedge" {
			wsedge, haveWsedge = v, true
		} else if math.IsNaN(bestV) || (row.lower && v < bestV) || (!row.lower && v > bestV) {
			bestV, best = v, r.Server
		}
	}
	if !haveWsedge || math.IsNaN(bestV) || bestV == 0 {
		return 0, "", false
	}
	return wsedge / bestV, best, true
}

// spread formats vals as their median, with the range when there are several.
func spread(vals []float64, format func(float64) string) string {
	switch len(vals) {
	case 0:
		return "-"
	case 1:
		return format(vals[0])
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return fmt.Sprintf("%s (%s-%s)", format(med), format(s[0]), format(s[n-1]))
}

// bestNames lists the peers that were best, with how often when it varied.
func bestNames(by map[string]int) string {
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 1 {
		return names[0]
	}
	for i, n := range names {
		names[i] = fmt.Sprintf("%s %d", n, by[n])
	}
	return strings.Join(names, ", ")
}

func numCPU() int { return runtime.NumCPU() }
