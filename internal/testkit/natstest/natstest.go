// Package natstest runs an embedded NATS server for the cluster tests (a
// package of its own so that tests without NATS do not link the server).
package natstest

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Start runs an embedded NATS server with opts (nil: 127.0.0.1 on a free
// port) and shuts it down at cleanup.
func Start(t testing.TB, opts *natsserver.Options) *natsserver.Server {
	t.Helper()
	if opts == nil {
		opts = &natsserver.Options{Host: "127.0.0.1", Port: -1}
	}
	opts.NoLog, opts.NoSigs = true, true
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}
