//go:build linux

package netpoll

import (
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// SockaddrToTCP converts a socket address to a *net.TCPAddr (nil if it is
// not IPv4 or IPv6).
func SockaddrToTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port, Zone: zoneName(a.ZoneId)}
	}
	return nil
}

// zoneName names an IPv6 zone (scope id) as net does: the interface name, or
// the number when the interface is unknown.
func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(id), 10)
}
