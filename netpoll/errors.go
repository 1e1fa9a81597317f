package netpoll

import "errors"

var (
	// ErrClosed is returned by writes to a connection that is closing or closed.
	ErrClosed = errors.New("netpoll: connection closed")
	// ErrQueueFull is returned by a write that would take the connection's
	// outbound queue over its bound; nothing of that write was sent or queued.
	ErrQueueFull = errors.New("netpoll: outbound queue full")
	// ErrUnsupported is returned on platforms without epoll.
	ErrUnsupported = errors.New("netpoll: unsupported platform (wsedge needs Linux epoll)")
	// ErrPollerClosed is returned when registering with a closed poller.
	ErrPollerClosed = errors.New("netpoll: poller closed")
)
