// Package frame is RFC 6455 on bytes: the opening handshake from a buffered
// request, an incremental frame decoder and frame encoding.
//
// It never touches a socket, starts no goroutine and keeps no global state;
// the caller feeds it bytes and owns the buffers.
package frame
