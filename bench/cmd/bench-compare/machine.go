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

// gatherEnv describes the machine and the software under test; outDir is
// where the brokers' data directories are made. Without mosquittoBin
// (-cluster) the peers are left out.
func gatherEnv(ctx context.Context, binDir, mosquittoBin, outDir string) env {
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
	if mosquittoBin != "" {
		e.Mosquitto = mosquittoVersion(output(ctx, mosquittoBin, "-h"))
		e.Mochi = output(ctx, filepath.Join(binDir, "mochi"), "-version")
	}
	e.FlockMQDefaults = flagDefaults(output(ctx, filepath.Join(binDir, "flockmq"), "-h"),
		"store", "loops", "log-level", "sys-interval", "max-inflight", "max-queued-messages", "data-dir", "raft-bind")
	if fs := strings.Fields(output(ctx, "df", "--output=fstype", outDir)); len(fs) == 2 {
		e.DataFS = fs[1] // under the "Type" heading
	}
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

// flagDefaults picks "name value" for each of names out of `flockmq -h`,
// whose usage lines end "(default VALUE; env FLOCKMQ_NAME)"; "name ?" for a
// flag it does not find.
func flagDefaults(help string, names ...string) string {
	found := map[string]string{}
	lines := strings.Split(help, "\n")
	for i := 0; i+1 < len(lines); i++ {
		name, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(lines[i]), "-"), " ")
		if !ok || !strings.HasPrefix(strings.TrimSpace(lines[i]), "-") {
			continue
		}
		j := strings.LastIndex(lines[i+1], "(default ")
		if j < 0 {
			continue
		}
		def, _, _ := strings.Cut(lines[i+1][j+len("(default "):], "; env ")
		found[name] = strings.TrimSuffix(def, ")")
	}
	parts := make([]string, len(names))
	for i, n := range names {
		v, ok := found[n]
		if !ok {
			v = "?"
		}
		parts[i] = "-" + n + " " + v
	}
	return strings.Join(parts, ", ")
}
