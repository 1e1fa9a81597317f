package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/edge/app"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run is main without the process exit, for tests; ready (if not nil) gets
// the started server. Exit codes: 0 after a clean shutdown, 1 when the
// server cannot start, 2 for bad flags or configuration.
func run(args []string, stdout, stderr io.Writer, ready chan<- *edge.Server) int {
	fs := flag.NewFlagSet("wsedge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg edge.Config
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.StringVar(&cfg.Addr, "addr", ":8080", "WebSocket listen address (host:port)")
	fs.StringVar(&cfg.AdminAddr, "admin", "127.0.0.1:9090", `admin HTTP listen address for the /v1/ push API, /healthz, /readyz, /metrics; "off" disables it`)
	fs.IntVar(&cfg.Backlog, "backlog", 0, "listen backlog (0: the system's SOMAXCONN)")
	fs.IntVar(&cfg.Pollers, "pollers", runtime.GOMAXPROCS(0), "epoll shards, one goroutine each")
	fs.IntVar(&cfg.Workers, "workers", edge.DefaultWorkers(), "worker pool size: goroutines that decode and handle readable connections (8 per CPU, at least 16)")
	fs.IntVar(&cfg.ReadBufferSize, "read-buffer", 16<<10, "bytes of a worker's pooled read buffer")
	fs.DurationVar(&cfg.WheelTick, "wheel-tick", 100*time.Millisecond, "timing wheel resolution: timers fire at most this late")
	fs.IntVar(&cfg.WheelSlots, "wheel-slots", 4096, "timing wheel slots (rounded up to a power of two)")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", 10*time.Second, "time allowed for the HTTP upgrade request")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 30*time.Second, "send a ping after this long with no inbound bytes")
	fs.DurationVar(&cfg.PongTimeout, "pong-timeout", 15*time.Second, "close a connection silent this long after a ping")
	fs.DurationVar(&cfg.CloseTimeout, "close-timeout", 5*time.Second, "wait this long for the client's close frame")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "on SIGTERM/SIGINT, give clients this long before exiting (must exceed -drain-window)")
	fs.DurationVar(&cfg.DrainWindow, "drain-window", 10*time.Second, `on SIGTERM/SIGINT, close clients evenly over this long, each with a {"type":"reconnect"} hint then close 1012 (0: all at once; a second signal: all at once)`)
	fs.Float64Var(&cfg.AcceptRate, "accept-rate", edge.DefaultAcceptRate, "new connections accepted per second; 503 with a jittered Retry-After at accept above it (0: no bound)")
	fs.IntVar(&cfg.AcceptBurst, "accept-burst", edge.DefaultAcceptBurst, "burst of new connections allowed over -accept-rate")
	fs.BoolVar(&cfg.ReusePort, "reuseport", false, "set SO_REUSEPORT on the listener, so a new wsedge can start on the same address while this one drains (new connections go to the newer; see docs/operations.md)")
	fs.Int64Var(&cfg.MaxMessage, "max-message", 64<<10, "largest message in bytes (close 1009 above)")
	fs.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", 8<<10, "largest upgrade request head in bytes (431 above)")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "sockets held at once, handshaking ones included; 503 at accept above (0: what the open-file limit allows)")
	fs.IntVar(&cfg.MaxPendingHandshakes, "max-pending-handshakes", 0, "sockets still in the upgrade handshake; 503 at accept above (0: a quarter of -max-conns, at least 64)")
	fs.IntVar(&cfg.MaxPendingPerIP, "max-pending-per-ip", 256, "sockets in the upgrade handshake from one source address; 503 at accept above (-1: no bound)")
	fs.IntVar(&cfg.WriteQueue, "write-queue", 256<<10, "bytes queued per connection for a client that reads slowly")
	fs.StringVar(&cfg.SlowConsumer, "slow-consumer", "close", "when a client's write queue is full: close (1008) or drop the message")
	fs.BoolVar(&cfg.Echo, "echo", false, "serve GET /echo (echoes every message; for conformance suites and benchmarks; with a JWT key it asks for the same token and origin as /ws)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "mount /debug/pprof/ on the admin listener (asks for the admin token when one is set; off loopback it must be)")
	gcPercent := fs.Int("gc-percent", defaultGCPercent, "garbage collector target (as GOGC): the heap may grow this many percent over live data before a collection; lower holds idle connections in less memory (a GOGC environment variable wins over the default)")
	var appCfg app.Config
	jwtSecret := fs.String("jwt-secret", "", "HS256 secret: clients must present a JWT (?token= or Authorization: Bearer) whose sub is the user id (visible in the process list: prefer -jwt-secret-file or WSEDGE_JWT_SECRET)")
	jwtSecretFile := fs.String("jwt-secret-file", "", "file holding the HS256 secret (surrounding whitespace trimmed)")
	jwtPublicKey := fs.String("jwt-public-key", "", "PEM file with an RSA (RS256) or P-256 ECDSA (ES256) public key for client JWTs")
	fs.StringVar(&appCfg.JWTAudience, "jwt-audience", "", "the token's aud claim must contain this value (401 otherwise)")
	fs.StringVar(&appCfg.JWTIssuer, "jwt-issuer", "", "the token's iss claim must equal this (401 otherwise)")
	fs.BoolVar(&appCfg.JWTAllowNoExp, "jwt-allow-no-exp", false, "admit tokens without an exp claim (by default exp is required and a connection is closed with 4003 when its token expires)")
	origins := fs.String("allowed-origins", "", "comma-separated exact Origin values browsers may connect from (default: any)")
	fs.IntVar(&appCfg.MaxRoomsPerConn, "max-rooms-per-conn", 64, "rooms one connection may join")
	fs.IntVar(&appCfg.MaxRooms, "max-rooms", app.DefaultMaxRooms, "rooms with a member on this node (each a NATS subscription in a cluster); a join that would create one more gets too_many_rooms")
	clientRate := fs.Float64("client-rate", 0, fmt.Sprintf("client messages per second per connection; 0 turns the limit off (default: %d with a JWT key, off without)", app.DefaultClientRate))
	fs.IntVar(&appCfg.ClientBurst, "client-burst", 0, fmt.Sprintf("burst allowed over -client-rate (0: %d with the default rate, else the rate rounded up)", app.DefaultClientBurst))
	fs.StringVar(&appCfg.AdminToken, "admin-token", "", "bearer token required on the admin /v1/ API (required when -admin is not loopback; visible in the process list: prefer -admin-token-file or WSEDGE_ADMIN_TOKEN)")
	adminTokenFile := fs.String("admin-token-file", "", "file holding the admin token (surrounding whitespace trimmed)")
	fs.Int64Var(&appCfg.AdminMaxBody, "admin-max-body", 1<<20, "largest admin API request body in bytes (413 above)")
	natsURLs := fs.String("nats", "", "comma-separated NATS server URLs (nats://host:4222): join the other nodes on them as one cluster (default: a single node, no NATS)")
	nodeID := fs.String("node-id", "", "this node's name in the cluster (default: hostname-<random>)")
	clusterTimeout := fs.Duration("cluster-timeout", 500*time.Millisecond, "how long a node waits for other nodes' answers (remote sends, admin pushes, presence)")
	clusterPrefix := fs.String("cluster-prefix", "wsedge", "first token of the cluster's NATS subjects (one per cluster sharing a NATS)")
	clusterQueueBytes := fs.Int64("cluster-queue-bytes", 64<<20, "bytes of bus messages a node queues for its dispatchers; past it they are dropped (wsedge_bus_queue_drops_total)")
	natsCreds := fs.String("nats-creds", "", "NATS credentials file (user JWT and nkey seed) to authenticate the bus with")
	natsNkey := fs.String("nats-nkey", "", "NATS nkey seed file to authenticate the bus with")
	natsCA := fs.String("nats-ca", "", "PEM file of the CAs that sign the NATS server's certificate: connect with TLS")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "wsedge %s: WebSocket edge server for many mostly idle clients.\n\nUsage: wsedge [flags]\n\nEvery flag can also be set as WSEDGE_<FLAG> (e.g. WSEDGE_ADDR, WSEDGE_MAX_CONNS).\n\n", version)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wsedge: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	onCommandLine := givenFlags(fs)
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "wsedge: %v\n", err)
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "wsedge", version)
		return 0
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "wsedge: %v\n", err)
		return 2
	}
	cfg.Logger = logger
	setGCPercent(fs, *gcPercent, os.LookupEnv)
	given := givenFlags(fs)
	for _, f := range []struct{ name, in string }{{"jwt-secret", "jwt-secret-file"}, {"admin-token", "admin-token-file"}} {
		if given[f.name] && given[f.in] {
			fmt.Fprintf(stderr, "wsedge: set -%s or -%s, not both\n", f.name, f.in)
			return 2
		}
		if onCommandLine[f.name] {
			logger.Warn("secret passed on the command line: it is visible in the process list; use -"+f.in+" or WSEDGE_"+strings.ToUpper(strings.ReplaceAll(f.name, "-", "_")), "flag", "-"+f.name)
		}
	}
	if *jwtSecretFile != "" {
		if *jwtSecret, err = readSecret("-jwt-secret-file", *jwtSecretFile); err != nil {
			fmt.Fprintf(stderr, "wsedge: %v\n", err)
			return 2
		}
	}
	if *adminTokenFile != "" {
		if appCfg.AdminToken, err = readSecret("-admin-token-file", *adminTokenFile); err != nil {
			fmt.Fprintf(stderr, "wsedge: %v\n", err)
			return 2
		}
	}
	// -client-rate not given keeps app's default (on with a JWT key); given
	// as 0 it turns the limit off.
	switch {
	case !given["client-rate"]:
	case *clientRate == 0:
		appCfg.ClientRate = app.NoClientRate
	case *clientRate < 0:
		fmt.Fprintf(stderr, "wsedge: -client-rate %v: client rate must not be negative (0 turns it off)\n", *clientRate)
		return 2
	default:
		appCfg.ClientRate = *clientRate
	}

	if cfg.DrainWindow > 0 && cfg.ShutdownTimeout <= cfg.DrainWindow {
		fmt.Fprintf(stderr, "wsedge: -shutdown-timeout %v must exceed -drain-window %v (the clients closed last need time for their close handshake)\n", cfg.ShutdownTimeout, cfg.DrainWindow)
		return 2
	}

	nofile, err := edge.RaiseOpenFileLimit()
	if err != nil {
		fmt.Fprintf(stderr, "wsedge: open-file limit: %v\n", err)
		return 1
	}
	appCfg.JWTSecret = []byte(*jwtSecret)
	if *jwtPublicKey != "" {
		if appCfg.JWTPublicKeyPEM, err = os.ReadFile(*jwtPublicKey); err != nil {
			fmt.Fprintf(stderr, "wsedge: -jwt-public-key: %v\n", err)
			return 2
		}
	}
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			appCfg.AllowedOrigins = append(appCfg.AllowedOrigins, o)
		}
	}
	if *natsURLs != "" {
		cc := &app.ClusterConfig{NodeID: *nodeID, Timeout: *clusterTimeout, Prefix: *clusterPrefix, QueueBytes: *clusterQueueBytes,
			CredsFile: *natsCreds, NkeyFile: *natsNkey, CAFile: *natsCA}
		for _, u := range strings.Split(*natsURLs, ",") {
			if u = strings.TrimSpace(u); u != "" {
				cc.URLs = append(cc.URLs, u)
			}
		}
		appCfg.Cluster = cc
	}
	cfg.AdminToken = appCfg.AdminToken // pprof asks for the same token as /v1/
	srv, a, err := app.NewServer(cfg, appCfg)
	if err != nil {
		fmt.Fprintf(stderr, "wsedge: %v\n", err)
		return 2
	}
	defer a.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	if err := srv.Start(); err != nil {
		fmt.Fprintf(stderr, "wsedge: %v\n", err)
		return 1
	}
	eff := srv.Config()
	logger.Info("wsedge listening", "version", version, "addr", srv.Addr().String(), "admin", fmt.Sprint(srv.AdminAddr()),
		"open_file_limit", nofile, "max_conns", eff.MaxConns, "pollers", eff.Pollers, "workers", eff.Workers)
	if ready != nil {
		ready <- srv
	}
	got := <-sig
	logger.Info("shutting down", "signal", got.String(), "drain_window", eff.DrainWindow.String(), "timeout", eff.ShutdownTimeout.String())
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Shutdown(context.Background()) }()
	for wait := true; wait; {
		select {
		case err := <-stopped:
			if err != nil {
				logger.Warn("shutdown timed out; remaining connections dropped", "err", err)
			}
			wait = false
		case got = <-sig:
			logger.Info("second signal: closing every remaining client now", "signal", got.String())
			srv.DrainNow()
		}
	}
	logger.Info("stopped")
	return 0
}

// givenFlags returns the names of the flags set so far: on the command line
// before applyEnv, from either source after it.
func givenFlags(fs *flag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
}

// readSecret reads a secret from a file, trimming surrounding whitespace
// (the trailing newline editors add); an empty secret is an error.
func readSecret(flagName, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", flagName, path)
	}
	return s, nil
}

// applyEnv sets every flag not given on the command line from
// WSEDGE_<NAME>, if that variable is set.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := givenFlags(fs)
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		key := "WSEDGE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(key); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", key, v, e)
			}
		}
	})
	return err
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

// defaultGCPercent is lower than Go's 100 because wsedge's steady state is
// many idle connections and few allocations: the hot paths (echo, fan-out
// of a frame encoded once, keepalive) allocate nothing, so collections are
// rare and cheap, while the heap's headroom over live data is most of the
// memory an idle connection costs. docs/operations.md has the figures.
const defaultGCPercent = 50

// setGCPercent applies -gc-percent, unless it was left at its default and
// GOGC is set in the environment (the runtime already applied that).
func setGCPercent(fs *flag.FlagSet, percent int, lookup func(string) (string, bool)) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "gc-percent" })
	if _, env := lookup("GOGC"); env && !given {
		return
	}
	debug.SetGCPercent(percent)
}
