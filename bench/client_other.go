//go:build !linux

package bench

import (
	"time"

	"github.com/gobwas/ws"
)

// Elsewhere every connection has its reader goroutine (conn.readLoop).
type (
	evLoops  struct{}
	evSocket struct{}
)

func newEvLoops(int, time.Duration) (*evLoops, error)                { return nil, nil }
func (*evLoops) stop()                                               {}
func (*evLoops) detach(*conn) bool                                   { return false }
func (*evSocket) writeLocked([]byte) error                           { return nil }
func (*evSocket) shutdownLocked()                                    {}
func (*evLoops) attach(*conn, func(ws.OpCode, []byte), func(string)) {}
