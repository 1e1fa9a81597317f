//go:build linux

package bench

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindAddressNoPort lets the kernel pick the local port at connect time, not
// at bind time, so that each (source, destination) pair has its own
// ephemeral range: binding a source address then costs no port up front.
var bindAddressNoPort = setsockoptControl(unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, "IP_BIND_ADDRESS_NO_PORT")

// reuseAddr sets SO_REUSEADDR before an explicit bind, so that a local port
// whose earlier connection is in TIME_WAIT can be bound again (connect
// then fails with EADDRNOTAVAIL only if the same 4-tuple is still taken).
var reuseAddr = setsockoptControl(unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR")

// setsockoptControl is a net.Dialer Control that sets one int option to 1.
func setsockoptControl(level, opt int, name string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), level, opt, 1)
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return os.NewSyscallError("setsockopt "+name, serr)
		}
		return nil
	}
}

// portTaken reports a connect that failed only because its local port (or
// its 4-tuple) was in use: the next port will do.
func portTaken(err error) bool {
	return errors.Is(err, unix.EADDRINUSE) || errors.Is(err, unix.EADDRNOTAVAIL)
}

// localPorts hands out the local ports of one process's connects, in turn
// over the kernel's ephemeral range (ip_local_port_range); worker processes
// start at evenly spaced offsets from one random base.
type localPorts struct {
	lo, n uint32
	seq   atomic.Uint32
}

func newLocalPorts(seed uint32, worker, workers int) *localPorts {
	lo, hi := 32768, 60999 // the kernel's default range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := bytes.Fields(b); len(f) == 2 {
			l, err1 := strconv.Atoi(string(f[0]))
			h, err2 := strconv.Atoi(string(f[1]))
			if err1 == nil && err2 == nil && 0 < l && l < h && h < 65536 {
				lo, hi = l, h
			}
		}
	}
	p := &localPorts{lo: uint32(lo), n: uint32(hi - lo + 1)}
	// A random base (seed, the same for every worker of a run; random when
	// unset), so that a run does not start on the ports the last one left
	// in TIME_WAIT, and workers evenly spaced from it, so that they do not
	// walk into each other's ports.
	if seed == 0 {
		seed = rand.Uint32()
	}
	start := seed % p.n
	if workers > 1 {
		start += p.n / uint32(workers) * uint32(worker)
	}
	p.seq.Store(start)
	return p
}

func (p *localPorts) next() int { return int(p.lo + (p.seq.Add(1)-1)%p.n) }

// selfUsage returns this process's CPU seconds (user, system) and peak RSS.
func selfUsage() (user, sys float64, maxRSS int64) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, 0
	}
	tv := func(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime), tv(ru.Stime), ru.Maxrss * 1024 // ru_maxrss is KiB on Linux
}

// selfRSS returns this process's current resident set size in bytes.
func selfRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(string(f[1]), 10, 64)
	return pages * int64(os.Getpagesize())
}

// machineCPU returns the busy and total jiffies of all CPUs since boot, so
// that two readings give the machine's busy share in between.
func machineCPU() (busy, total uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += n
		if i != 3 && i != 4 { // idle and iowait are not busy
			busy += n
		}
	}
	return busy, total, true
}

// openFileLimit returns the soft RLIMIT_NOFILE of this process, 0 if unknown.
func openFileLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(min(rl.Cur, 1<<30))
}
