package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/wsedge/wsedge/bench"
)

// Exit codes.
const (
	exitOK          = 0
	exitThreshold   = 1
	exitUsage       = 2
	exitFailed      = 3
	exitDeadline    = 4
	exitInterrupted = 130
)

// workerFlag is the hidden first argument of a re-executed worker process.
const workerFlag = "-worker"

const usageHead = `wsbench measures a wsedge fleet (or any server speaking its protocol).

Usage:
  wsbench idle   -url ws://HOST:8080/ws   -conns N -rate R -hold D  [-pid PID | -admin URL]
  wsbench echo   -url ws://HOST:8080/echo -conns N -size B (-rate R | -closed-loop) -duration D
  wsbench fanout -url ws://HOST:8080/ws   -admin URL -conns N -messages K [-room r]
  wsbench chat   -url ws://HOST:8080/ws   -conns N -rate R -duration D
  wsbench churn  -url ws://HOST:8080/ws   -conns N -rate R -duration D [-admin URL]
  wsbench compare [-conns N ...]          wsedge against bench/peers, one table
  wsbench storm  -url ws://HOST:8080/ws   -conns N [-restart-cmd CMD] [-admin URL]  (wsbench storm -h)
  wsbench recover -url ws://HOST:8080/ws  -admin URL -conns N [-outage D] [-pid PID]  (wsbench recover -h):
          every client drops and rejoins its room with since; messages
          missing or duplicated (must be 0), time until all recovered

Scenarios:
  idle    open N connections at R/s, hold them for D, close them. Connect
          latency, failures by reason, and the server's RSS per connection:
          with -pid from /proc/PID (undisturbed; RSS, CPU, open fds), else
          with -admin from /metrics scraped before and at the end of the
          hold only (a scrape grows the server's heap; also connections and
          goroutines).
  echo    N connections send B-byte messages to /echo, open loop at R msgs/s
          over all connections, or -closed-loop (one in flight per
          connection). Messages per second and round trip percentiles.
  fanout  POST K messages to the admin API (/v1/broadcast, or a room all
          clients joined with -room) -interval apart; per delivery POST to
          receipt, and per message POST to the last client's receipt.
  chat    clients send to random other users at R msgs/s in total; delivery
          and ack latency, errors by code.
  (every scenario takes -compression: offer permessage-deflate; the report
          counts data messages and their payload and wire bytes each way)
  churn   keep about N connections, closing the oldest and opening a new one
          at R/s; handshake latency, errors, and the server's open fds,
          goroutines and RSS at start and end (the drift).

Identity: ?user=<prefix><i>, or with -jwt-secret an HS256 token (sub = user id)
as ?token=. Every run stops by itself after -hold/-duration and at the latest
at -deadline; Ctrl-C stops it with a partial report. Timestamps travel in the
payloads; latencies are HdrHistograms (merged exactly over -procs).

The client's cost is in every report: its CPU over the run and over the
load phase alone, beside the server's with -pid, so that a client-bound
run shows. On Linux ws:// connections are read by epoll loops (one per
CPU), not a goroutine each; wss:// and -goroutine-client use a goroutine
per connection.

One process holds at most its open-file limit of sockets (20000 on the
development machines, so about 19,900): -procs P runs P worker processes;
-source 127.0.0.2-127.0.0.20 binds local addresses beyond one ephemeral port
range; -url may repeat to spread over nodes (and -admin to sum their metrics).

Flags:
`

const usageTail = `
Output: a live progress line on stderr when it is a terminal, a summary on
stdout, and with -json FILE the full result (FILE "-" for stdout instead of
the summary).

Exit codes:
  0    the run completed and no -fail-on condition held
  1    a -fail-on condition held (each is printed)
  2    usage error
  3    the run failed: server unreachable, no connection opened, a worker died
  4    the hard -deadline cut the run short (partial report printed)
  130  interrupted by Ctrl-C (partial report printed)
`

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	if len(os.Args) > 1 && os.Args[1] == workerFlag {
		os.Exit(runWorker())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// runWorker is a child process of -procs: it obeys its parent and ignores
// Ctrl-C, which the terminal also sends it (the parent asks it to stop).
func runWorker() int {
	signal.Ignore(os.Interrupt)
	if err := bench.ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wsbench worker:", err)
		return exitFailed
	}
	return exitOK
}

