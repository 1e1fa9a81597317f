package app

import "strconv"

// reconnectHint is the message a client gets just before the drain closes
// it with 1012: {"type":"reconnect","after_ms":N}, reconnect after N ms
// (edge draws N with jitter). edge.Config.DrainHint.
func reconnectHint(afterMs int) []byte {
	b := append(make([]byte, 0, 48), `{"type":"reconnect","after_ms":`...)
	b = strconv.AppendInt(b, int64(afterMs), 10)
	return append(b, '}')
}
