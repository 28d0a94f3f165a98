package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100 on
// every architecture Linux and Go share (sysconf(_SC_CLK_TCK) needs cgo).
const userHZ = 100

var errBadStat = errors.New("bench-compare: unreadable /proc/PID/stat")

// processCPU is the CPU time, user plus system, a process has used so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU extracts utime + stime (fields 14 and 15, see proc(5)) from a
// /proc/PID/stat line. The command name, field 2, is in parentheses and may
// hold spaces and parentheses itself, so the fields are counted from the
// last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errBadStat
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, errBadStat
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errBadStat
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// cpuTotal is a broker's CPU time summed over its runs of one row, and the
// runs' summed length.
type cpuTotal struct {
	CPU, Wall  time.Duration
	Runs       int
	Unmeasured int // runs left out: the process changed (a crash) or /proc failed
}

// Cores is the CPU time over the wall time: the cores the broker kept busy
// on average while it was under load.
func (t cpuTotal) Cores() float64 {
	if t.Wall <= 0 {
		return 0
	}
	return t.CPU.Seconds() / t.Wall.Seconds()
}

// cpuMeter measures each broker's CPU time over each of its runs: a run
// opens with Round, or with the tool's "== round r/R: name (hosts)" progress
// line given to Line, and closes with the next one or End. Main goroutine
// only.
type cpuMeter struct {
	pid  func(target string) (int, bool)
	read func(pid int) (time.Duration, error) // processCPU; tests replace it
	now  func() time.Time

	cur    string // target whose run is open, "" between runs
	curPID int
	cpu0   time.Duration
	start  time.Time
	totals map[string]cpuTotal
}

// newCPUMeter measures the process pid returns for a target.
func newCPUMeter(pid func(target string) (int, bool)) *cpuMeter {
	return &cpuMeter{pid: pid, read: processCPU, now: time.Now, totals: map[string]cpuTotal{}}
}

// roundTarget picks the target's name out of a compare progress line.
func roundTarget(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "== round ")
	if !ok {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, ": ")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, " ")
	return name, name != ""
}

// Line opens a run when line is a compare round line; other lines are
// ignored.
func (m *cpuMeter) Line(line string) {
	if name, ok := roundTarget(line); ok {
		_ = m.Round(name)
	}
}

// Round closes the open run, if any, and opens one for target.
func (m *cpuMeter) Round(target string) error {
	m.End()
	pid, ok := m.pid(target)
	if !ok {
		return fmt.Errorf("%w: %q", errNoBroker, target)
	}
	m.cur, m.curPID = target, pid
	cpu, err := m.read(pid)
	if err != nil {
		m.curPID = -1 // counted as not measured at End
	}
	m.cpu0, m.start = cpu, m.now()
	return nil
}

// End closes the open run, if any.
func (m *cpuMeter) End() {
	if m.cur == "" {
		return
	}
	wall := m.now().Sub(m.start)
	t := m.totals[m.cur]
	pid, _ := m.pid(m.cur)
	cpu, err := m.read(pid)
	if err != nil || pid != m.curPID || cpu < m.cpu0 {
		t.Unmeasured++
	} else {
		t.CPU += cpu - m.cpu0
		t.Wall += wall
		t.Runs++
	}
	m.totals[m.cur] = t
	m.cur = ""
}

// Total is target's sum over its runs so far.
func (m *cpuMeter) Total(target string) cpuTotal { return m.totals[target] }

// add sums two totals.
func (t cpuTotal) add(o cpuTotal) cpuTotal {
	return cpuTotal{CPU: t.CPU + o.CPU, Wall: t.Wall + o.Wall, Runs: t.Runs + o.Runs, Unmeasured: t.Unmeasured + o.Unmeasured}
}
