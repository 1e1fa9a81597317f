package app

import (
	"crypto/elliptic"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsedge/wsedge/edge/cluster"
	"github.com/wsedge/wsedge/internal/defaults"
)

// Config configures the application layer. The zero value is a development
// setup: ?user= is the identity, any origin is allowed, no rate limit.
//
// ClientRate's zero value is "the default", not "off": DefaultClientRate
// with a JWT key configured (production), off in development mode. Set it
// to NoClientRate to turn the limit off with a key.
type Config struct {
	// Path is where clients connect; default "/ws".
	Path string

	// JWTSecret turns on HS256 tokens. At most one of JWTSecret and
	// JWTPublicKeyPEM may be set.
	JWTSecret []byte
	// JWTPublicKeyPEM is a PEM public key (RSA for RS256, P-256 ECDSA for
	// ES256) that turns on signed tokens.
	JWTPublicKeyPEM []byte
	// JWTAudience and JWTIssuer, when set, must match the token's aud (one
	// of its values) and iss; a token without the claim is refused.
	JWTAudience string
	JWTIssuer   string
	// JWTAllowNoExp admits tokens without an exp claim (such a connection
	// never expires); by default exp is required.
	JWTAllowNoExp bool
	// TokenTick is the resolution of the token-expiry wheel: a connection
	// is closed at most about this long after its token's exp. Default 1s.
	TokenTick time.Duration

	// AllowedOrigins are the exact Origin values a browser may connect
	// from; empty allows any. A request without Origin is always allowed.
	AllowedOrigins []string

	MaxRoomsPerConn int // rooms one connection may join; default 64
	MaxRooms        int // rooms with a member on this node; default DefaultMaxRooms
	// ClientRate is client messages per second per connection: 0 picks the
	// default (see above), NoClientRate (any negative value) turns it off.
	ClientRate float64
	// ClientBurst is the burst over ClientRate; default DefaultClientBurst
	// with the default rate, else ceil(ClientRate), at least 1.
	ClientBurst int

	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on every /v1/ request. Without it the admin listener must be a
	// loopback address.
	AdminToken   string
	AdminMaxBody int64 // largest admin request body; default 1 MiB

	// FanoutWriters bounds the CPUs one fan-out (a broadcast, a room push)
	// keeps busy: its batches are written in at most this many lanes at
	// once. Default DefaultFanoutWriters (all CPUs but one, at least 1).
	FanoutWriters int

	// HistorySize is how many messages each room keeps for clients that
	// rejoin with since (docs/protocol.md); 0 turns history off and the
	// protocol has no offsets. Unlike the fields above, its zero value is
	// not DefaultConfig's: an embedding program opts in. HistoryTTL is how
	// long a message is kept (default 2m) and HistoryMaxBytes bounds all
	// histories on the node (default 64 MiB; the largest lose their oldest
	// messages first). On a cluster node the history is a JetStream stream
	// (docs/cluster.md) with these limits, stored in HistoryStorage
	// ("memory" or "file", default memory) on HistoryReplicas servers
	// (default 1); HistoryMaxBytes then bounds the whole stream.
	HistorySize     int
	HistoryTTL      time.Duration
	HistoryMaxBytes int64
	HistoryStorage  string
	HistoryReplicas int
	// RoomPolicy decides who may join and publish to a room (policy.go):
	// PolicyOpen (the default), PolicyClaims or PolicyHook.
	RoomPolicy string
	// JoinHook is the URL PolicyHook asks about each join (hook.go).
	JoinHook string
	// HookConcurrency bounds the hook calls in flight; default 64.
	HookConcurrency int
	// HookQueue bounds the joins waiting for a hook caller; a join past it
	// gets unavailable. Default 4096.
	HookQueue int
	// HookTimeout bounds one hook call; default 1s.
	HookTimeout time.Duration
	// HookCache keeps a hook's answer per user and room this long: 0 picks
	// the default (30s), NoHookCache (negative) turns the cache off.
	HookCache time.Duration
	// HookCacheSize bounds the cached answers; default 100,000.
	HookCacheSize int
	// ConnsPerUser is how many connections one user may hold; the next
	// one replaces the oldest with 4000. Default 1.
	ConnsPerUser int

	// Cluster, when set, joins this node to others through NATS
	// (docs/cluster.md); nil runs a single node.
	Cluster *cluster.Config

	// publishSlots (tests) bounds the client publishes waiting for
	// JetStream's ack off their workers: 0 is publishSlots, negative none.
	publishSlots int
}

// DefaultMaxRooms bounds the rooms one node holds, whatever its clients
// join (-max-rooms-per-conn alone allows 64 per connection): at the measured
// cost (docs/operations.md) 100,000 rooms take about 15 MB on a single node,
// 50 MB on a cluster node and 70 MB in NATS subscriptions.
const DefaultMaxRooms = 100_000

// The client rate limit in force when a JWT key is configured and
// Config.ClientRate is zero: a person chats far below it, while one client
// can no longer drive a room's fan-out at the speed of its socket.
const (
	DefaultClientRate  = 100
	DefaultClientBurst = 200
)

// NoClientRate as Config.ClientRate turns the client rate limit off.
const NoClientRate = -1

