//go:build linux

package edge

import "golang.org/x/sys/unix"

func closeFD(fd int) { _ = unix.Close(fd) }

// DefaultMaxConns is the connection capacity the open-file limit allows:
// the soft RLIMIT_NOFILE less a small reserve.
func DefaultMaxConns() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 2*fdReserve {
		return 1024
	}
	return int(min(rl.Cur, 1<<30)) - fdReserve
}

// RaiseOpenFileLimit lifts the soft RLIMIT_NOFILE to the hard limit and
// returns the new soft limit.
func RaiseOpenFileLimit() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}
