// Package wheel is a hashed timing wheel for very large numbers of timers.
//
// It owns timer nodes, their slots and one driving goroutine per wheel. It
// never starts a goroutine per timer and knows nothing of sockets, frames or
// connections: expired timers are handed in batches to a function the caller
// provides.
package wheel
