//go:build race

package netpoll

import "golang.org/x/sys/unix"

// Under the race detector the data path uses x/sys's ordinary calls, which
// tell the detector about the buffers read into and written from; raw
// system calls (rawsys_linux.go, every other build) would hide them.

func rawRead(fd int, b []byte) (int, error)  { return unix.Read(fd, b) }
func rawWrite(fd int, b []byte) (int, error) { return unix.Write(fd, b) }

func rawWritev(fd int, bufs [][]byte, _ []unix.Iovec) (int, error) { return unix.Writev(fd, bufs) }

func rawEpollWait(epfd int, events []unix.EpollEvent) (int, error) {
	return unix.EpollWait(epfd, events, 0)
}
