package app

import (
	"sync"
	"sync/atomic"

	"github.com/wsedge/wsedge/edge"
)

// fanoutBatch is how many connections a fan-out writes to in one batch.
// Large enough that task overhead is small next to the writes, small
// enough that a big room spreads over the lanes. (A variable for tests.)
var fanoutBatch = 512

// Delivery kinds, the label of wsedge_deliveries_total.
const (
	kindUser      = "user"
	kindRoom      = "room"
	kindBroadcast = "broadcast"
)

// fanout writes f, each of its forms (plain, compressed) encoded once, to
// every target and returns how many writes were accepted (sent or queued).
// The caller's goroutine writes one lane itself and then waits for the
// rest (writeLanes), so the count is exact and a later message from the
// same caller cannot overtake this one at any connection.
func (a *App) fanout(targets []*user, f *edge.Fanout, kind string) int {
	return a.writeLanes(cut(nil, targets), f, kind)
}

// cut appends users to batches in batches of fanoutBatch.
func cut(batches [][]*user, users []*user) [][]*user {
	for len(users) > 0 {
		n := min(len(users), fanoutBatch)
		batches = append(batches, users[:n:n])
		users = users[n:]
	}
	return batches
}

// broadcast writes f to every registered user: each registry shard is
// snapshotted in turn, cut into batches of fanoutBatch, and the batches are
// written in lanes (writeLanes).
func (a *App) broadcast(f *edge.Fanout) int {
	var batches [][]*user
	a.users.eachShard(func(snap []*user) { batches = cut(batches, snap) })
	return a.writeLanes(batches, f, kindBroadcast)
}

// writeLanes writes f to the batches in at most Config.FanoutWriters lanes
// at once: every lane but the last is one pool task that writes its
// batches in turn, the caller writes the last, then waits for the others.
// A fan-out therefore keeps at most FanoutWriters CPUs busy (by default
// all but one): the reads, handshakes and timers of every other
// connection keep a CPU however large the fan-out, and a client on the
// same machine keeps one too (docs/benchmarks.md).
func (a *App) writeLanes(batches [][]*user, f *edge.Fanout, kind string) int {
	lanes := max(1, min(a.cfg.FanoutWriters, len(batches)))
	lane := func(i int) int { // lane i: batches i, i+lanes, i+2*lanes, ...
		n := 0
		for k := i; k < len(batches); k += lanes {
			n += a.writeBatch(batches[k], f, kind)
		}
		return n
	}
	var (
		wg     sync.WaitGroup
		others atomic.Int64
	)
	for i := 0; i < lanes-1; i++ {
		wg.Add(1)
		a.srv.Submit(func() {
			defer wg.Done()
			others.Add(int64(lane(i)))
		})
	}
	n := lane(lanes - 1)
	wg.Wait()
	return n + int(others.Load())
}

// writeBatch writes f to each user and counts the outcomes once.
func (a *App) writeBatch(batch []*user, f *edge.Fanout, kind string) int {
	var ok, full, closed int
	for _, u := range batch {
		switch u.conn.WriteFanout(f) {
		case nil:
			ok++
		case edge.ErrDropped:
			full++
		default:
			closed++
		}
	}
	a.m.delivered(kind, ok)
	a.m.dropped("queue_full", full)
	a.m.dropped("closed", closed)
	return ok
}
