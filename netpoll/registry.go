package netpoll

import "sync/atomic"

const pageBits = 12

type page [1 << pageBits]atomic.Pointer[Conn]

// registry maps fds to connections. Pages are allocated on first use, so it
// costs 8 bytes per fd up to the highest fd in use, and lookups are two
// atomic loads with no lock.
type registry struct {
	pages []atomic.Pointer[page]
}

func (r *registry) init(maxFD int) {
	r.pages = make([]atomic.Pointer[page], (maxFD>>pageBits)+1)
}

func (r *registry) cap() int { return len(r.pages) << pageBits }

func (r *registry) get(fd int) *Conn {
	pg := r.pages[fd>>pageBits].Load()
	if pg == nil {
		return nil
	}
	return pg[fd&(1<<pageBits-1)].Load()
}

func (r *registry) set(fd int, c *Conn) {
	slot := &r.pages[fd>>pageBits]
	pg := slot.Load()
	if pg == nil {
		slot.CompareAndSwap(nil, new(page))
		pg = slot.Load()
	}
	pg[fd&(1<<pageBits-1)].Store(c)
}

// clear empties fd's slot if it still holds c (a new connection may own it).
func (r *registry) clear(fd int, c *Conn) {
	if pg := r.pages[fd>>pageBits].Load(); pg != nil {
		pg[fd&(1<<pageBits-1)].CompareAndSwap(c, nil)
	}
}

func (r *registry) rangeAll(fn func(*Conn) bool) {
	for i := range r.pages {
		pg := r.pages[i].Load()
		if pg == nil {
			continue
		}
		for j := range pg {
			if c := pg[j].Load(); c != nil && !fn(c) {
				return
			}
		}
	}
}
