package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/edge/app"
	"github.com/wsedge/wsedge/edge/cluster"
)

// helpDefaults runs -h and returns each flag's usage text and the default
// it prints ("" when it prints none: a zero default).
func helpDefaults(t *testing.T) (usage, def map[string]string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, &out, &errb, nil); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	usage, def = map[string]string{}, map[string]string{}
	flagLine := regexp.MustCompile(`^  -([a-z0-9-]+)`)
	printed := regexp.MustCompile(`^(.*) \(default ("[^"]*"|[^:)][^)]*)\)$`)
	name := ""
	for _, line := range strings.Split(errb.String(), "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			name = m[1]
			usage[name] = ""
			continue
		}
		if name != "" && strings.HasPrefix(line, "    \t") {
			usage[name] = strings.TrimSpace(usage[name] + " " + strings.TrimPrefix(line, "    \t"))
		}
	}
	for n, u := range usage {
		if m := printed.FindStringSubmatch(u); m != nil {
			usage[n], def[n] = m[1], strings.Trim(m[2], `"`)
		}
	}
	return usage, def
}

// -h shows for every flag the default edge.DefaultConfig and
// app.DefaultConfig give (0 where the value is decided at start), and
// lists no flag this test does not know.
func TestHelpDefaultsAreDefaultConfig(t *testing.T) {
	ed, ad, cl := edge.DefaultConfig(), app.DefaultConfig(), cluster.DefaultConfig()
	str := func(v any) string {
		if s := fmt.Sprint(v); s != "0" && s != "false" {
			return s
		}
		return "" // flag prints no default for a zero value
	}
	want := map[string]string{
		"addr": ed.Addr, "admin": ed.AdminAddr, "backlog": str(ed.Backlog),
		"pollers": str(ed.Pollers), "workers": str(ed.Workers), "read-buffer": str(ed.ReadBufferSize),
		"poll-batch": str(ed.PollBatch), "poll-in-place": str(ed.PollInPlace),
		"wheel-tick": str(ed.WheelTick), "wheel-slots": str(ed.WheelSlots),
		"handshake-timeout": str(ed.HandshakeTimeout), "ping-interval": str(ed.PingInterval), "pong-timeout": str(ed.PongTimeout),
		"close-timeout": str(ed.CloseTimeout), "shutdown-timeout": str(ed.ShutdownTimeout),
		"drain-window": str(ed.DrainWindow), "accept-rate": str(ed.AcceptRate), "accept-burst": str(ed.AcceptBurst), "reuseport": str(ed.ReusePort),
		"max-message": str(ed.MaxMessage), "max-header-bytes": str(ed.MaxHeaderBytes),
		"max-conns": "", "max-pending-handshakes": "", // from the raised open-file limit and -max-conns, at start
		"max-pending-per-ip": str(ed.MaxPendingPerIP), "write-queue": str(ed.WriteQueue), "slow-consumer": ed.SlowConsumer,
		"echo": str(ed.Echo), "pprof": str(ed.Pprof),
		"compression": str(!ed.DisableCompression), "compression-level": str(ed.CompressionLevel), "compression-min-size": str(ed.CompressionMinSize),
		"max-rooms-per-conn": str(ad.MaxRoomsPerConn), "max-rooms": str(ad.MaxRooms), "admin-max-body": str(ad.AdminMaxBody), "fanout-writers": str(ad.FanoutWriters),
		"history-size": str(ad.HistorySize), "history-ttl": str(ad.HistoryTTL), "history-max-bytes": str(ad.HistoryMaxBytes),
		"history-storage": ad.HistoryStorage, "history-replicas": str(ad.HistoryReplicas),
		"client-rate": "", "client-burst": "", // on with a JWT key only
		"jwt-audience": "", "jwt-issuer": "", "jwt-allow-no-exp": "", "allowed-origins": "", "admin-token": "",
		"jwt-secret": "", "jwt-secret-file": "", "jwt-public-key": "", "admin-token-file": "",
		"nats": "", "node-id": "", // no cluster by default; the node id is made at start
		"cluster-timeout": str(cl.Timeout), "cluster-prefix": cl.Prefix, "cluster-queue-bytes": str(cl.QueueBytes),
		"nats-creds": "", "nats-nkey": "", "nats-ca": "",
		"room-policy": ad.RoomPolicy, "join-hook": "", "hook-concurrency": str(ad.HookConcurrency), "hook-queue": str(ad.HookQueue),
		"hook-timeout": str(ad.HookTimeout), "hook-cache": str(ad.HookCache), "hook-cache-size": str(ad.HookCacheSize), "conns-per-user": str(ad.ConnsPerUser),
		"gc-percent": str(defaultGCPercent), "log-format": "text", "log-level": "info", "version": "",
	}
	usage, def := helpDefaults(t)
	for name := range usage {
		w, ok := want[name]
		if !ok {
			t.Errorf("-%s: not known to this test; add its DefaultConfig default", name)
			continue
		}
		if def[name] != w {
			t.Errorf("-%s: -h shows default %q, DefaultConfig gives %q", name, def[name], w)
		}
	}
	for name := range want {
		if _, ok := usage[name]; !ok {
			t.Errorf("-%s: expected in -h, missing", name)
		}
	}
}

