package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/wsedge/wsedge/bench"
)

const stormUsage = `wsbench storm: hold N clients that reconnect the way clients/js does (a
{"type":"reconnect","after_ms":N} hint: after_ms plus up to 1 s; else
full-jitter backoff from 500 ms to 20 s), wait while the server restarts
(-restart-cmd, or the operator), and report: clients that lost their
connection, time until all were back, reconnect latency p50/p99, failed
handshakes by reason, the peak reconnect rate per second and per 100 ms,
the longest any client went without a connection (and beyond the wait it
chose), and with -admin (repeat it for the old and the new server) the
servers' peak CPU from the restart on and peak RSS. It stops once every
client is back, or at -deadline.

Flags:
`

type urlList []string

func (l *urlList) String() string     { return fmt.Sprint(*l) }
func (l *urlList) Set(v string) error { *l = append(*l, v); return nil }

func runStorm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg bench.StormConfig
	var admin urlList
	fs := flag.NewFlagSet("wsbench storm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "", "WebSocket endpoint (ws://HOST:8080/ws)")
	fs.Var(&admin, "admin", "admin base URL to sample /metrics from (repeat: old and new server)")
	fs.IntVar(&cfg.Conns, "conns", 1000, "clients to hold")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "connections per second while ramping up")
	fs.StringVar(&cfg.RestartCmd, "restart-cmd", "", "shell command that restarts the server, run once every client is connected (default: wait for the operator)")
	fs.DurationVar(&cfg.Deadline, "deadline", 0, "hard limit of the whole run (default 2m)")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", 0, "bound on one connect plus handshake (default 10s)")
	fs.IntVar(&cfg.MaxDialing, "max-dialing", 0, "handshakes in flight at once (default 1000)")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "u", "user id prefix")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", os.Getenv("WSBENCH_JWT_SECRET"), "HS256 secret to sign client tokens with")
	fs.Func("source", "local `addresses` to bind round robin, e.g. 127.0.0.2-127.0.0.20 (past one address's ephemeral ports and the server's per-address pending bound)", func(s string) error {
		addrs, err := bench.ParseSources(s)
		cfg.Sources = addrs
		return err
	})
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() { fmt.Fprint(stderr, stormUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	cfg.Admin = admin
	res, err := bench.RunStorm(ctx, cfg, stderr)
	if code, done := ranStandalone(stdout, stderr, "storm", res, err, *asJSON); done {
		return code
	}
	if !*asJSON {
		c := res.Connect
		fmt.Fprintf(stdout, "storm: %d clients, %d lost their connection (%d after a reconnect hint); all back after %v (%s)\n",
			res.Conns, res.Lost, res.Hinted, res.AllBack, res.Stop)
		fmt.Fprintf(stdout, "reconnects: %d, connect p50 %v p99 %v max %v; peak %d/s (%d in 100 ms); failed handshakes %v\n",
			c.Count, c.P50, c.P99, c.Max, res.PeakConnectRate, res.PeakConnect100ms, res.Failures)
		fmt.Fprintf(stdout, "longest without a connection %v, %v beyond the client's own wait\n", res.MaxDown, res.MaxOverWait)
		fmt.Fprintf(stdout, "server: peak CPU %.2f cores, peak RSS %.1f MiB\n", res.ServerPeakCPU, float64(res.ServerPeakRSS)/(1<<20))
	}
	switch res.Stop {
	case "deadline":
		return exitDeadline
	case "interrupted":
		return exitInterrupted
	}
	return exitOK
}

// ranStandalone handles what storm and recover share after their run: a
// failed run as its exit code (done), else the result as JSON when asked;
// the caller then prints its text and picks the exit code from the result.
func ranStandalone(stdout, stderr io.Writer, name string, res any, err error, asJSON bool) (code int, done bool) {
	if err != nil {
		fmt.Fprintf(stderr, "wsbench %s: %v\n", name, err)
		if errors.Is(err, bench.ErrConfig) {
			return exitUsage, true
		}
		return exitFailed, true
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	return 0, false
}
