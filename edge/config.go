package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/internal/defaults"
	"github.com/wsedge/wsedge/netpoll"
	"github.com/wsedge/wsedge/wheel"
)

// Config configures a Server. The zero value works: every zero field takes
// the default named in its comment, which is DefaultConfig's value, except
// DrainWindow and AcceptRate, whose zero means off (all at once, no bound):
// DefaultConfig has the production values cmd/wsedge's flags start from.
type Config struct {
	Addr      string // WebSocket listener; default ":8080"
	AdminAddr string // admin HTTP listener (/healthz, /readyz, /metrics); default "127.0.0.1:9090"; "off" disables it
	Backlog   int    // listen backlog; default SOMAXCONN

	Pollers        int // epoll shards, one goroutine each; default GOMAXPROCS
	Workers        int // worker pool size; default DefaultWorkers()
	ReadBufferSize int // a worker's pooled read buffer; default 16 KiB
	PollBatch      int // ready connections one worker task serves per shard round; default netpoll.DefaultBatchSize
	// PollInPlace lets a shard serve a quiet round (one batch) itself
	// instead of waking a worker, moving its loop to a new goroutine if the
	// batch is still running after this long, or at once when a task says
	// it will wait (Conn.WillBlock; netpoll Config.InPlace); default
	// netpoll.DefaultInPlace; negative: never.
	PollInPlace time.Duration

	WheelTick  time.Duration // timing wheel resolution; default 100ms
	WheelSlots int           // timing wheel slots; default 4096

	HandshakeTimeout time.Duration // upgrade request must complete within it; default 10s
	PingInterval     time.Duration // ping after this long with no inbound bytes; default 30s
	PongTimeout      time.Duration // close when nothing arrives this long after a ping; default 15s
	CloseTimeout     time.Duration // wait this long for the peer's close frame; default 5s
	ShutdownTimeout  time.Duration // Shutdown gives clients this long; default DrainWindow+5s, at least 15s; must exceed DrainWindow
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

	// DisableCompression turns permessage-deflate (RFC 7692) off: offers
	// are declined. It is on by default and costs an idle connection
	// nothing (no context takeover: no per-connection compressor).
	DisableCompression bool
	CompressionLevel   int // klauspost/compress/flate level 1..9, or -2 (Huffman only); default 1
	CompressionMinSize int // payloads smaller than this go out plain; default 128; < 0: compress all

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
// -accept-burst. A handshake (accept, upgrade, register, and later the
// close) costs the server 50-90 µs of CPU on the 2-core development
// machine, so it can take some 20,000 a second; 10,000 a second holds
// handshakes to about 40% of it, leaving the rest to established clients,
// and stays above the connect rates of ordinary load runs
// (docs/benchmarks.md, "Reconnect storm").
const (
	DefaultAcceptRate  = 10000
	DefaultAcceptBurst = 10000
)

// fdReserve is kept free of client connections for the listener, the
// admin API, logs and the answers (503) to connections over the limit.
const fdReserve = 64

// DefaultConfig returns what a zero Config stands for, every field filled:
// the one place wsedge's defaults are written (cmd/wsedge's flags take
// theirs from it). Four depend on the machine and are read at the call:
// Pollers (GOMAXPROCS), Workers (DefaultWorkers), MaxConns (the soft
// RLIMIT_NOFILE less a reserve; cmd/wsedge raises it to the hard limit
// first) and MaxPendingHandshakes (DefaultPendingHandshakes of MaxConns).
// Backlog 0 means the system's SOMAXCONN.
func DefaultConfig() Config {
	maxConns := DefaultMaxConns()
	return Config{
		Addr:                 ":8080",
		AdminAddr:            "127.0.0.1:9090",
		Pollers:              runtime.GOMAXPROCS(0),
		Workers:              DefaultWorkers(),
		ReadBufferSize:       netpoll.DefaultReadBufferSize,
		PollBatch:            netpoll.DefaultBatchSize,
		PollInPlace:          netpoll.DefaultInPlace,
		WheelTick:            wheel.DefaultTick,
		WheelSlots:           wheel.DefaultSlots,
		HandshakeTimeout:     10 * time.Second,
		PingInterval:         30 * time.Second,
		PongTimeout:          15 * time.Second,
		CloseTimeout:         5 * time.Second,
		ShutdownTimeout:      15 * time.Second,
		DrainWindow:          10 * time.Second,
		AcceptRate:           DefaultAcceptRate,
		AcceptBurst:          DefaultAcceptBurst,
		MaxMessage:           frame.DefaultMaxMessage,
		MaxHeaderBytes:       frame.DefaultMaxHeaderBytes,
		MaxConns:             maxConns,
		MaxPendingHandshakes: DefaultPendingHandshakes(maxConns),
		MaxPendingPerIP:      256, // room for a carrier NAT
		WriteQueue:           netpoll.DefaultWriteQueue,
		SlowConsumer:         "close",
		CompressionLevel:     frame.DefaultCompressionLevel,
		CompressionMinSize:   frame.DefaultCompressionMinSize,
		Logger:               slog.Default(),
	}
}

// DefaultPendingHandshakes is MaxPendingHandshakes' default for a server
// holding maxConns sockets: a quarter of them, at least 64.
func DefaultPendingHandshakes(maxConns int) int { return max(maxConns/4, 64) }

// withDefaults fills c's zero fields from DefaultConfig (sizes also when
// negative; durations that are negative are an error) and checks c.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	defaults.Zero(&c.Addr, d.Addr)
	defaults.Zero(&c.AdminAddr, d.AdminAddr)
	defaults.Zero(&c.WheelTick, d.WheelTick)
	defaults.Zero(&c.HandshakeTimeout, d.HandshakeTimeout)
	defaults.Zero(&c.PingInterval, d.PingInterval)
	defaults.Zero(&c.PongTimeout, d.PongTimeout)
	defaults.Zero(&c.CloseTimeout, d.CloseTimeout)
	defaults.Zero(&c.PollInPlace, d.PollInPlace) // negative: never
	if c.DrainWindow < 0 {
		return c, fmt.Errorf("drain window %v: must not be negative", c.DrainWindow)
	}
	defaults.Zero(&c.ShutdownTimeout, max(d.ShutdownTimeout, c.DrainWindow+5*time.Second))
	if c.DrainWindow > 0 && c.ShutdownTimeout <= c.DrainWindow {
		return c, fmt.Errorf("shutdown timeout %v must exceed the drain window %v (clients closed at its end need time for the close handshake)", c.ShutdownTimeout, c.DrainWindow)
	}
	if c.AcceptRate < 0 {
		return c, fmt.Errorf("accept rate %v: must not be negative (0: no bound)", c.AcceptRate)
	}
	if c.AcceptBurst <= 0 {
		c.AcceptBurst = max(1, int(c.AcceptRate))
	}
	defaults.Zero(&c.MaxPendingPerIP, d.MaxPendingPerIP) // negative: no bound
	defaults.Zero(&c.SlowConsumer, d.SlowConsumer)
	defaults.Zero(&c.CompressionLevel, d.CompressionLevel)
	defaults.Zero(&c.CompressionMinSize, d.CompressionMinSize) // negative: compress every message
	defaults.Zero(&c.Logger, d.Logger)
	defaults.Positive(&c.Pollers, d.Pollers)
	defaults.Positive(&c.Workers, d.Workers)
	defaults.Positive(&c.ReadBufferSize, d.ReadBufferSize)
	defaults.Positive(&c.PollBatch, d.PollBatch)
	defaults.Positive(&c.WheelSlots, d.WheelSlots)
	defaults.Positive(&c.MaxMessage, d.MaxMessage)
	defaults.Positive(&c.MaxHeaderBytes, d.MaxHeaderBytes)
	defaults.Positive(&c.MaxConns, d.MaxConns)
	defaults.Positive(&c.MaxPendingHandshakes, DefaultPendingHandshakes(c.MaxConns))
	defaults.Positive(&c.WriteQueue, d.WriteQueue)
	c.MaxPendingHandshakes = min(c.MaxPendingHandshakes, c.MaxConns)
	switch c.SlowConsumer {
	case "close", "drop":
	default:
		return c, fmt.Errorf("slow-consumer policy %q: want close or drop", c.SlowConsumer)
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
