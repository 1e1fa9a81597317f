package cluster

import "math/bits"

// Fits reports whether a message of n bytes for name (a user id, a room,
// "" for a broadcast) is within the NATS server's max payload once wrapped
// for the bus. Before the first connection the limit is unknown: then the
// message is tried and fails as unavailable.
func (b *Bus) Fits(name string, n int) bool {
	limit := b.nc.MaxPayload()
	return limit <= 0 || int64(envelopeLen(name, n)) <= limit
}

// MaxPayload is the NATS server's max payload, for error messages.
func (b *Bus) MaxPayload() int64 { return b.nc.MaxPayload() }

// envelopeLen is the size of an op byte and a length-prefixed name before
// n payload bytes: a deliverMsg or a frameMsg.
func envelopeLen(name string, n int) int {
	return 1 + (bits.Len64(uint64(len(name))|1)+6)/7 + len(name) + n
}