// readmeFlags returns every flag row of README.md's tables: flag name to
// its default cell (a row of "-a / -b" with "x / y" gives one to each,
// with "x" x to both).
func readmeFlags(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	name := regexp.MustCompile("`-([a-z0-9-]+)`")
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `-") {
			continue
		}
		cells := strings.Split(line, " | ")
		if len(cells) < 3 {
			t.Fatalf("README row %q: want | flag | default | meaning |", line)
		}
		flags := name.FindAllStringSubmatch(cells[0], -1)
		defs := strings.Split(cells[1], " / ")
		if len(defs) == 1 { // one default for them all
			for len(defs) < len(flags) {
				defs = append(defs, defs[0])
			}
		}
		if len(defs) != len(flags) {
			t.Fatalf("README row %q: %d flags, %d defaults", line, len(flags), len(defs))
		}
		for i, f := range flags {
			if _, dup := rows[f[1]]; dup {
				t.Errorf("README lists -%s twice", f[1])
			}
			rows[f[1]] = strings.ReplaceAll(strings.TrimSpace(defs[i]), "`", "")
		}
	}
	return rows
}

// readmeValue turns a README default into the text flag.DefValue gives:
// "64 KiB" is 65536, "100,000" is 100000, "none", "off" and "any" are "".
func readmeValue(s string) string {
	switch s {
	case "none", "off", "any":
		return ""
	}
	for suffix, unit := range map[string]int64{" KiB": 1 << 10, " MiB": 1 << 20} {
		if n, err := strconv.ParseInt(strings.TrimSuffix(s, suffix), 10, 64); err == nil && strings.HasSuffix(s, suffix) {
			return strconv.FormatInt(n*unit, 10)
		}
	}
	if n := strings.ReplaceAll(s, ",", ""); n != s {
		if _, err := strconv.Atoi(n); err == nil {
			return n
		}
	}
	return s
}

// README's flag tables list every flag -h lists, and no other, with the
// default -h gives. A default decided at start (0 or empty in -h) or by
// the machine (-pollers, -workers, -fanout-writers) is written in README as the rule,
// which must be the words -h puts in parentheses for it.
func TestReadmeFlagTableMatchesHelp(t *testing.T) {
	rows := readmeFlags(t)
	fs := newOptions(io.Discard).fs
	byMachine := map[string]bool{"pollers": true, "workers": true, "fanout-writers": true}
	fs.VisitAll(func(f *flag.Flag) {
		r, ok := rows[f.Name]
		if !ok {
			t.Errorf("-%s: missing from README's flag tables", f.Name)
			return
		}
		delete(rows, f.Name)
		zero := f.DefValue == "" || f.DefValue == "0" || f.DefValue == "0s"
		switch v := readmeValue(r); {
		case v == f.DefValue || zero && v == "":
		case (zero || byMachine[f.Name]) && regexp.MustCompile(`(\(|: )`+regexp.QuoteMeta(r)+`\)`).MatchString(f.Usage):
		default:
			t.Errorf("-%s: README default %q, -h says %q (usage %q)", f.Name, r, f.DefValue, f.Usage)
		}
	})
	for name := range rows {
		t.Errorf("README lists -%s, which wsedge does not have", name)
	}
	// The rules in words, checked on this machine.
	if w := max(1, runtime.GOMAXPROCS(0)-1); fs.Lookup("fanout-writers").DefValue != strconv.Itoa(w) {
		t.Errorf("-fanout-writers default %s, want all CPUs but one, at least 1: %d", fs.Lookup("fanout-writers").DefValue, w)
	}
	if w := max(16, 8*runtime.GOMAXPROCS(0)); fs.Lookup("workers").DefValue != strconv.Itoa(w) {
		t.Errorf("-workers default %s, want 8 per CPU, at least 16: %d", fs.Lookup("workers").DefValue, w)
	}
	if p := runtime.GOMAXPROCS(0); fs.Lookup("pollers").DefValue != strconv.Itoa(p) {
		t.Errorf("-pollers default %s, want GOMAXPROCS %d", fs.Lookup("pollers").DefValue, p)
	}
}
