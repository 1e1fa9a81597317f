// Package netpoll holds non-blocking TCP connections in epoll sets.
//
// It never knows about WebSocket.
package netpoll
