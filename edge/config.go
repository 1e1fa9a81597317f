package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"
)

// Config configures a Server. The zero value works: every zero field takes
// the default named in its comment.
type Config struct {
	Addr      string // WebSocket listener; default ":8080"
	AdminAddr string // admin HTTP listener (/healthz, /readyz, /metrics); default "127.0.0.1:9090"; "off" disables it
	Backlog   int    // listen backlog; default SOMAXCONN

	Pollers        int // epoll shards, one goroutine each; default GOMAXPROCS
	Workers        int // worker pool size; default DefaultWorkers()
	ReadBufferSize int // a worker's pooled read buffer; default 16 KiB

	WheelTick  time.Duration // timing wheel resolution; default 100ms
	WheelSlots int           // timing wheel slots; default 4096

	HandshakeTimeout time.Duration // upgrade request must complete within it; default 10s
	PingInterval     time.Duration // ping after this long with no inbound bytes; default 30s
	PongTimeout      time.Duration // close when nothing arrives this long after a ping; default 15s
	CloseTimeout     time.Duration // wait this long for the peer's close frame; default 5s
	ShutdownTimeout  time.Duration // Shutdown gives clients this long; default DrainWindow+5s, at least 10s; must exceed DrainWindow
	// DrainWindow spreads Shutdown's closes evenly over this long (each
	// client: DrainHint's message, then 1012); 0 closes everyone at once.
	DrainWindow time.Duration
	// DrainHint, when set, gives the text message a client gets just before
	// its drain close 1012, told to reconnect after afterMs (jittered);
	// nil sends none. The application owns its wording.
	DrainHint func(afterMs int) []byte
	// AcceptRate bounds new connections accepted per second (503 with a
	// jittered Retry-After at accept above it, counted as accept_rate);
	// 0: no bound. AcceptBurst is the burst over it; default AcceptRate.
	AcceptRate  float64
	AcceptBurst int
	// ReusePort sets SO_REUSEPORT on the listener so that a new process can
	// bind the same address while this one drains (see netpoll.ListenConfig).
	ReusePort bool

	MaxMessage     int64 // largest message accepted (1009 above); default 64 KiB
	MaxHeaderBytes int   // largest upgrade request head (431 above); default 8 KiB
	MaxConns       int   // sockets held at once, handshaking ones included (503 at accept above); default: what RLIMIT_NOFILE allows
	// MaxPendingHandshakes bounds sockets still in the upgrade handshake
	// (503 at accept above); default a quarter of MaxConns, at least 64.
	MaxPendingHandshakes int
	// MaxPendingPerIP bounds one source address's sockets in the handshake
	// (503 at accept above); default 256 (room for a carrier NAT); < 0: no bound.
	MaxPendingPerIP int
	WriteQueue      int    // outbound queue bound per connection in bytes; default 256 KiB
	SlowConsumer    string // "close" (1008 "slow consumer", default) or "drop" (the message)

	Echo  bool // serve GET /echo (every message back; for conformance suites and benchmarks)
	Pprof bool // mount /debug/pprof/ on the admin listener (never its cmdline profile)

	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on /debug/pprof/. Pprof on an admin listener off loopback needs it.
	AdminToken string

	// Handlers maps a request path to its application handler (with Echo,
	// GET /echo is built in unless Handlers has it).
	Handlers map[string]Handler

	Logger *slog.Logger // default slog.Default()
}

// DefaultAcceptRate and DefaultAcceptBurst are wsedge's -accept-rate and
// -accept-burst: below what one node handshakes on 2 cores with connect
// p99 still flat (docs/benchmarks.md, "Reconnect storm").
const (
	DefaultAcceptRate  = 2000
	DefaultAcceptBurst = 500
)

// fdReserve is kept free of client connections for the listener, the
// admin API, logs and the answers (503) to connections over the limit.
const fdReserve = 64

func (c Config) withDefaults() (Config, error) {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = "127.0.0.1:9090"
	}
	if c.Pollers <= 0 {
		c.Pollers = runtime.GOMAXPROCS(0)
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers()
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 16 << 10
	}
	def(&c.WheelTick, 100*time.Millisecond)
	if c.WheelSlots <= 0 {
		c.WheelSlots = 4096
	}
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.PingInterval, 30*time.Second)
	def(&c.PongTimeout, 15*time.Second)
	def(&c.CloseTimeout, 5*time.Second)
	if c.DrainWindow < 0 {
		return c, fmt.Errorf("drain window %v: must not be negative", c.DrainWindow)
	}
	def(&c.ShutdownTimeout, max(10*time.Second, c.DrainWindow+5*time.Second))
	if c.DrainWindow > 0 && c.ShutdownTimeout <= c.DrainWindow {
		return c, fmt.Errorf("shutdown timeout %v must exceed the drain window %v (clients closed at its end need time for the close handshake)", c.ShutdownTimeout, c.DrainWindow)
	}
	if c.AcceptRate < 0 {
		return c, fmt.Errorf("accept rate %v: must not be negative (0: no bound)", c.AcceptRate)
	}
	if c.AcceptBurst <= 0 {
		c.AcceptBurst = max(1, int(c.AcceptRate))
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = 64 << 10
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 8 << 10
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns()
	}
	if c.MaxPendingHandshakes <= 0 {
		c.MaxPendingHandshakes = max(c.MaxConns/4, 64)
	}
	c.MaxPendingHandshakes = min(c.MaxPendingHandshakes, c.MaxConns)
	if c.MaxPendingPerIP == 0 {
		c.MaxPendingPerIP = 256
	}
	if c.WriteQueue <= 0 {
		c.WriteQueue = 256 << 10
	}
	switch c.SlowConsumer {
	case "":
		c.SlowConsumer = "close"
	case "close", "drop":
	default:
		return c, fmt.Errorf("slow-consumer policy %q: want close or drop", c.SlowConsumer)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for name, d := range map[string]time.Duration{"wheel tick": c.WheelTick, "handshake timeout": c.HandshakeTimeout,
		"ping interval": c.PingInterval, "pong timeout": c.PongTimeout, "close timeout": c.CloseTimeout, "shutdown timeout": c.ShutdownTimeout} {
		if d < 0 {
			return c, fmt.Errorf("%s %v: must not be negative", name, d)
		}
	}
	if c.MaxMessage > 1<<40 {
		return c, errors.New("max message over 1 TiB")
	}
	if c.AdminAddr != "off" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			return c, fmt.Errorf("admin address %q: %w", c.AdminAddr, err)
		}
		// cmdline is never served, but heap and goroutine dumps still
		// show secrets held in memory: never to anyone who can connect.
		if c.Pprof && c.AdminToken == "" && !IsLoopback(c.AdminAddr) {
			return c, fmt.Errorf("-pprof on admin listener %s (not loopback) needs an admin token (-admin-token), or listen on 127.0.0.1", c.AdminAddr)
		}
	}
	return c, nil
}

// DefaultWorkers sizes the pool at 8 per CPU (at least 16). A task never
// blocks on I/O, so more workers than this only add stacks: an idle server
// should not pay for them.
func DefaultWorkers() int { return max(16, 8*runtime.GOMAXPROCS(0)) }

// IsLoopback reports whether a listen address (host:port) binds only
// loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
