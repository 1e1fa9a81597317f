package app

import (
	"sync"
	"sync/atomic"

	"github.com/wsedge/wsedge/edge"
)

// fanoutBatch is how many connections one pool task writes to. Large enough
// that task overhead is small next to the writes, small enough that a big
// room spreads over the workers.
const fanoutBatch = 512

// Delivery kinds, the label of wsedge_deliveries_total.
const (
	kindUser      = "user"
	kindRoom      = "room"
	kindBroadcast = "broadcast"
)

// fanout writes f, each of its forms (plain, compressed) encoded once, to every target and returns how
// many writes were accepted (sent or queued). All but the last batch run on
// the worker pool; the caller's goroutine takes the last one and then waits
// for the rest, so the count is exact and a later message from the same
// caller cannot overtake this one at any connection.
func (a *App) fanout(targets []*user, f *edge.Fanout, kind string) int {
	var (
		wg        sync.WaitGroup
		delivered atomic.Int64
	)
	for len(targets) > fanoutBatch {
		batch := targets[:fanoutBatch:fanoutBatch]
		targets = targets[fanoutBatch:]
		wg.Add(1)
		a.srv.Submit(func() {
			defer wg.Done()
			delivered.Add(int64(a.writeBatch(batch, f, kind)))
		})
	}
	delivered.Add(int64(a.writeBatch(targets, f, kind)))
	wg.Wait()
	return int(delivered.Load())
}

// broadcast writes f to every registered user: each registry shard is
// snapshotted in turn and written in batches of fanoutBatch on the pool.
func (a *App) broadcast(f *edge.Fanout) int {
	var (
		wg        sync.WaitGroup
		delivered atomic.Int64
	)
	a.users.eachShard(func(snap []*user) {
		for len(snap) > 0 {
			batch := snap[:min(len(snap), fanoutBatch)]
			snap = snap[len(batch):]
			wg.Add(1)
			a.srv.Submit(func() {
				defer wg.Done()
				delivered.Add(int64(a.writeBatch(batch, f, kindBroadcast)))
			})
		}
	})
	wg.Wait()
	return int(delivered.Load())
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
