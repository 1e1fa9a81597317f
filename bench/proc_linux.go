//go:build linux

package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 for every architecture's user-visible ABI.
const userHZ = 100

// procSample reads a local server's resident set, CPU seconds and open
// descriptors from /proc/PID, which costs the server nothing: unlike a
// /metrics scrape, it allocates nothing in the process it measures.
func procSample(pid int) (*ServerSample, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return nil, fmt.Errorf("read server status: %w", err)
	}
	s := &ServerSample{At: time.Now(), Source: SourceProc, Missing: []string{metricConnections, metricGoroutines}}
	for line := range bytes.Lines(status) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseFloat(string(bytes.Fields(v)[0]), 64)
			s.RSS = kb * 1024
		}
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil, fmt.Errorf("read server stat: %w", err)
	}
	// Fields after the command name, which may hold spaces: state is
	// field 3, utime and stime are 14 and 15 (proc(5)).
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
		if f := bytes.Fields(stat[i+1:]); len(f) > 13 {
			ut, _ := strconv.ParseFloat(string(f[11]), 64)
			st, _ := strconv.ParseFloat(string(f[12]), 64)
			s.CPUSeconds = (ut + st) / userHZ
		}
	}
	if d, err := os.Open(dir + "/fd"); err == nil {
		names, _ := d.Readdirnames(-1)
		_ = d.Close()
		s.OpenFDs = float64(len(names))
	}
	return s, nil
}
