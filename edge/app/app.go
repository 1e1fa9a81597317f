package app

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/edge/cluster"
)

var (
	errTooManyRooms = errors.New("too many rooms")
	errNodeRooms    = errors.New("too many rooms on this node")
	errDetached     = errors.New("connection replaced or closed")
)

// App is the application: an edge.Handler for the client path plus the
// admin API. Build it with New, pass it to edge.New as the handler for
// Config.Path, then Mount it on the server before Start (NewServer does all
// three).
type App struct {
	cfg     Config
	srv     *edge.Server
	log     *slog.Logger
	verify  *verifier // nil in development mode
	origins map[string]struct{}
	users   *users
	rooms   *rooms
	m       *metrics
	admin   adminAuth
	cluster Cluster // single, or the NATS bus
	tokens  tokens
	hist    *histories   // nil: history off, or a cluster node
	chist   *clusterHist // cluster node with history: JetStream
	// recoveries counts joins with since by result (history on).
	recoveries *prometheus.CounterVec
	policyM    policyMetrics
	hook       *hooks // PolicyHook only
}

// New checks cfg and builds the application.
func New(cfg Config) (*App, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	v, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	a := &App{
		cfg:     cfg,
		verify:  v,
		users:   newUsers(),
		rooms:   newRooms(),
		admin:   newAdminAuth(cfg.AdminToken),
		cluster: single{}, // until Mount joins the configured cluster
	}
	if cfg.HistorySize > 0 && cfg.Cluster == nil {
		a.hist = newHistories(cfg)
	}
	if len(cfg.AllowedOrigins) > 0 {
		a.origins = make(map[string]struct{}, len(cfg.AllowedOrigins))
		for _, o := range cfg.AllowedOrigins {
			a.origins[o] = struct{}{}
		}
	}
	return a, nil
}

// Mount binds the application to srv, whose Config.Handlers must map
// cfg.Path to a: it registers the metrics and the admin routes, and logs the
// startup warnings. Call it once, before srv.Start. It refuses an admin
// listener off loopback without an admin token.
func (a *App) Mount(srv *edge.Server) error {
	if a.srv != nil {
		return errors.New("app: already mounted")
	}
	ec := srv.Config()
	if h, ok := ec.Handlers[a.cfg.Path].(*App); !ok || h != a {
		return fmt.Errorf("app: the server's handler for %s is not this app", a.cfg.Path)
	}
	if ec.AdminAddr != "off" && a.cfg.AdminToken == "" && !edge.IsLoopback(ec.AdminAddr) {
		return fmt.Errorf("admin listener %s is not a loopback address: set an admin token (-admin-token) or listen on 127.0.0.1", ec.AdminAddr)
	}
	a.srv = srv
	a.log = ec.Logger
	m, err := newMetrics(a, srv.Registry())
	if err != nil {
		return err
	}
	a.m = m
	if a.hist != nil {
		if err := a.hist.register(srv.Registry()); err != nil {
			return err
		}
	}
	if a.cfg.HistorySize > 0 {
		if err := a.registerRecoveries(srv.Registry()); err != nil {
			return err
		}
	}
	if err := a.joinCluster(); err != nil {
		return err
	}
	if b, ok := a.cluster.(*cluster.Bus); ok && a.cfg.HistorySize > 0 {
		if err := a.startClusterHistory(b); err != nil {
			a.cluster.Close()
			return err
		}
	}
	// Last: the expiry wheel's goroutine must not outlive a failed Mount.
	if err := a.startTokens(srv.Registry()); err != nil {
		return err
	}
	if err := a.startPolicy(srv.Registry()); err != nil {
		a.stopTokens()
		return err
	}
	a.mountAdmin(srv.Mux())
	if a.hist != nil {
		a.startSweeper()
	}
	if a.verify == nil {
		a.log.Warn("no JWT key configured: development mode, the ?user= query parameter is the identity and anyone can claim any user")
	}
	if a.origins == nil {
		a.log.Warn("no allowed origins configured: browsers on any site may connect (set -allowed-origins)")
	}
	if ec.AdminAddr != "off" && a.cfg.AdminToken == "" {
		a.log.Warn("no admin token: anyone who can reach the admin listener can push and kick", "admin", ec.AdminAddr)
	}
	return nil
}

// NewServer builds an edge server with the application at appCfg.Path and
// mounts it, ready to Start.
func NewServer(edgeCfg edge.Config, appCfg Config) (*edge.Server, *App, error) {
	a, err := New(appCfg)
	if err != nil {
		return nil, nil, err
	}
	handlers := make(map[string]edge.Handler, len(edgeCfg.Handlers)+1)
	for p, h := range edgeCfg.Handlers {
		handlers[p] = h
	}
	handlers[a.cfg.Path] = a
	if _, taken := handlers["/echo"]; edgeCfg.Echo && !taken {
		handlers["/echo"] = echo{a} // admits as /ws does; edge's built-in /echo admits anyone
	}
	edgeCfg.Handlers = handlers
	if edgeCfg.DrainHint == nil {
		edgeCfg.DrainHint = reconnectHint
	}
	srv, err := edge.New(edgeCfg)
	if err != nil {
		return nil, nil, err
	}
	if err := a.Mount(srv); err != nil {
		return nil, nil, err
	}
	return srv, a, nil
}

// ClusterStatus reports the node's view of the cluster (GET /v1/cluster).
func (a *App) ClusterStatus() cluster.Status { return a.cluster.Status() }

// Close leaves the cluster (a no-op on a single node). Call it after the
// server's Shutdown.
func (a *App) Close() {
	a.stopTokens()
	if a.hist != nil {
		a.hist.close()
	}
	a.stopPolicy()
	if a.chist != nil {
		a.chist.waitPublishes()
	}
	a.cluster.Close()
}
