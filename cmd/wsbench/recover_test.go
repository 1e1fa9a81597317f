package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wsedge/wsedge/bench"
	"github.com/wsedge/wsedge/edge/app"
)

// runRecoverJSON runs wsbench recover with -json and decodes the report.
func runRecoverJSON(t *testing.T, want int, args ...string) *bench.RecoverResult {
	t.Helper()
	code, out, errs := runCLI(t, append([]string{"recover", "-json"}, args...)...)
	if code != want {
		t.Fatalf("wsbench recover %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
	}
	var res bench.RecoverResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-json output does not parse: %v\n%s", err, out)
	}
	return &res
}

// Every client of two rooms drops, messages are published while they are
// away, and every one rejoins with since: each must get exactly the
// messages it missed, in order, then the live ones.
func TestRecoverEveryClientGetsEveryMessageOnce(t *testing.T) {
	ws, admin := startApp(t, app.Config{HistorySize: 64})
	res := runRecoverJSON(t, exitOK, "-url", ws, "-admin", admin, "-conns", "40", "-rooms", "2",
		"-before", "2", "-during", "10", "-after", "3", "-outage", "300ms", "-interval", "20ms", "-deadline", "60s")
	if res.Stop != bench.StopCompleted || res.Joined != 40 || res.Recovered != 40 || res.Gaps != 0 {
		t.Fatalf("stop %q, joined %d, recovered %d, gaps %d; want completed, 40, 40, 0", res.Stop, res.Joined, res.Recovered, res.Gaps)
	}
	if res.Missing != 0 || res.Duplicated != 0 || res.GapMissing != 0 || res.Errors != 0 {
		t.Fatalf("missing %d, duplicated %d, gap missing %d, errors %d; want 0", res.Missing, res.Duplicated, res.GapMissing, res.Errors)
	}
	// The 10 published during the outage can only come from the history.
	if res.Replayed < 40*10 || res.Replayed+res.Live != 40*15 {
		t.Fatalf("replayed %d, live %d: want at least 400 replayed of 600", res.Replayed, res.Live)
	}
	if res.AllRecovered <= 0 || res.AllCaughtUp < res.AllRecovered || res.ServerPeakRSS <= 0 || res.Reconnect.Count != 40 {
		t.Fatalf("all recovered %v, caught up %v, peak RSS %d, reconnects %d", res.AllRecovered, res.AllCaughtUp, res.ServerPeakRSS, res.Reconnect.Count)
	}
}

// A history shorter than the outage's messages cannot fill the gap: every
// rejoin is told recovered:false and its losses are counted as such, not
// as missing messages.
func TestRecoverGapReported(t *testing.T) {
	ws, admin := startApp(t, app.Config{HistorySize: 4})
	res := runRecoverJSON(t, exitOK, "-url", ws, "-admin", admin, "-conns", "10",
		"-before", "1", "-during", "8", "-after", "2", "-outage", "200ms", "-interval", "20ms", "-deadline", "60s")
	if res.Gaps != 10 || res.Recovered != 0 || res.Missing != 0 || res.GapMissing != 10*8 || res.Duplicated != 0 {
		t.Fatalf("gaps %d, recovered %d, missing %d, gap missing %d, duplicated %d; want 10, 0, 0, 80, 0",
			res.Gaps, res.Recovered, res.Missing, res.GapMissing, res.Duplicated)
	}
}
