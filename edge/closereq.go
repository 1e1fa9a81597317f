package edge

import (
	"sync"

	"github.com/gobwas/ws"
)

// Events a connection's owner gets through netpoll's Conn.Wake.
const (
	wakeTimer uint8 = 1 << iota // its wheel entry fired
	wakeClose                   // closeReq holds a Close to carry out
)

// A close request packs into one word, so that any goroutine can leave it
// on the connection with a CAS: the close code in the low 16 bits, the
// index of its reason in the server's reason table above them.
const (
	reasonNone uint32 = iota // ""
	reasonSlow               // slowConsumerReason: the slow-consumer close

	slowConsumerReason = "slow consumer"
	// maxCloseReasons bounds the reason table: reasons are the
	// application's constants, and one that comes after the table is full
	// is sent as "" (the code still goes out).
	maxCloseReasons = 1024
)

// closeSlowConsumer is the request a writer that found the queue full
// leaves (policy close).
const closeSlowConsumer = uint32(ws.StatusPolicyViolation) | reasonSlow<<16

// closeHeld marks a request the owner found held by its Handler
// (CloseHolder): the one a slow consumer's close may replace. Above the
// reason's bits (maxCloseReasons).
const closeHeld uint32 = 1 << 31

// requestSlowConsumer leaves the slow-consumer close: unless a Close not
// held came first (the first request wins), and never held itself, it
// replaces a held one.
func (c *Conn) requestSlowConsumer() {
	for {
		old := c.closeReq.Load()
		if old == closeSlowConsumer || old != 0 && old&closeHeld == 0 {
			return
		}
		if c.closeReq.CompareAndSwap(old, closeSlowConsumer) {
			c.nc.Wake(wakeClose)
			return
		}
	}
}

// closeReasons interns Close reasons, so that a request is one word.
type closeReasons struct {
	mu    sync.RWMutex
	index map[string]uint32
	text  []string
}

func newCloseReasons() *closeReasons {
	return &closeReasons{
		// reasonSlow is not in index: an application's Close(1008, "slow
		// consumer") is a plain close, not counted as a slow consumer.
		index: map[string]uint32{"": reasonNone},
		text:  []string{"", slowConsumerReason},
	}
}

func (t *closeReasons) lookup(reason string) uint32 {
	t.mu.RLock()
	i, ok := t.index[reason]
	t.mu.RUnlock()
	if ok {
		return i
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.index[reason]; ok {
		return i
	}
	if len(t.text) >= maxCloseReasons {
		return reasonNone
	}
	i = uint32(len(t.text))
	t.index[reason] = i
	t.text = append(t.text, reason)
	return i
}

// closeRequest packs Close(code, reason). s is nil for a connection not
// open yet: it is dropped, so the reason does not matter.
func (s *Server) closeRequest(code ws.StatusCode, reason string) uint32 {
	if code == 0 {
		code = ws.StatusNormalClosure // 0 is no code; it would read as no request
	}
	req := uint32(code)
	if s != nil && reason != "" {
		req |= s.reasons.lookup(reason) << 16
	}
	return req
}

// closeReason unpacks a request.
func (s *Server) closeReason(req uint32) (ws.StatusCode, string) {
	s.reasons.mu.RLock()
	defer s.reasons.mu.RUnlock()
	return ws.StatusCode(req & 0xffff), s.reasons.text[req>>16]
}
