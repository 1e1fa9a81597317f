package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/wsedge/wsedge/bench"
)

func echoRun(server string, perSec float64) *compareRun {
	return &compareRun{Server: server, Results: map[string]*bench.Result{
		bench.ScenarioEcho: {Messages: &bench.MessageStats{PerSec: perSec}},
	}}
}

// Over rounds, a cell is the median with its range, and the ratio is taken
// within each round against that round's best peer, not from the medians.
func TestCompareRoundsMediansAndPerRoundRatios(t *testing.T) {
	rounds := [][]*compareRun{
		{echoRun("wsedge", 110), echoRun("gws", 100), echoRun("nbio", 90)},
		{echoRun("wsedge", 90), echoRun("gws", 60), echoRun("nbio", 100)},
		{echoRun("wsedge", 130), echoRun("gws", 100), echoRun("nbio", 80)},
	}
	var out bytes.Buffer
	printCompare(&out, &compareOptions{interval: 100e6}, rounds)
	var row string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "echo: msgs/s") {
			row = l
		}
	}
	// wsedge 90,110,130; gws 60,100,100; ratios 1.10, 0.90, 1.30.
	for _, want := range []string{" 110 (90-130) ", " 100 (60-100) ", "1.10× (0.90×-1.30×)", "gws 2, nbio 1", "higher better"} {
		if !strings.Contains(row, want) {
			t.Errorf("echo row lacks %q:\n%s", want, row)
		}
	}
	if !strings.Contains(out.String(), "3 round(s)") || !strings.Contains(out.String(), "median (min-max)") {
		t.Errorf("footer does not say how the rounds were summarised:\n%s", out.String())
	}
}

func TestCompareOneRoundPlainCells(t *testing.T) {
	var out bytes.Buffer
	printCompare(&out, &compareOptions{interval: 100e6}, [][]*compareRun{{echoRun("wsedge", 120), echoRun("gws", 100)}})
	if !strings.Contains(out.String(), " 120 ") || !strings.Contains(out.String(), "1.20× (best: gws, higher better)") {
		t.Errorf("one round:\n%s", out.String())
	}
	if strings.Contains(out.String(), "(min-max)") {
		t.Errorf("one round printed ranges:\n%s", out.String())
	}
}

func TestSpreadEvenCount(t *testing.T) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	if got := spread([]float64{4, 1, 3, 2}, f); got != "2.5 (1-4)" {
		t.Errorf("spread = %q, want 2.5 (1-4)", got)
	}
	if got := spread(nil, f); got != "-" {
		t.Errorf("spread(nil) = %q", got)
	}
}

// The server's two ports are picked with both listeners open: picked one
// after the other, a crowded ephemeral range handed out the same port
// twice and the server could not bind its second listener.
func TestFreePortsDistinct(t *testing.T) {
	for range 50 {
		p, err := freePorts(2)
		if err != nil {
			t.Fatal(err)
		}
		if p[0] == p[1] {
			t.Fatalf("the same port twice: %v", p)
		}
	}
}
