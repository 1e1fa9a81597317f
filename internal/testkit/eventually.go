package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, failing t once d has passed. It is
// for conditions with no signal to wait on (a counter, a gauge, a count of
// file descriptors); the polling interval is short and never a guess at how
// long something takes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for an event
	}
}