// DefaultConfig returns what a zero Config stands for, the one place the
// application's defaults are written (cmd/wsedge's flags take theirs from
// it). ClientRate and ClientBurst stay 0: their default depends on whether
// a JWT key is set (DefaultClientRate and DefaultClientBurst with one, off
// without), so it is settled in withDefaults. Cluster stays nil (a single
// node); ClusterConfig has its own defaults.
func DefaultConfig() Config {
	return Config{
		Path:            "/ws",
		TokenTick:       time.Second,
		MaxRoomsPerConn: 64,
		MaxRooms:        DefaultMaxRooms,
		AdminMaxBody:    1 << 20,
		FanoutWriters:   DefaultFanoutWriters(),
		HistorySize:     32,
		HistoryTTL:      2 * time.Minute,
		HistoryMaxBytes: 64 << 20,
		HistoryStorage:  "memory",
		HistoryReplicas: 1,
		RoomPolicy:      PolicyOpen,
		HookConcurrency: 64,
		HookQueue:       4096,
		HookTimeout:     time.Second,
		HookCache:       30 * time.Second,
		HookCacheSize:   100_000,
		ConnsPerUser:    1,
	}
}

// DefaultFanoutWriters is Config.FanoutWriters' default: every CPU Go
// uses but one, at least one.
func DefaultFanoutWriters() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// NoHookCache as Config.HookCache turns the hook's answer cache off.
const NoHookCache = -1

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Path == "" {
		c.Path = d.Path
	}
	defaults.Positive(&c.MaxRoomsPerConn, d.MaxRoomsPerConn)
	defaults.Positive(&c.MaxRooms, d.MaxRooms)
	defaults.Positive(&c.AdminMaxBody, d.AdminMaxBody)
	defaults.Positive(&c.FanoutWriters, d.FanoutWriters)
	if c.HistorySize < 0 || c.HistoryTTL < 0 || c.HistoryMaxBytes < 0 {
		return c, errors.New("history size, ttl and max bytes must not be negative")
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = d.HistoryTTL
	}
	if c.HistoryMaxBytes == 0 {
		c.HistoryMaxBytes = d.HistoryMaxBytes
	}
	if c.HistoryStorage == "" {
		c.HistoryStorage = d.HistoryStorage
	}
	if c.HistoryStorage != "memory" && c.HistoryStorage != "file" {
		return c, fmt.Errorf("history storage %q: want memory or file", c.HistoryStorage)
	}
	defaults.Positive(&c.HistoryReplicas, d.HistoryReplicas)
	if err := c.policyDefaults(d); err != nil {
		return c, err
	}
	if math.IsNaN(c.ClientRate) || math.IsInf(c.ClientRate, 0) {
		return c, fmt.Errorf("client rate %v: must be a finite number", c.ClientRate)
	}
	if c.ClientBurst < 0 {
		return c, fmt.Errorf("client burst %d: must not be negative", c.ClientBurst)
	}
	if c.TokenTick < 0 {
		return c, fmt.Errorf("token tick %v: must not be negative", c.TokenTick)
	}
	if c.TokenTick == 0 {
		c.TokenTick = d.TokenTick
	}
	tokens := len(c.JWTSecret) > 0 || len(c.JWTPublicKeyPEM) > 0
	if !tokens && (c.JWTAudience != "" || c.JWTIssuer != "") {
		return c, errors.New("a JWT audience or issuer needs a JWT key (secret or public key)")
	}
	switch {
	case c.ClientRate < 0:
		c.ClientRate = 0 // off; from here on 0 means off
	case c.ClientRate == 0 && tokens:
		c.ClientRate = DefaultClientRate
		if c.ClientBurst == 0 {
			c.ClientBurst = DefaultClientBurst
		}
	}
	if c.ClientRate > 0 && c.ClientBurst == 0 {
		c.ClientBurst = max(1, int(math.Ceil(c.ClientRate)))
	}
	if len(c.JWTSecret) > 0 && len(c.JWTPublicKeyPEM) > 0 {
		return c, errors.New("set either a JWT secret or a JWT public key, not both")
	}
	for _, o := range c.AllowedOrigins {
		if o == "" || strings.TrimSpace(o) != o {
			return c, fmt.Errorf("allowed origin %q: want an exact origin such as https://chat.example.com", o)
		}
	}
	return c, nil
}

// verifier checks tokens: the key and the one algorithm it is for.
type verifier struct {
	parser     *jwt.Parser
	key        any
	audience   bool // an aud is required (to name a missing claim)
	allowNoExp bool
}

func newVerifier(c Config) (*verifier, error) {
	var (
		key    any
		method string
	)
	switch {
	case len(c.JWTSecret) > 0:
		key, method = c.JWTSecret, jwt.SigningMethodHS256.Alg()
	case len(c.JWTPublicKeyPEM) > 0:
		if k, err := jwt.ParseRSAPublicKeyFromPEM(c.JWTPublicKeyPEM); err == nil {
			key, method = k, jwt.SigningMethodRS256.Alg()
			break
		}
		k, err := jwt.ParseECPublicKeyFromPEM(c.JWTPublicKeyPEM)
		if err != nil {
			return nil, errors.New("JWT public key: not a PEM RSA or ECDSA public key")
		}
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("JWT public key: ECDSA curve %s; ES256 needs P-256", k.Curve.Params().Name)
		}
		key, method = k, jwt.SigningMethodES256.Alg()
	default:
		return nil, nil
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{method})}
	if c.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(c.JWTAudience))
	}
	if c.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(c.JWTIssuer))
	}
	if !c.JWTAllowNoExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	return &verifier{parser: jwt.NewParser(opts...), key: key, audience: c.JWTAudience != "", allowNoExp: c.JWTAllowNoExp}, nil
}

func (v *verifier) keyfunc(*jwt.Token) (any, error) { return v.key, nil }
