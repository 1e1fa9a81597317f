//go:build !race

package netpoll

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The data path's read(2), write(2) and writev(2) on its non-blocking
// sockets are raw system calls: they never block, so the runtime need not
// be told (entersyscall/exitsyscall), and the P stays with the thread
// instead of being handed to another one when a loopback write that wakes
// the peer takes longer than sysmon's 20 µs. Errors are unix.Errno values,
// as from unix.Read and unix.Write.

func rawRead(fd int, b []byte) (int, error)  { return rawIO(unix.SYS_READ, fd, b) }
func rawWrite(fd int, b []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, b) }

// rawIO is read(2) or write(2) (trap) of b on fd.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(p), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawWritev is writev(2) of bufs, at most 1024 (IOV_MAX) of them; iov is
// the caller's scratch, as long as bufs.
func rawWritev(fd int, bufs [][]byte, iov []unix.Iovec) (int, error) {
	k := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		iov[k].Base = &b[0]
		iov[k].SetLen(len(b))
		k++
	}
	if k == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
	clear(iov[:k])
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawEpollWait is epoll_wait with a zero timeout: it never blocks, so, like
// the calls above, it need not tell the runtime (entersyscall would also
// wake a sleeping sysmon every time).
func rawEpollWait(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
