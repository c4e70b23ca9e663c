// Package procstat reads the CPU time of a process from /proc/<pid>/stat.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clkTck is USER_HZ, which Linux fixes at 100 for /proc on every architecture Go supports here.
const clkTck = 100

// CPUSeconds returns utime + stime of pid (all its threads, living and exited), in seconds.
// pid 0 means "not tracked" and returns 0.
func CPUSeconds(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parse(string(b))
}

// parse reads fields 14 (utime) and 15 (stime). The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parse(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("procstat: malformed stat line")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14 → f[11], stime field 15 → f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("procstat: short stat line")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("procstat: bad utime/stime")
	}
	return float64(u+s) / clkTck, nil
}

// Switches counts the context switches of pid's living threads, from /proc/<pid>/task/*/status:
// sleeps (voluntary: the thread blocked, and was woken later) and preemptions (involuntary).
// Threads that have exited are not counted. pid 0 means "not tracked" and returns zeros.
func Switches(pid int) (sleeps, preemptions int64, err error) {
	if pid == 0 {
		return 0, 0, nil
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread exited meanwhile
		}
		v, n := parseSwitches(string(b))
		sleeps, preemptions = sleeps+v, preemptions+n
	}
	return sleeps, preemptions, nil
}

func parseSwitches(status string) (voluntary, involuntary int64) {
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "voluntary_ctxt_switches":
			voluntary = n
		case "nonvoluntary_ctxt_switches":
			involuntary = n
		}
	}
	return voluntary, involuntary
}
