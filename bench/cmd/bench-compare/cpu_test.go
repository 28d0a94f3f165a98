package main

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// utime 250 and stime 50 ticks; the command name holds ") (" and spaces.
	stat := "4242 (evil) (name x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000000 500\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 3*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "4242 (x S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 a 50"} {
		if _, err := parseStatCPU([]byte(bad)); !errors.Is(err, errBadStat) {
			t.Errorf("parseStatCPU(%q) err = %v", bad, err)
		}
	}
	if _, err := processCPU(os.Getpid()); err != nil {
		t.Fatalf("processCPU(self): %v", err)
	}
}

func TestRoundTarget(t *testing.T) {
	for line, want := range map[string]string{
		"== round 2/3: mosquitto (127.0.0.1:1883)": "mosquitto",
		"== round 1/1: flockmq (a:1,b:2)":          "flockmq",
		"== round 1/1: mochi":                      "mochi",
		"conns 8/8 pub 1000/s":                     "",
		"== round 1/1: ":                           "",
	} {
		if got, ok := roundTarget(line); got != want || ok != (want != "") {
			t.Errorf("roundTarget(%q) = %q, %v", line, got, ok)
		}
	}
}

// TestCPUMeter: runs open on the tool's round lines, a run whose process
// changed is left out, and the cores are CPU time over wall time.
func TestCPUMeter(t *testing.T) {
	pids := map[string]int{"a": 1, "b": 2}
	cpu := map[int]time.Duration{}
	clock := time.Unix(0, 0)
	m := newCPUMeter(func(name string) (int, bool) { pid, ok := pids[name]; return pid, ok })
	m.read = func(pid int) (time.Duration, error) {
		if pid == 99 {
			return 0, errors.New("gone")
		}
		return cpu[pid], nil
	}
	m.now = func() time.Time { return clock }
	step := func(d time.Duration, pid int, used time.Duration) { clock = clock.Add(d); cpu[pid] += used }

	m.Line("== round 1/2: a (h:1)")
	step(10*time.Second, 1, 15*time.Second)
	step(0, 2, time.Second) // b idles meanwhile: not counted
	m.Line("progress line")
	m.Line("== round 1/2: b (h:2)")
	step(10*time.Second, 2, 5*time.Second)
	m.Line("== round 2/2: a (h:1)")
	pids["a"] = 99 // crashed and restarted
	step(10*time.Second, 1, 15*time.Second)
	m.Line("== round 2/2: b (h:2)")
	step(10*time.Second, 2, 5*time.Second)
	m.Line("== round 3/3: nobody (h:3)") // closes b's run; opens none
	step(10*time.Second, 2, 5*time.Second)
	m.End()
	m.End()

	if got := m.Total("a"); got != (cpuTotal{CPU: 15 * time.Second, Wall: 10 * time.Second, Runs: 1, Unmeasured: 1}) || got.Cores() != 1.5 {
		t.Errorf("a: %+v (%.2f cores)", got, got.Cores())
	}
	if got := m.Total("b"); got != (cpuTotal{CPU: 10 * time.Second, Wall: 20 * time.Second, Runs: 2}) || got.Cores() != 0.5 {
		t.Errorf("b: %+v (%.2f cores)", got, got.Cores())
	}
	if err := m.Round("nobody"); !errors.Is(err, errNoBroker) {
		t.Errorf("Round(unknown) err = %v", err)
	}
	if (cpuTotal{}).Cores() != 0 {
		t.Error("cores of nothing")
	}
	sum := m.Total("a").add(m.Total("b"))
	if sum != (cpuTotal{CPU: 25 * time.Second, Wall: 30 * time.Second, Runs: 3, Unmeasured: 1}) {
		t.Errorf("add = %+v", sum)
	}
}
