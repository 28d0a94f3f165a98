package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// gatherEnv describes the machine and the software under test.
func gatherEnv(ctx context.Context, binDir, mosquittoBin string) env {
	e := env{Date: time.Now(), GoVersion: runtime.Version(), LoadStart: uptime(ctx)}
	e.NProc, _ = strconv.Atoi(output(ctx, "nproc"))
	if e.NProc == 0 {
		e.NProc = runtime.NumCPU()
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		e.CPUModel = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	e.Mosquitto = mosquittoVersion(output(ctx, mosquittoBin, "-h"))
	e.Mochi = output(ctx, filepath.Join(binDir, "mochi"), "-version")
	e.FlockMQ = output(ctx, "git", "rev-parse", "--short", "HEAD")
	if e.FlockMQ == "" {
		e.FlockMQ = "unknown commit"
	} else if output(ctx, "git", "status", "--porcelain") != "" {
		e.FlockMQ += " with uncommitted changes"
	}
	return e
}

// output runs a command and returns its trimmed stdout and stderr, ignoring
// the exit status (mosquitto -h exits non-zero).
func output(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(b))
}

func uptime(ctx context.Context) string { return output(ctx, "uptime") }

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// mosquittoVersion picks "2.0.11" out of `mosquitto -h`.
func mosquittoVersion(help string) string {
	for _, line := range strings.Split(help, "\n") {
		if _, v, ok := strings.Cut(line, "mosquitto version "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func findMosquitto(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", fmt.Errorf("mosquitto not found (apt-get install -y mosquitto)")
}

// defaultCPULists splits the CPUs: the upper half for the brokers (one at a
// time), the lower half for the load tool. One CPU: no pinning.
func defaultCPULists(n int) (brokers, tool string) {
	if n < 2 {
		return "", ""
	}
	half := n / 2
	return cpuRange(half, n-1), cpuRange(0, half-1)
}

func cpuRange(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// cpuCount counts the CPUs of a taskset list such as "1", "2-3" or "0,2-3".
func cpuCount(list string) (int, error) {
	seen := map[int]bool{}
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0, fmt.Errorf("bad CPU list %q", list)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("bad CPU list %q", list)
			}
		}
		for c := a; c <= b; c++ {
			seen[c] = true
		}
	}
	return len(seen), nil
}

func orAll(list string) string {
	if list == "" {
		return "any (not pinned)"
	}
	return list
}
