package edge

import (
	"math/rand/v2"
	"strconv"
	"sync"
)

// Reasons a socket is refused at accept, before a byte of it is read
// (the label of wsedge_connections_refused_total).
const (
	refusedMaxConns          = "max_conns"
	refusedPendingHandshakes = "pending_handshakes"
	refusedPendingPerIP      = "pending_per_ip"
	refusedAcceptRate        = "accept_rate"
)

// retryAfterSeconds is the Retry-After of a refusal at accept: long enough
// that refused clients do not come back as a storm.
const retryAfterSeconds = 5

// refusal is the complete answer to a socket refused at accept, written
// before its request is read (so a client waiting for its answer gets it).
func refusal(reason string) []byte { return refusalAfter(reason, retryAfterSeconds) }

// rateRetryAfter holds the answers to sockets over -accept-rate, one per
// Retry-After of 1..maxRateRetryAfter seconds: accept picks one at random,
// so clients refused in the same burst come back spread, not as the next
// burst.
const maxRateRetryAfter = 5

// jitteredRetryAfter draws a Retry-After of 1..maxRateRetryAfter seconds,
// for every 503 whose clients should come back spread (accept rate, drain).
func jitteredRetryAfter() int { return 1 + rand.IntN(maxRateRetryAfter) }

func rateRefusals() [][]byte {
	r := make([][]byte, maxRateRetryAfter)
	for i := range r {
		r[i] = refusalAfter(refusedAcceptRate, i+1)
	}
	return r
}

func refusalAfter(reason string, seconds int) []byte {
	body := "server at capacity (" + reason + "): retry later\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Retry-After: " + strconv.Itoa(seconds) + "\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Connection: close\r\n\r\n" + body)
}

// ipKey is a peer's address as 16 bytes (IPv4 mapped into IPv6); the zero
// key stands for an address getpeername could not give.
type ipKey [16]byte

// pendingTable tracks sockets still in the upgrade handshake: how many in
// all and per source address. It holds an entry only while a socket is
// pending, so idle connections cost it nothing; every operation is O(1).
// One mutex: it is taken once at accept and once when the handshake ends,
// never per message, and holds no I/O.
type pendingTable struct {
	mu    sync.Mutex
	conns map[*Conn]ipKey // pending sockets and their source address
	perIP map[ipKey]int32 // pending sockets per address; no zero entries
}

func newPendingTable() *pendingTable {
	return &pendingTable{conns: make(map[*Conn]ipKey), perIP: make(map[ipKey]int32)}
}

// add admits c as pending from ip unless a bound is reached; it returns
// the refusal reason, or "" once c is counted. perIP < 0: no per-address
// bound.
func (t *pendingTable) add(c *Conn, ip ipKey, total, perIP int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.conns) >= total {
		return refusedPendingHandshakes
	}
	n := t.perIP[ip]
	if perIP >= 0 && int(n) >= perIP {
		return refusedPendingPerIP
	}
	t.conns[c] = ip
	t.perIP[ip] = n + 1
	return ""
}

// done ends c's handshake (completed, failed, timed out or closed). It may
// be called more than once: only the first call counts.
func (t *pendingTable) done(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ip, ok := t.conns[c]
	if !ok {
		return
	}
	delete(t.conns, c)
	if n := t.perIP[ip] - 1; n > 0 {
		t.perIP[ip] = n
	} else {
		delete(t.perIP, ip)
	}
}

// len is the number of pending sockets.
func (t *pendingTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}
