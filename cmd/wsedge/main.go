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
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/edge/app"
	"github.com/wsedge/wsedge/edge/cluster"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run is main without the process exit, for tests; ready (if not nil) gets
// the started server. Exit codes: 0 after a clean shutdown, 1 when the
// server cannot start, 2 for bad flags or configuration.
func run(args []string, stdout, stderr io.Writer, ready chan<- *edge.Server) int {
	o, code, done := parseArgs(args, stdout, stderr)
	if done {
		return code
	}
	logger, err := newLogger(stderr, o.logFormat, o.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "wsedge: %v\n", err)
		return 2
	}
	setGCPercent(o.fs, o.gcPercent, os.LookupEnv)
	if err := o.loadSecrets(logger); err != nil {
		fmt.Fprintf(stderr, "wsedge: %v\n", err)
		return 2
	}
	cfg, appCfg, err := o.configs(logger)
	if err != nil {
		fmt.Fprintf(stderr, "wsedge: %v\n", err)
		return 2
	}
	// Before the server is built: its MaxConns default is what the raised
	// soft limit allows.
	nofile, err := edge.RaiseOpenFileLimit()
	if err != nil {
		fmt.Fprintf(stderr, "wsedge: open-file limit: %v\n", err)
		return 1
	}
	return serve(cfg, appCfg, nofile, stderr, ready)
}

// options are the command line and WSEDGE_ variables: the edge and app
// configs the flags fill directly, and the values that need reading,
// splitting or checking before they become config.
type options struct {
	fs            *flag.FlagSet
	onCommandLine map[string]bool // flags given as arguments, not from the environment

	edge edge.Config
	app  app.Config

	showVersion                            bool
	compression                            bool // !edge.Config.DisableCompression
	gcPercent                              int
	logFormat, logLevel                    string
	jwtSecret, jwtSecretFile, jwtPublicKey string
	adminTokenFile                         string
	origins                                string
	clientRate                             float64
	natsURLs, nodeID, clusterPrefix        string
	clusterTimeout                         time.Duration
	clusterQueueBytes                      int64
	natsCreds, natsNkey, natsCA            string
}

