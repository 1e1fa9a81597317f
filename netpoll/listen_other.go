//go:build !linux

package netpoll

// Listen returns ErrUnsupported: wsedge needs Linux epoll.
func (lc ListenConfig) Listen(addr string) (*Listener, error) { return nil, ErrUnsupported }
