//go:build linux

package edge

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func closeFD(fd int) { _ = unix.Close(fd) }

// peerIP is the source address of a connected socket, asked of the kernel
// into a stack buffer (unix.Getpeername would allocate per accept).
func peerIP(fd int) (k ipKey) {
	var sa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	_, _, errno := unix.Syscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return k
	}
	switch sa.Addr.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		k[10], k[11] = 0xff, 0xff
		copy(k[12:], sa4.Addr[:])
	case unix.AF_INET6:
		k = (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa)).Addr
	}
	return k
}

// refuseFD answers a socket that is not kept with resp and closes it. The
// socket is fresh, so its send buffer takes resp whole. Input already
// readable is discarded first (non-blocking, bounded): unread input would
// make close send a reset that destroys resp on its way.
func refuseFD(fd int, resp []byte) {
	_, _ = unix.Write(fd, resp)
	_ = unix.Shutdown(fd, unix.SHUT_WR)
	var buf [1024]byte
	for i := 0; i < 16; i++ {
		if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
			break
		}
	}
	_ = unix.Close(fd)
}

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
