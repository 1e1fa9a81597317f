package cluster

import (
	"hash/maphash"

	"github.com/nats-io/nats.go"
)

// intakeLen is the hand-off between nats.go's reader and route, in
// messages: nats.go cannot count a channel's bytes, so route does. route
// only counts and forwards, so the hand-off fills only while route waits
// for a CPU; past it NATS drops (counted as slow_consumer). 4096 absorbs a
// burst of small messages as well as the old per-dispatcher channels did
// (measured: 50,000 published at once on 2 cores).
const intakeLen = 4096

// route moves each message from intake to its subject's dispatcher queue:
// one subject always goes to one queue, so its messages stay in order.
func (b *Bus) route() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case m := <-b.intake:
			b.enqueue(m)
		}
	}
}

// enqueue queues m unless the queues would then hold more than QueueBytes
// or m's queue is full; a message dropped here is counted.
func (b *Bus) enqueue(m *nats.Msg) {
	n := msgSize(m)
	if b.queued.Add(n) > b.cfg.QueueBytes {
		b.queued.Add(-n)
		b.m.queueDrops.WithLabelValues("bytes").Inc()
		return
	}
	q := b.queues[maphash.String(b.queueSeed, m.Subject)%uint64(len(b.queues))]
	select {
	case q <- m:
	default:
		b.queued.Add(-n)
		b.m.queueDrops.WithLabelValues("count").Inc()
	}
}

// msgSize is what a queued message holds, as nats.go counts it for the
// pending limits of its own subscriptions.
func msgSize(m *nats.Msg) int64 { return int64(len(m.Data) + len(m.Subject) + len(m.Reply)) }

// dispatch handles the user and room messages of one queue in order.
func (b *Bus) dispatch(q chan *nats.Msg) {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case m := <-q:
			b.handle(m)
			b.queued.Add(-msgSize(m))
		}
	}
}
