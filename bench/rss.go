package bench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// ProcessRSS reads VmRSS, in KiB, from /proc/PID/status; 0 when pid is 0 or
// the file cannot be read. Safe for concurrent use.
func ProcessRSS(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return ParseVmRSS(b)
}

// ParseVmRSS extracts the KiB of the "VmRSS:  1234 kB" line of a status file.
func ParseVmRSS(status []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(string(f[0]), 10, 64)
		return n
	}
	return 0
}
