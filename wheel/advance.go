package wheel

import "time"

// Advance processes every tick whose start is at or before now, delivering
// what expires to Expire on the calling goroutine before it returns. It is
// how a Manual wheel moves (tests pass a fake Clock's time). It must not be
// called from Expire. Calls are serialised; a now at or before the last
// processed tick does nothing. On a driven wheel it also places the timers
// staged since the last call, Resets made by Expire included.
func (w *Wheel) Advance(now time.Time) {
	w.advanceMu.Lock()
	defer w.advanceMu.Unlock()
	w.advanceTo(w.tickAt(now))
	if w.stage {
		w.sweep()
	}
}

// drive is the wheel's one goroutine. The ticker (at the wheel's resolution,
// half of Config.Tick) only wakes it: which ticks are due is read from the
// clock, so a late wake-up catches up on every tick it missed and no timer
// is skipped.
func (w *Wheel) drive(ticker *time.Ticker) {
	defer close(w.done)
	defer ticker.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-ticker.C:
			w.Advance(w.clock.Now())
		}
	}
}

func (w *Wheel) tickAt(now time.Time) int64 {
	e := now.Sub(w.start)
	if e < 0 {
		return 0
	}
	return int64(e / w.tick)
}

// advanceTo processes ticks up to target. The caller holds advanceMu.
//
// w.cur moves before a tick's slot is scanned, so a Schedule or Reset made
// while a batch is delivered (the lock is released then) lands after the
// tick being processed and cannot be picked up by the same scan.
func (w *Wheel) advanceTo(target int64) {
	w.mu.Lock()
	if w.closed || target <= w.cur {
		w.mu.Unlock()
		return
	}
	if target-w.cur > int64(len(w.heads)) {
		// More than a revolution behind: every slot is due, so one sweep
		// with the final tick as threshold fires exactly what the tick by
		// tick walk would, without walking the missed ticks one by one.
		w.cur = target
		for s := range w.heads {
			if !w.collect(int64(s), target) {
				return
			}
		}
	} else {
		for w.cur < target {
			w.cur++
			if !w.collect(w.cur&w.mask, w.cur) {
				return
			}
		}
	}
	w.mu.Unlock()
	w.deliver()
}

// collect moves the nodes of slot s due by tick threshold into w.batch,
// delivering full batches on the way. It is called with mu held and returns
// with it held, unless the wheel was closed during a delivery: then it
// returns false with mu released.
func (w *Wheel) collect(s, threshold int64) bool {
rescan:
	for idx := w.heads[s]; idx != nilIndex; {
		n := w.nodes.at(idx)
		next := n.next
		if n.deadline <= threshold {
			w.unlink(idx, n)
			n.state = stateFired
			w.pending--
			w.batch = append(w.batch, Expired{Handle: makeHandle(idx, n.gen), Data: n.data})
			if len(w.batch) == MaxBatch {
				w.mu.Unlock()
				w.deliver()
				w.mu.Lock()
				if w.closed {
					w.mu.Unlock()
					return false
				}
				// The slot may have changed while unlocked; start over.
				// Nothing added meanwhile is due by threshold.
				goto rescan
			}
		}
		idx = next
	}
	return true
}

// deliver hands the batch to Expire and empties it. The caller holds
// advanceMu but not mu.
func (w *Wheel) deliver() {
	if len(w.batch) == 0 {
		return
	}
	batch := w.batch
	w.batch = w.batch[:0]
	w.expire(batch)
}
