package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/wsedge/wsedge/internal/names"
)

// Config makes the application one node of a cluster that shares users,
// rooms and pushes through NATS (docs/cluster.md); cmd/wsedge builds it
// from the -nats and -cluster-* flags.
type Config struct {
	URLs   []string // NATS servers, e.g. nats://10.0.0.1:4222; at least one
	NodeID string   // this node's name; default hostname-<6 random hex>
	Prefix string   // first subject token; default "wsedge"

	// Timeout bounds every wait for another node's answer: a client send
	// to a remote user, admin pushes and presence; default 500ms.
	Timeout time.Duration
	// Heartbeat is how often a node announces itself; a node silent for
	// three periods leaves the node list; default 1s.
	Heartbeat time.Duration
	// ReconnectMax caps the reconnect backoff (100ms doubling); default 2s.
	ReconnectMax time.Duration
	// ReconnectBuffer bounds the bytes published while NATS is unreachable,
	// sent when it is back; past it publishes fail (counted); default 4 MiB.
	ReconnectBuffer int
	// Dispatchers are the goroutines that handle user and room messages
	// from other nodes; one subject always maps to one of them, so its
	// messages stay in order; default 4.
	Dispatchers int
	// QueueLen bounds the messages waiting for each dispatcher; past it
	// they are dropped (counted in wsedge_bus_queue_drops_total); default 8192.
	QueueLen int
	// QueueBytes bounds the bytes of the messages waiting for all the
	// dispatchers together; past it a message is dropped (counted in
	// wsedge_bus_queue_drops_total); default 64 MiB.
	QueueBytes int64
	// MaxPending bounds the client sends waiting for another node's
	// answer; past it a send is answered unavailable; default 16384.
	MaxPending int

	// The bus must be authenticated (docs/cluster.md): a NATS credentials
	// file (user JWT and seed), or an nkey seed file; at most one.
	CredsFile string
	NkeyFile  string
	// CAFile holds the PEM roots that verify the NATS server; it turns TLS on.
	CAFile string
}

// DefaultConfig is the one source of the bus's defaults (cmd/wsedge's
// flags take theirs from it); URLs and NodeID have none: the node id is
// made at start (hostname-<random>).
func DefaultConfig() Config {
	return Config{
		Prefix:          "wsedge",
		Timeout:         500 * time.Millisecond,
		Heartbeat:       time.Second,
		ReconnectMax:    2 * time.Second,
		ReconnectBuffer: 4 << 20,
		Dispatchers:     4,
		QueueLen:        8192,
		QueueBytes:      64 << 20,
		MaxPending:      16384,
	}
}

// setDefault fills a zero or negative field from the default.
func setDefault[T int | int64 | time.Duration | string](v *T, d T) {
	var zero T
	if *v == zero || *v < zero {
		*v = d
	}
}

func (c Config) withDefaults() (Config, error) {
	if len(c.URLs) == 0 {
		return c, errors.New("cluster: no NATS URL")
	}
	if c.NodeID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "wsedge"
		}
		var r [3]byte
		_, _ = rand.Read(r[:])
		c.NodeID = host + "-" + hex.EncodeToString(r[:])
	}
	if !names.Valid(c.NodeID) {
		return c, fmt.Errorf("cluster: node id %q: must be 1-128 printable ASCII characters", c.NodeID)
	}
	def := DefaultConfig()
	setDefault(&c.Prefix, def.Prefix)
	if strings.ContainsAny(c.Prefix, " \t\r\n*>") || strings.HasPrefix(c.Prefix, ".") || strings.HasSuffix(c.Prefix, ".") {
		return c, fmt.Errorf("cluster: subject prefix %q: want tokens such as wsedge or prod.wsedge", c.Prefix)
	}
	setDefault(&c.Timeout, def.Timeout)
	setDefault(&c.Heartbeat, def.Heartbeat)
	setDefault(&c.ReconnectMax, def.ReconnectMax)
	setDefault(&c.ReconnectBuffer, def.ReconnectBuffer)
	setDefault(&c.Dispatchers, def.Dispatchers)
	setDefault(&c.QueueLen, def.QueueLen)
	setDefault(&c.QueueBytes, def.QueueBytes)
	setDefault(&c.MaxPending, def.MaxPending)
	if c.CredsFile != "" && c.NkeyFile != "" {
		return c, errors.New("cluster: set either a NATS credentials file or an nkey seed file, not both")
	}
	return c, nil
}
