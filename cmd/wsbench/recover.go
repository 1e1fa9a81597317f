package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/wsedge/wsedge/bench"
)

const recoverUsage = `wsbench recover: N clients join a room (or -rooms R rooms) and remember
their position (offset and epoch from the join ack and every message); the
admin API publishes -before messages, then every connection drops at once,
-during messages are published over -outage, and every client reconnects at
once and rejoins with since while -after more follow live. Each client must
get every message after its last offset exactly once, in order. Reported:
rejoins recovered (ack recovered:true) and gaps (recovered:false), messages
missing and duplicated or reordered (both must be 0: exit 1 otherwise), the
time from the start of the reconnections until every rejoin was acknowledged
and until every client had every message, reconnect latency, and the
server's peak RSS (-pid: /proc/PID, else the admin /metrics). The server
needs history on (wsedge -history-size at least -during plus -after). It
stops by itself once every client is caught up, or at -deadline.

Flags:
`

func runRecover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg bench.RecoverConfig
	fs := flag.NewFlagSet("wsbench recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "", "WebSocket endpoint (ws://HOST:8080/ws)")
	fs.StringVar(&cfg.Admin, "admin", "", "admin base URL (http://HOST:9090): messages are POSTed there")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "bearer token for the admin API")
	fs.IntVar(&cfg.PID, "pid", 0, "a local server's process id: read its peak RSS from /proc/PID instead of /metrics")
	fs.IntVar(&cfg.Conns, "conns", 1000, "clients")
	fs.StringVar(&cfg.Room, "room", "recover", "room name (with -rooms R: the name plus 0..R-1)")
	fs.IntVar(&cfg.Rooms, "rooms", 1, "rooms; client i joins room i%R")
	fs.IntVar(&cfg.Before, "before", 2, "messages per room published before the drop")
	fs.IntVar(&cfg.During, "during", 20, "messages per room published during the outage")
	fs.IntVar(&cfg.After, "after", 5, "messages per room published once the reconnections start")
	fs.DurationVar(&cfg.Outage, "outage", 0, "how long every client stays away (default 2s)")
	fs.DurationVar(&cfg.Interval, "interval", 0, "time between the -after messages (default 100ms)")
	fs.Float64Var(&cfg.Rate, "rate", 2000, "connections per second for the first connect (the reconnect is all at once)")
	fs.DurationVar(&cfg.Deadline, "deadline", 0, "hard limit of the whole run (default 2m)")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", 0, "bound on one connect plus handshake (default 10s)")
	fs.IntVar(&cfg.MaxDialing, "max-dialing", 0, "handshakes in flight at once (default 1000)")
	fs.Func("source", "local addresses to bind, e.g. 127.0.0.2-127.0.0.20", func(s string) error {
		addrs, err := bench.ParseSources(s)
		cfg.Sources = addrs
		return err
	})
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "u", "user id prefix")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", os.Getenv("WSBENCH_JWT_SECRET"), "HS256 secret to sign client tokens with")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() { fmt.Fprint(stderr, recoverUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	res, err := bench.RunRecover(ctx, cfg, stderr)
	if code, done := ranStandalone(stdout, stderr, "recover", res, err, *asJSON); done {
		return code
	}
	if !*asJSON {
		c := res.Reconnect
		fmt.Fprintf(stdout, "recover: %d clients in %d room(s), %d messages per room; %d rejoins recovered, %d gaps (%s)\n",
			res.Conns, res.Rooms, res.Published, res.Recovered, res.Gaps, res.Stop)
		fmt.Fprintf(stdout, "messages: %d replayed, %d live; missing %d, duplicated or reordered %d, lost in gaps %d; errors %d\n",
			res.Replayed, res.Live, res.Missing, res.Duplicated, res.GapMissing, res.Errors)
		fmt.Fprintf(stdout, "all rejoins acknowledged after %v, all caught up after %v; reconnect p50 %v p99 %v max %v; failed handshakes %v\n",
			res.AllRecovered, res.AllCaughtUp, c.P50, c.P99, c.Max, res.Failures)
		fmt.Fprintf(stdout, "server: peak RSS %.1f MiB (%s)\n", float64(res.ServerPeakRSS)/(1<<20), res.RSSSource)
	}
	switch {
	case res.Stop == bench.StopInterrupted:
		return exitInterrupted
	case res.Stop == "deadline":
		return exitDeadline
	case res.Missing > 0 || res.Duplicated > 0:
		fmt.Fprintln(stderr, "wsbench recover: FAIL messages missing or duplicated")
		return exitThreshold
	}
	return exitOK
}
