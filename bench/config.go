package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Scenario names, as given on the command line.
const (
	ScenarioIdle   = "idle"
	ScenarioEcho   = "echo"
	ScenarioFanout = "fanout"
	ScenarioChat   = "chat"
	ScenarioChurn  = "churn"
)

// scenarioNames lists every scenario in the order the help text shows them.
var scenarioNames = []string{ScenarioIdle, ScenarioEcho, ScenarioFanout, ScenarioChat, ScenarioChurn}

// ErrConfig marks an invalid configuration (a usage error).
var ErrConfig = errors.New("invalid configuration")

// Config describes one run. The zero value is not runnable: at least
// Scenario, URLs and Conns must be set; Defaults fills the rest.
type Config struct {
	Scenario string `json:"scenario"`

	// URLs are the WebSocket endpoints; connection i goes to URLs[i%len].
	URLs []string `json:"urls"`
	// Admin are the admin base URLs (http://host:port) whose /metrics are
	// sampled and summed; the first one receives fan-out POSTs.
	Admin      []string `json:"admin,omitempty"`
	AdminToken string   `json:"-"`
	// PID is a local server's process id: its RSS and CPU are then read
	// from /proc/PID, and /metrics is never scraped.
	PID int `json:"pid,omitempty"`

	Conns int `json:"conns"`
	// Rate is connections per second for idle and churn, messages per
	// second (all connections together) for echo and chat. 0 means as fast
	// as possible for connections; echo then needs ClosedLoop.
	Rate float64 `json:"rate"`
	// ConnectRate paces the initial connections of echo, fanout and chat.
	ConnectRate float64       `json:"connect_rate"`
	Hold        time.Duration `json:"hold,omitempty"`
	Duration    time.Duration `json:"duration,omitempty"`
	// Deadline is the hard limit of the whole run; 0 derives one from the
	// other durations.
	Deadline time.Duration `json:"deadline"`

	// Size is echo's message size; for fanout, the size of the JSON body
	// posted (the stamp padded with chat-like items), 0 for the stamp alone.
	Size       int  `json:"size,omitempty"`
	ClosedLoop bool `json:"closed_loop,omitempty"`
	// Compression offers permessage-deflate on every connection, as
	// browsers do; Result.Wire says how many negotiated it.
	Compression bool `json:"compression,omitempty"`

	Messages int           `json:"messages,omitempty"`
	Room     string        `json:"room,omitempty"`
	Interval time.Duration `json:"interval,omitempty"`
	// Wait is how long fanout waits for deliveries after the last POST.
	Wait time.Duration `json:"wait,omitempty"`

	UserPrefix string        `json:"user_prefix"`
	JWTSecret  string        `json:"-"`
	JWTTTL     time.Duration `json:"jwt_ttl,omitempty"`

	// Sources are local addresses to bind before connect, used round robin.
	Sources []netip.Addr `json:"sources,omitempty"`
	// Procs is the number of child processes; 0 or 1 runs in process.
	Procs int `json:"procs"`

	// DialTimeout bounds one TCP connect plus WebSocket handshake.
	DialTimeout time.Duration `json:"dial_timeout"`
	// MaxDialing bounds handshakes in flight at once.
	MaxDialing int `json:"max_dialing"`
	// GoroutineClient reads every connection from a goroutine of its own
	// (the client before the event loops), to compare the two.
	GoroutineClient bool `json:"goroutine_client,omitempty"`
	// Loops is the number of event loops (0: one per CPU the process may
	// use). 1 is a single-threaded client such as one event loop in C.
	Loops int `json:"loops,omitempty"`
	// ClientWork is CPU an event loop spends on each readable socket
	// before it reads, to model a client dearer per message than
	// wsbench's own (about 6 µs per echo here): issue 18's independent
	// single-loop client spent about 16 µs. 0: none.
	ClientWork time.Duration `json:"client_work,omitempty"`

	// Worker fields are set by the parent for a child process.
	WorkerIndex int `json:"worker_index,omitempty"`
	WorkerCount int `json:"worker_count,omitempty"`
	// PortSeed is where the explicit local ports start (Linux), chosen
	// once by the parent so that workers start evenly spaced from it.
	PortSeed uint32 `json:"port_seed,omitempty"`
	// FirstUser is the index of this worker's first user id.
	FirstUser int `json:"first_user,omitempty"`
	// TotalUsers is Conns over all workers (chat picks recipients in it).
	TotalUsers int `json:"total_users,omitempty"`
}

