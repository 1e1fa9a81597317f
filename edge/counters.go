package edge

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/cpu"
)

// counterStripes is how many cache lines a hot counter is spread over; a
// power of two comfortably above the CPUs a worker pool keeps busy here.
const counterStripes = 16

// stripedCounter is a counter for the per-message path (bytes and messages
// in and out). Adds go to the stripe of the connection's fd, each stripe on
// its own cache line, so workers serving different connections do not
// bounce one line between CPUs as a shared Prometheus counter does; a
// scrape sums the stripes (exported with prometheus.NewCounterFunc under the
// same name, so the series is unchanged).
type stripedCounter struct {
	stripes [counterStripes]struct {
		n atomic.Uint64
		_ cpu.CacheLinePad
	}
}

// add counts n for the connection on fd.
func (c *stripedCounter) add(fd int, n uint64) {
	c.stripes[fd&(counterStripes-1)].n.Add(n)
}

// value is the sum of the stripes (exact once adds have stopped; a moment's
// snapshot otherwise, as a scrape of any counter is).
func (c *stripedCounter) value() uint64 {
	var sum uint64
	for i := range c.stripes {
		sum += c.stripes[i].n.Load()
	}
	return sum
}

// newStripedCounter registers a counter named wsedge_<name> on reg that
// reads c at scrape.
func newStripedCounter(reg *prometheus.Registry, name, help string) *stripedCounter {
	c := new(stripedCounter)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsedge", Name: name, Help: help},
		func() float64 { return float64(c.value()) }))
	return c
}
