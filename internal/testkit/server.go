package testkit

import (
	"context"
	"testing"
	"time"
)

// Server is what StartServer needs of a server; *edge.Server has it (an
// interface, because edge's own tests use testkit, which so cannot import
// edge).
type Server interface {
	Start() error
	Shutdown(context.Context) error
}

// StartServer starts s, failing t if it cannot, and shuts it down when the
// test ends, giving its clients at most 10 s.
func StartServer(t testing.TB, s Server) {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
}
