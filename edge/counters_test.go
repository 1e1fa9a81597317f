package edge

import (
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestStripedCounterSums(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newStripedCounter(reg, "test_total", "test")
	for fd := range 100 {
		c.add(fd, uint64(fd))
	}
	if got, want := c.value(), uint64(99*100/2); got != want {
		t.Fatalf("value %d, want %d", got, want)
	}
	mf, err := reg.Gather()
	if err != nil || len(mf) != 1 || mf[0].GetName() != "wsedge_test_total" || mf[0].GetMetric()[0].GetCounter().GetValue() != 4950 {
		t.Fatalf("gathered %v, %v", mf, err)
	}
}

// The per-message path adds to four counters per message; these compare a
// shared Prometheus counter with the striped one when every P adds at once
// (each goroutine as a worker serving its own connections).
func BenchmarkCounterShared(b *testing.B) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(64)
		}
	})
}

func BenchmarkCounterStriped(b *testing.B) {
	c := new(stripedCounter)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		fd := int(next.Add(1))
		for pb.Next() {
			c.add(fd, 64)
		}
	})
}
