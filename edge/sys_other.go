//go:build !linux

package edge

import "github.com/wsedge/wsedge/netpoll"

func closeFD(int) {}

func peerIP(int) ipKey { return ipKey{} }

func refuseFD(int, []byte) {}

// DefaultMaxConns is a placeholder where wsedge cannot run.
func DefaultMaxConns() int { return 1024 }

// RaiseOpenFileLimit fails: wsedge needs Linux.
func RaiseOpenFileLimit() (uint64, error) { return 0, netpoll.ErrUnsupported }