// newOptions defines every flag. The defaults are edge.DefaultConfig's and
// app.DefaultConfig's, except where 0 means "decided at start": the limits
// derived from the open-file limit (raised after parsing) or from other
// flags, the rate limit that depends on a JWT key, and the cluster's own
// defaults (ClusterConfig fills them).
func newOptions(stderr io.Writer) *options {
	o := &options{fs: flag.NewFlagSet("wsedge", flag.ContinueOnError), edge: edge.DefaultConfig(), app: app.DefaultConfig()}
	o.edge.MaxConns, o.edge.MaxPendingHandshakes = 0, 0
	fs, cfg, appCfg := o.fs, &o.edge, &o.app
	cl := cluster.DefaultConfig()
	fs.SetOutput(stderr)
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "WebSocket listen address (host:port)")
	fs.StringVar(&cfg.AdminAddr, "admin", cfg.AdminAddr, `admin HTTP listen address for the /v1/ push API, /healthz, /readyz, /metrics; "off" disables it`)
	fs.IntVar(&cfg.Backlog, "backlog", cfg.Backlog, "listen backlog (0: the system's SOMAXCONN)")
	fs.IntVar(&cfg.Pollers, "pollers", cfg.Pollers, "epoll shards, one goroutine each (GOMAXPROCS, the CPUs Go uses)")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "worker pool size: goroutines that decode and handle readable connections (8 per CPU, at least 16)")
	fs.IntVar(&cfg.ReadBufferSize, "read-buffer", cfg.ReadBufferSize, "bytes of a worker's pooled read buffer")
	fs.IntVar(&cfg.PollBatch, "poll-batch", cfg.PollBatch, "ready connections one worker task serves in turn per shard round (1: a task each)")
	fs.DurationVar(&cfg.PollInPlace, "poll-in-place", cfg.PollInPlace, "a shard serves a quiet round (one batch) itself instead of waking a worker, and moves its polling to a new goroutine if the batch runs longer than this, or at once for a publish that waits for JetStream on its worker (negative: never)")
	fs.DurationVar(&cfg.WheelTick, "wheel-tick", cfg.WheelTick, "timing wheel resolution: timers fire at most this late")
	fs.IntVar(&cfg.WheelSlots, "wheel-slots", cfg.WheelSlots, "timing wheel slots (rounded up to a power of two)")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "time allowed for the HTTP upgrade request")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", cfg.PingInterval, "send a ping after this long with no inbound bytes")
	fs.DurationVar(&cfg.PongTimeout, "pong-timeout", cfg.PongTimeout, "close a connection silent this long after a ping")
	fs.DurationVar(&cfg.CloseTimeout, "close-timeout", cfg.CloseTimeout, "wait this long for the client's close frame")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "on SIGTERM/SIGINT, give clients this long before exiting (must exceed -drain-window)")
	fs.DurationVar(&cfg.DrainWindow, "drain-window", cfg.DrainWindow, `on SIGTERM/SIGINT, close clients evenly over this long, each with a {"type":"reconnect"} hint then close 1012 (0: all at once; a second signal: all at once)`)
	fs.Float64Var(&cfg.AcceptRate, "accept-rate", cfg.AcceptRate, "new connections accepted per second; 503 with a jittered Retry-After at accept above it (0: no bound)")
	fs.IntVar(&cfg.AcceptBurst, "accept-burst", cfg.AcceptBurst, "burst of new connections allowed over -accept-rate")
	fs.BoolVar(&cfg.ReusePort, "reuseport", cfg.ReusePort, "set SO_REUSEPORT on the listener, so a new wsedge can start on the same address while this one drains (new connections go to the newer; see docs/operations.md)")
	fs.Int64Var(&cfg.MaxMessage, "max-message", cfg.MaxMessage, "largest message in bytes (close 1009 above)")
	fs.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", cfg.MaxHeaderBytes, "largest upgrade request head in bytes (431 above)")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "sockets held at once, handshaking ones included; 503 at accept above (0: the open-file limit less 64)")
	fs.IntVar(&cfg.MaxPendingHandshakes, "max-pending-handshakes", cfg.MaxPendingHandshakes, "sockets still in the upgrade handshake; 503 at accept above (0: a quarter of -max-conns, at least 64)")
	fs.IntVar(&cfg.MaxPendingPerIP, "max-pending-per-ip", cfg.MaxPendingPerIP, "sockets in the upgrade handshake from one source address; 503 at accept above (-1: no bound)")
	fs.IntVar(&cfg.WriteQueue, "write-queue", cfg.WriteQueue, "bytes queued per connection for a client that reads slowly")
	fs.StringVar(&cfg.SlowConsumer, "slow-consumer", cfg.SlowConsumer, "when a client's write queue is full: close (1008) or drop the message")
	o.compression = !cfg.DisableCompression
	fs.BoolVar(&o.compression, "compression", o.compression, "accept permessage-deflate (RFC 7692) offers, without context takeover: an idle connection holds nothing for it; declined offers count in wsedge_deflate_offers_total")
	fs.IntVar(&cfg.CompressionLevel, "compression-level", cfg.CompressionLevel, "deflate level 1 (fastest) to 9 (smallest), or -2 (Huffman only); 1 is within 3% of 9's size on JSON at a twelfth of its CPU")
	fs.IntVar(&cfg.CompressionMinSize, "compression-min-size", cfg.CompressionMinSize, "messages smaller than this many bytes are sent uncompressed (-1: compress all)")
	fs.BoolVar(&cfg.Echo, "echo", cfg.Echo, "serve GET /echo (echoes every message; for conformance suites and benchmarks; with a JWT key it asks for the same token and origin as /ws)")
	fs.BoolVar(&cfg.Pprof, "pprof", cfg.Pprof, "mount /debug/pprof/ on the admin listener (asks for the admin token when one is set; off loopback it must be)")
	fs.IntVar(&o.gcPercent, "gc-percent", defaultGCPercent, "garbage collector target (as GOGC): the heap may grow this many percent over live data before a collection; lower holds idle connections in less memory (a GOGC environment variable wins over the default)")
	fs.StringVar(&o.jwtSecret, "jwt-secret", "", "HS256 secret: clients must present a JWT (?token= or Authorization: Bearer) whose sub is the user id (visible in the process list: prefer -jwt-secret-file or WSEDGE_JWT_SECRET)")
	fs.StringVar(&o.jwtSecretFile, "jwt-secret-file", "", "file holding the HS256 secret (surrounding whitespace trimmed)")
	fs.StringVar(&o.jwtPublicKey, "jwt-public-key", "", "PEM file with an RSA (RS256) or P-256 ECDSA (ES256) public key for client JWTs")
	fs.StringVar(&appCfg.JWTAudience, "jwt-audience", appCfg.JWTAudience, "the token's aud claim must contain this value (401 otherwise)")
	fs.StringVar(&appCfg.JWTIssuer, "jwt-issuer", appCfg.JWTIssuer, "the token's iss claim must equal this (401 otherwise)")
	fs.BoolVar(&appCfg.JWTAllowNoExp, "jwt-allow-no-exp", appCfg.JWTAllowNoExp, "admit tokens without an exp claim (by default exp is required and a connection is closed with 4003 when its token expires)")
	fs.StringVar(&o.origins, "allowed-origins", "", "comma-separated exact Origin values browsers may connect from (default: any)")
	fs.IntVar(&appCfg.MaxRoomsPerConn, "max-rooms-per-conn", appCfg.MaxRoomsPerConn, "rooms one connection may join")
	fs.IntVar(&appCfg.MaxRooms, "max-rooms", appCfg.MaxRooms, "rooms with a member on this node (each a NATS subscription in a cluster); a join that would create one more gets too_many_rooms")
	fs.Float64Var(&o.clientRate, "client-rate", 0, fmt.Sprintf("client messages per second per connection; 0 turns the limit off (default: %d with a JWT key, off without)", app.DefaultClientRate))
	fs.IntVar(&appCfg.ClientBurst, "client-burst", appCfg.ClientBurst, fmt.Sprintf("burst allowed over -client-rate (0: %d with the default rate, else the rate rounded up)", app.DefaultClientBurst))
	fs.StringVar(&appCfg.RoomPolicy, "room-policy", appCfg.RoomPolicy, "who may join and publish to a room: open (anyone), claims (the token's rooms/publish patterns or a room token) or hook (-join-hook decides); refused: forbidden")
	fs.StringVar(&appCfg.JoinHook, "join-hook", appCfg.JoinHook, "URL that -room-policy hook POSTs {user,room,node} to for each join (the admin token as bearer); 200 {\"allow\":true,\"publish\":false} or 403")
	fs.IntVar(&appCfg.HookConcurrency, "hook-concurrency", appCfg.HookConcurrency, "join hook calls in flight at once")
	fs.IntVar(&appCfg.HookQueue, "hook-queue", appCfg.HookQueue, "joins waiting for a join hook call; past it a join gets unavailable (wsedge_room_hook_requests_total{result=\"queue_full\"})")
	fs.DurationVar(&appCfg.HookTimeout, "hook-timeout", appCfg.HookTimeout, "time allowed for one join hook call; past it the join gets unavailable")
	fs.DurationVar(&appCfg.HookCache, "hook-cache", appCfg.HookCache, "keep a join hook's answer per user and room this long (0: off)")
	fs.IntVar(&appCfg.HookCacheSize, "hook-cache-size", appCfg.HookCacheSize, "join hook answers cached at most")
	fs.IntVar(&appCfg.ConnsPerUser, "conns-per-user", appCfg.ConnsPerUser, "connections one user may hold (across the cluster); one more replaces the oldest with 4000")
	fs.StringVar(&appCfg.AdminToken, "admin-token", appCfg.AdminToken, "bearer token required on the admin /v1/ API (required when -admin is not loopback; visible in the process list: prefer -admin-token-file or WSEDGE_ADMIN_TOKEN)")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "file holding the admin token (surrounding whitespace trimmed)")
	fs.Int64Var(&appCfg.AdminMaxBody, "admin-max-body", appCfg.AdminMaxBody, "largest admin API request body in bytes (413 above)")
	fs.IntVar(&appCfg.FanoutWriters, "fanout-writers", appCfg.FanoutWriters, "CPUs one fan-out (broadcast, room push) keeps busy at most: its batches go out in this many lanes at once (all CPUs but one, at least 1)")
	fs.IntVar(&appCfg.HistorySize, "history-size", appCfg.HistorySize, "messages each room keeps for clients that rejoin with since; 0 turns history (and offsets) off; in a cluster, per room in the JetStream stream")
	fs.DurationVar(&appCfg.HistoryTTL, "history-ttl", appCfg.HistoryTTL, "how long a room keeps a message")
	fs.Int64Var(&appCfg.HistoryMaxBytes, "history-max-bytes", appCfg.HistoryMaxBytes, "bytes all room histories on this node may hold; past it the largest lose their oldest messages (wsedge_history_evictions_total); in a cluster, the JetStream stream's MaxBytes")
	fs.StringVar(&appCfg.HistoryStorage, "history-storage", appCfg.HistoryStorage, "cluster: the history stream's JetStream storage, memory or file")
	fs.IntVar(&appCfg.HistoryReplicas, "history-replicas", appCfg.HistoryReplicas, "cluster: the history stream's JetStream replicas")
	fs.StringVar(&o.natsURLs, "nats", "", "comma-separated NATS server URLs (nats://host:4222): join the other nodes on them as one cluster (default: a single node, no NATS)")
	fs.StringVar(&o.nodeID, "node-id", "", "this node's name in the cluster (default: hostname-<random>)")
	fs.DurationVar(&o.clusterTimeout, "cluster-timeout", cl.Timeout, "how long a node waits for other nodes' answers (remote sends, admin pushes, presence)")
	fs.StringVar(&o.clusterPrefix, "cluster-prefix", cl.Prefix, "first token of the cluster's NATS subjects (one per cluster sharing a NATS)")
	fs.Int64Var(&o.clusterQueueBytes, "cluster-queue-bytes", cl.QueueBytes, "bytes of bus messages a node queues for its dispatchers; past it they are dropped (wsedge_bus_queue_drops_total)")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "NATS credentials file (user JWT and nkey seed) to authenticate the bus with")
	fs.StringVar(&o.natsNkey, "nats-nkey", "", "NATS nkey seed file to authenticate the bus with")
	fs.StringVar(&o.natsCA, "nats-ca", "", "PEM file of the CAs that sign the NATS server's certificate: connect with TLS")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "wsedge %s: WebSocket edge server for many mostly idle clients.\n\nUsage: wsedge [flags]\n\nEvery flag can also be set as WSEDGE_<FLAG> (e.g. WSEDGE_ADDR, WSEDGE_MAX_CONNS).\n\n", version)
		fs.PrintDefaults()
	}
	return o
}