// options are the command-line settings beyond bench.Config.
type options struct {
	jsonFile   string
	failOn     string
	quiet      bool
	cpuProfile string
}

func newFlagSet(cfg *bench.Config, o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var((*stringList)(&cfg.URLs), "url", "WebSocket `URL` to connect to; repeat to spread connections over nodes")
	fs.Var((*stringList)(&cfg.Admin), "admin", "admin base `URL` (http://host:port) for /metrics and POSTs; repeat for several nodes")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "bearer `token` for the admin API")
	fs.IntVar(&cfg.PID, "pid", 0, "a local server's process id: read its RSS and CPU from /proc/`PID` (no /metrics scrapes, which grow the server's heap)")
	fs.IntVar(&cfg.Conns, "conns", 100, "connections `N` (all processes together)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "idle, churn: connections per second (default 1000); echo, chat: messages per second in total")
	fs.Float64Var(&cfg.ConnectRate, "connect-rate", 0, "echo, fanout, chat: connections per second while connecting (default 2000)")
	fs.DurationVar(&cfg.Hold, "hold", 0, "idle: how long to hold the connections (default 10s)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "echo, chat, churn: how long the load runs (default 10s)")
	fs.DurationVar(&cfg.Deadline, "deadline", 0, "hard limit of the whole run (default: ramp + hold/duration + 30s)")
	fs.IntVar(&cfg.Size, "size", 0, "echo: message size in `bytes` (at least 8, default 64); fanout: JSON body padded to this size (default: the 40-byte stamp alone)")
	fs.BoolVar(&cfg.Compression, "compression", false, "offer permessage-deflate as browsers do; the report gives wire bytes per message beside payload bytes and how many connections negotiated it")
	fs.BoolVar(&cfg.ClosedLoop, "closed-loop", false, "echo: each connection sends its next message when the last returns")
	fs.IntVar(&cfg.Messages, "messages", 0, "fanout: messages `K` to push (default 10)")
	fs.StringVar(&cfg.Room, "room", "", "fanout: join this room and push to it instead of broadcasting")
	fs.DurationVar(&cfg.Interval, "interval", 0, "fanout: time between POSTs (default 100ms)")
	fs.DurationVar(&cfg.Wait, "wait", 0, "fanout: how long to wait for deliveries after the last POST (default 10s)")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "u", "user ids are this prefix and a number")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", "", "HS256 `secret`: connect with ?token= instead of ?user=")
	fs.DurationVar(&cfg.JWTTTL, "jwt-ttl", 0, "lifetime of minted tokens (default 5m)")
	fs.Func("source", "local `addresses` to bind, e.g. 127.0.0.2-127.0.0.20 or a,b,c", func(s string) error {
		addrs, err := bench.ParseSources(s)
		cfg.Sources = addrs
		return err
	})
	fs.IntVar(&cfg.Procs, "procs", 1, "worker processes `P`; results are merged")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", 0, "limit of one connect + handshake (default 10s)")
	fs.IntVar(&cfg.MaxDialing, "max-dialing", 0, "handshakes in flight at once per process (default 256)")
	fs.IntVar(&cfg.Loops, "loops", 0, "event loops per process (default one per CPU; 1 is a single-threaded client)")
	fs.DurationVar(&cfg.ClientWork, "client-work", 0, "CPU each event loop spends per readable socket before reading, to model a client dearer per message than wsbench (e.g. 10us with -loops 1: about the independent client of issue 18)")
	fs.BoolVar(&cfg.GoroutineClient, "goroutine-client", false, "read each connection from its own goroutine instead of the epoll loops (the older, costlier client)")
	fs.StringVar(&o.jsonFile, "json", "", "write the full result as JSON to `FILE` (- for stdout)")
	fs.StringVar(&o.failOn, "fail-on", "", "exit 1 when any `condition` holds, e.g. 'errors>0,p99>50ms' (see below)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the client's CPU profile (this process) to `FILE`, to see what the client costs")
	return fs
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usageHead)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, "\n"+bench.ThresholdHelp+"\n")
	fmt.Fprint(w, usageTail)
}

