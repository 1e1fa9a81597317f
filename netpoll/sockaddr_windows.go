//go:build windows

package netpoll

import (
	"net"
	"syscall"
)

// SockaddrToTCP converts a socket address to a *net.TCPAddr (nil if it is
// not IPv4 or IPv6). x/sys/unix does not exist here, so it takes the
// standard library's Sockaddr.
func SockaddrToTCP(sa syscall.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	}
	return nil
}
