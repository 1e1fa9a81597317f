//go:build !linux

package bench

import "syscall"

// bindAddressNoPort is a Linux refinement; elsewhere bind picks the port.
func bindAddressNoPort(network, address string, c syscall.RawConn) error { return nil }

// selfUsage is measured on Linux only.
func selfUsage() (user, sys float64, maxRSS int64) { return 0, 0, 0 }

// selfRSS is measured on Linux only.
func selfRSS() int64 { return 0 }

// machineCPU is measured on Linux only.
func machineCPU() (busy, total uint64, ok bool) { return 0, 0, false }

// openFileLimit is checked on Linux only.
func openFileLimit() int { return 0 }

// Explicit local ports are a Linux refinement; elsewhere the kernel picks.
type localPorts struct{}

func newLocalPorts(seed uint32, worker, workers int) *localPorts { return nil }
func (p *localPorts) next() int                                  { return 0 }
func reuseAddr(network, address string, c syscall.RawConn) error { return nil }
func portTaken(err error) bool                                   { return false }
