// Package nodetest builds the flockmq binary and runs it as a child process
// for tests that need a real process: many connections (the open-file limit
// is per process), signals, kill -9 and restarts. It is test support only.
package nodetest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// Build builds ./cmd/node of this module into a temporary directory and
// returns the binary's path.
func Build(t testing.TB) string {
	t.Helper()
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "flockmq")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/node")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/node: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// moduleRoot is the directory of go.mod, from `go env GOMOD` or else from
// this file's path.
func moduleRoot(t testing.TB) string {
	t.Helper()
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod)
		}
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the module root")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Process is a running flockmq.
type Process struct {
	Cmd     *exec.Cmd
	Addr    string     // the MQTT listen address (set by Start)
	Log     *LogBuffer // everything the process printed
	Done    chan struct{}
	Err     error // the result of Wait, once Done is closed
	Started time.Time
}

// LogBuffer is a bytes.Buffer safe for os/exec's copying goroutine and the
// test reading it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Exec starts bin with args and returns without waiting for anything. The
// process is killed at cleanup, and its output logged if the test failed.
func Exec(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Log: &LogBuffer{}, Done: make(chan struct{}), Started: time.Now()}
	if !slices.Contains(args, "-admin-listen") {
		// Many nodes run at once: the admin endpoint takes a free port
		// (AdminAddr) rather than the default :8080.
		args = append(args, "-admin-listen", "127.0.0.1:0")
	}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout = p.Log
	p.Cmd.Stderr = p.Log
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.Err = p.Cmd.Wait(); close(p.Done) }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.Done
		if t.Failed() {
			t.Logf("flockmq (pid %d) log:\n%s", p.Cmd.Process.Pid, p.Log.String())
		}
	})
	return p
}

// Start starts bin with -listen on a free loopback port followed by args,
// and waits until it serves MQTT there. The port is found by binding port 0
// and closing it, so another process may take it first: then the child
// exits and is started again, up to three times. A start that hangs gets
// SIGQUIT, so that the log shows every goroutine.
func Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	for attempt := 1; attempt <= 3; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p := Exec(t, bin, append([]string{"-listen", addr}, args...)...)
		p.Addr = addr
		if p.WaitServing(20 * time.Second) {
			return p
		}
		_ = p.Cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.Done:
		case <-time.After(5 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.Done
		}
		t.Logf("attempt %d: flockmq on %s did not start: %v\n%s", attempt, addr, p.Err, p.Log.String())
	}
	t.Fatal("flockmq did not start in three attempts")
	return nil
}

// AdminAddr returns the address the admin endpoint logged it serves on,
// waiting for the line up to timeout; "" if it did not come.
func (p *Process) AdminAddr(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		log := p.Log.String()
		if i := strings.Index(log, `msg="admin endpoint serving" listen=`); i >= 0 {
			rest := log[i+len(`msg="admin endpoint serving" listen=`):]
			if j := strings.IndexAny(rest, " \n"); j >= 0 {
				return rest[:j]
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
		select {
		case <-p.Done:
			return ""
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitServing polls until the process has logged that it serves MQTT on
// its address and answers a CONNECT there (the log line rules out another
// process on the port), or until it exits or the timeout passes.
func (p *Process) WaitServing(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.Done:
			return false
		default:
		}
		log := p.Log.String()
		if strings.Contains(log, `"flockmq serving MQTT"`) && strings.Contains(log, "listen="+p.Addr) && probeMQTT(p.Addr) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// probeMQTT reports whether addr answers a 3.1.1 CONNECT: with success, or
// with a refusal of authentication.
func probeMQTT(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte("probe")})); err != nil {
		return false
	}
	var ack [4]byte
	_, err = io.ReadFull(c, ack[:])
	// Accepted, or refused by authentication (4 bad user name or password,
	// 5 not authorized): either way the broker answers.
	return err == nil && ack[0] == 0x20 && ack[1] == 2 && ack[2] == 0 && (ack[3] == 0 || ack[3] == 4 || ack[3] == 5)
}

// ExitStatus waits for the process to end and returns its exit status (-1
// for death by a signal).
func (p *Process) ExitStatus(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.Done:
	case <-time.After(timeout):
		t.Fatalf("flockmq did not exit within %v\n%s", timeout, p.Log.String())
	}
	var ee *exec.ExitError
	if errors.As(p.Err, &ee) {
		return ee.ExitCode()
	}
	if p.Err != nil {
		t.Fatalf("flockmq: %v", p.Err)
	}
	return 0
}

// Kill9 ends the process with SIGKILL: no shutdown code runs.
func (p *Process) Kill9(t testing.TB) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Done
}