// run is the whole command apart from process exit; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg bench.Config
	var o options
	fs := newFlagSet(&cfg, &o, stderr)
	fs.Usage = func() { usage(stderr, fs) }
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			usage(stdout, fs)
			return exitOK
		}
		fmt.Fprintln(stderr, "wsbench: name a scenario: idle, echo, fanout, chat, churn, compare, storm or recover (wsbench -h for help)")
		return exitUsage
	}
	cfg.Scenario = args[0]
	if cfg.Scenario == "compare" {
		return runCompare(ctx, args[1:], stdout, stderr)
	}
	if cfg.Scenario == bench.ScenarioStorm {
		return runStorm(ctx, args[1:], stdout, stderr)
	}
	if cfg.Scenario == bench.ScenarioRecover {
		return runRecover(ctx, args[1:], stdout, stderr)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wsbench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	thresholds, err := bench.ParseThresholds(o.failOn)
	if err != nil {
		fmt.Fprintln(stderr, "wsbench:", err)
		return exitUsage
	}
	opt := bench.Options{Spawn: spawnWorker}
	prog := newProgressLine(stderr, o.quiet, cfg.Conns)
	if prog != nil {
		opt.OnProgress = prog.update
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "wsbench: -cpuprofile:", err)
			return exitUsage
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, cfg, opt)
	prog.clear()
	if res == nil {
		fmt.Fprintln(stderr, "wsbench:", err)
		if errors.Is(err, bench.ErrConfig) {
			return exitUsage
		}
		return exitFailed
	}
	if werr := writeOutputs(res, o.jsonFile, stdout); werr != nil {
		fmt.Fprintln(stderr, "wsbench:", werr)
		return exitFailed
	}
	if err != nil {
		fmt.Fprintln(stderr, "wsbench:", err)
		return exitFailed
	}
	switch res.Stop {
	case bench.StopInterrupted:
		return exitInterrupted
	case bench.StopDeadline:
		return exitDeadline
	}
	if v := bench.Violations(res, thresholds); len(v) > 0 {
		for _, line := range v {
			fmt.Fprintln(stderr, "wsbench: FAIL", line)
		}
		return exitThreshold
	}
	return exitOK
}

func writeOutputs(res *bench.Result, jsonFile string, stdout io.Writer) error {
	if jsonFile != "-" {
		if err := res.WriteSummary(stdout); err != nil {
			return err
		}
	}
	if jsonFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	b = append(b, '\n')
	if jsonFile == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(jsonFile, b, 0o644); err != nil {
		return fmt.Errorf("write -json: %w", err)
	}
	return nil
}

// spawnWorker re-executes this program as a worker process.
func spawnWorker(ctx context.Context) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(self, workerFlag)
	cmd.Env = append(os.Environ(), "WSBENCH_WORKER=1")
	cmd.Stderr = os.Stderr
	return cmd, nil
}

// progressLine rewrites one line on a terminal's stderr.
type progressLine struct {
	w     io.Writer
	conns int
	last  bench.Progress
	lastT time.Duration
}

func newProgressLine(w io.Writer, quiet bool, conns int) *progressLine {
	f, ok := w.(*os.File)
	if quiet || !ok {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return &progressLine{w: w, conns: conns}
}

func (p *progressLine) update(pr bench.Progress, elapsed time.Duration) {
	rate := 0.0
	if dt := (elapsed - p.lastT).Seconds(); dt > 0 {
		rate = float64(pr.Received-p.last.Received) / dt
	}
	p.last, p.lastT = pr, elapsed
	fmt.Fprintf(p.w, "\r\033[K[%4.0fs] conns %d/%d open, %d failed | %d sent, %.0f msgs/s | %d errors",
		elapsed.Seconds(), pr.Open, p.conns, pr.Failed, pr.Sent, rate, pr.Errors)
}

func (p *progressLine) clear() {
	if p != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