// parseArgs reads the command line, then WSEDGE_ variables for the flags
// not on it. done says run has finished with code: -h, -version, or an
// error already reported.
func parseArgs(args []string, stdout, stderr io.Writer) (o *options, code int, done bool) {
	o = newOptions(stderr)
	if err := o.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, true
		}
		return nil, 2, true
	}
	if o.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wsedge: unexpected argument %q\n", o.fs.Arg(0))
		return nil, 2, true
	}
	o.onCommandLine = givenFlags(o.fs)
	if err := applyEnv(o.fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "wsedge: %v\n", err)
		return nil, 2, true
	}
	if o.showVersion {
		fmt.Fprintln(stdout, "wsedge", version)
		return nil, 0, true
	}
	return o, 0, false
}

// loadSecrets reads the secret and key files into the app config, refusing
// a secret given both inline and as a file, and warning when one is on the
// command line.
func (o *options) loadSecrets(logger *slog.Logger) error {
	given := givenFlags(o.fs)
	for _, f := range []struct{ name, in string }{{"jwt-secret", "jwt-secret-file"}, {"admin-token", "admin-token-file"}} {
		if given[f.name] && given[f.in] {
			return fmt.Errorf("set -%s or -%s, not both", f.name, f.in)
		}
		if o.onCommandLine[f.name] {
			logger.Warn("secret passed on the command line: it is visible in the process list; use -"+f.in+" or WSEDGE_"+strings.ToUpper(strings.ReplaceAll(f.name, "-", "_")), "flag", "-"+f.name)
		}
	}
	var err error
	if o.jwtSecretFile != "" {
		if o.jwtSecret, err = readSecret("-jwt-secret-file", o.jwtSecretFile); err != nil {
			return err
		}
	}
	if o.adminTokenFile != "" {
		if o.app.AdminToken, err = readSecret("-admin-token-file", o.adminTokenFile); err != nil {
			return err
		}
	}
	o.app.JWTSecret = []byte(o.jwtSecret)
	if o.jwtPublicKey != "" {
		if o.app.JWTPublicKeyPEM, err = os.ReadFile(o.jwtPublicKey); err != nil {
			return fmt.Errorf("-jwt-public-key: %w", err)
		}
	}
	return nil
}