// Defaults fills unset fields with the documented defaults.
func (c *Config) Defaults() {
	if c.UserPrefix == "" {
		c.UserPrefix = "u"
	}
	if c.Rate == 0 && (c.Scenario == ScenarioIdle || c.Scenario == ScenarioChurn) {
		c.Rate = 1000
	}
	if c.ConnectRate == 0 {
		c.ConnectRate = 2000
	}
	if c.Hold == 0 && c.Scenario == ScenarioIdle {
		c.Hold = 10 * time.Second
	}
	if c.Duration == 0 && (c.Scenario == ScenarioEcho || c.Scenario == ScenarioChat || c.Scenario == ScenarioChurn) {
		c.Duration = 10 * time.Second
	}
	if c.Size == 0 && c.Scenario != ScenarioFanout {
		c.Size = 64
	}
	if c.Messages == 0 {
		c.Messages = 10
	}
	if c.Interval == 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.Wait == 0 {
		c.Wait = 10 * time.Second
	}
	if c.JWTTTL == 0 {
		c.JWTTTL = 5 * time.Minute
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.MaxDialing == 0 {
		c.MaxDialing = 256
	}
	if c.TotalUsers == 0 {
		c.TotalUsers = c.Conns
	}
	if c.Deadline == 0 {
		c.Deadline = c.derivedDeadline()
	}
}

// derivedDeadline allows the ramp at the configured rate, the hold or
// duration, the fan-out posts and waits, plus a fixed margin.
func (c *Config) derivedDeadline() time.Duration {
	rate := c.ConnectRate
	if c.Scenario == ScenarioIdle || c.Scenario == ScenarioChurn {
		rate = c.Rate
	}
	d := 30*time.Second + c.Hold + c.Duration
	if rate > 0 && c.Scenario != ScenarioChurn {
		d += 2 * time.Duration(float64(c.Conns)/rate*float64(time.Second))
	}
	if c.Scenario == ScenarioFanout {
		d += time.Duration(c.Messages)*c.Interval + c.Wait
	}
	return d
}

// Validate reports the first problem with c, wrapped in ErrConfig.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	known := false
	for _, s := range scenarioNames {
		known = known || s == c.Scenario
	}
	if !known {
		return bad("unknown scenario %q (want one of %s)", c.Scenario, strings.Join(scenarioNames, ", "))
	}
	if len(c.URLs) == 0 {
		return bad("-url is required")
	}
	for _, u := range c.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "ws" && p.Scheme != "wss") || p.Host == "" {
			return bad("-url %q: want ws://host:port/path", u)
		}
	}
	for _, a := range c.Admin {
		p, err := url.Parse(a)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return bad("-admin %q: want http://host:port", a)
		}
	}
	if c.Conns <= 0 {
		return bad("-conns must be positive")
	}
	if c.Rate < 0 || c.ConnectRate < 0 {
		return bad("rates must not be negative")
	}
	switch c.Scenario {
	case ScenarioEcho:
		if c.Rate == 0 && !c.ClosedLoop {
			return bad("echo needs -rate R (open loop) or -closed-loop")
		}
		if c.Size < 8 {
			return bad("-size must be at least 8 bytes (the timestamp)")
		}
	case ScenarioFanout:
		if len(c.Admin) == 0 {
			return bad("fanout needs -admin URL to POST messages")
		}
		if c.Messages <= 0 {
			return bad("-messages must be positive")
		}
	case ScenarioChat:
		if c.Rate <= 0 {
			return bad("chat needs -rate R messages per second")
		}
		if c.TotalUsers < 2 {
			return bad("chat needs at least 2 connections")
		}
	case ScenarioChurn:
		if c.Rate <= 0 {
			return bad("churn needs -rate R connections per second")
		}
	}
	if c.PID < 0 {
		return bad("-pid must not be negative")
	}
	if c.Procs < 0 {
		return bad("-procs must not be negative")
	}
	if c.Procs > c.Conns {
		return bad("-procs %d is more than -conns %d", c.Procs, c.Conns)
	}
	return nil
}

// ParseSources parses "127.0.0.2-127.0.0.20" or a comma-separated list of
// addresses and ranges into the list of local addresses to bind.
func ParseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("%w: -source %q: %v", ErrConfig, part, err)
		}
		last := first
		if isRange {
			if last, err = netip.ParseAddr(hi); err != nil {
				return nil, fmt.Errorf("%w: -source %q: %v", ErrConfig, part, err)
			}
		}
		if first.Is4() != last.Is4() || last.Less(first) {
			return nil, fmt.Errorf("%w: -source %q: not an ascending range of one family", ErrConfig, part)
		}
		for a := first; ; a = a.Next() {
			out = append(out, a)
			if len(out) > 1<<16 {
				return nil, fmt.Errorf("%w: -source %q: more than 65536 addresses", ErrConfig, part)
			}
			if a == last {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: -source %q: no addresses", ErrConfig, s)
	}
	return out, nil
}
