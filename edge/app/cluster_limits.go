package app

import (
	"math/bits"
	"net/http"
	"strconv"
)

// codeTooLarge answers a client message that must cross the cluster bus
// and is over what the bus carries: resending it can never succeed.
const codeTooLarge = "too_large"

// fits reports whether a bus message of n bytes is within the NATS
// server's max payload. Before the first connection the limit is unknown:
// then the message is tried and fails as unavailable.
func (b *bus) fits(n int) bool {
	limit := b.nc.MaxPayload()
	return limit <= 0 || int64(n) <= limit
}

// busLimit is the largest bus message, for error messages.
func (b *bus) busLimit() string { return strconv.FormatInt(b.nc.MaxPayload(), 10) }

// envelopeLen is the size of an op byte and a length-prefixed name before
// n payload bytes: a deliverMsg or a frameMsg.
func envelopeLen(name string, n int) int {
	return 1 + (bits.Len64(uint64(len(name))|1)+6)/7 + len(name) + n
}

// tooLargeForBus answers an admin push whose message cannot cross the bus:
// 413 like a body over -admin-max-body, not a 503 a backend would retry.
func (b *bus) tooLargeForBus(w http.ResponseWriter) {
	writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
		"the message is over what the cluster bus carries (NATS max payload "+b.busLimit()+" bytes)")
}

// refuseTooLarge answers a client whose send or publish cannot cross the bus.
func (b *bus) refuseTooLarge(u *user, id []byte) {
	b.a.m.dropped(codeTooLarge, 1)
	b.a.replyError(u, id, codeTooLarge, "message too large for the cluster bus (NATS max payload "+b.busLimit()+" bytes)")
}