// configs turns the options into the edge and app configs: the values
// that need splitting (origins, NATS URLs) or a rule (-client-rate).
func (o *options) configs(logger *slog.Logger) (edge.Config, app.Config, error) {
	cfg, appCfg := o.edge, o.app
	cfg.Logger = logger
	cfg.DisableCompression = !o.compression
	// -client-rate not given keeps app's default (on with a JWT key); given
	// as 0 it turns the limit off.
	switch {
	case !givenFlags(o.fs)["client-rate"]:
	case o.clientRate == 0:
		appCfg.ClientRate = app.NoClientRate
	case o.clientRate < 0:
		return cfg, appCfg, fmt.Errorf("-client-rate %v: client rate must not be negative (0 turns it off)", o.clientRate)
	default:
		appCfg.ClientRate = o.clientRate
	}
	appCfg.AllowedOrigins = splitList(o.origins)
	if appCfg.HookCache == 0 {
		appCfg.HookCache = app.NoHookCache // -hook-cache 0 turns the cache off
	}
	if o.natsURLs != "" {
		appCfg.Cluster = &cluster.Config{NodeID: o.nodeID, Timeout: o.clusterTimeout, Prefix: o.clusterPrefix, QueueBytes: o.clusterQueueBytes,
			CredsFile: o.natsCreds, NkeyFile: o.natsNkey, CAFile: o.natsCA, URLs: splitList(o.natsURLs)}
	}
	cfg.AdminToken = appCfg.AdminToken // pprof asks for the same token as /v1/
	if cfg.DrainWindow > 0 && cfg.ShutdownTimeout <= cfg.DrainWindow {
		return cfg, appCfg, fmt.Errorf("-shutdown-timeout %v must exceed -drain-window %v (the clients closed last need time for their close handshake)", cfg.ShutdownTimeout, cfg.DrainWindow)
	}
	return cfg, appCfg, nil
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// serve builds and starts the server, then waits for SIGTERM or SIGINT and
// shuts it down.
func serve(cfg edge.Config, appCfg app.Config, nofile uint64, stderr io.Writer, ready chan<- *edge.Server) int {
	logger := cfg.Logger
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
