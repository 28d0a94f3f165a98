package auth

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Paths of the Mosquitto tools the tests compare against (Debian's
// mosquitto package). Tests that need them fail, not skip, without them.
const (
	mosquittoPasswd = "/usr/bin/mosquitto_passwd"
	mosquittoBroker = "/usr/sbin/mosquitto"
	mosquittoPub    = "/usr/bin/mosquitto_pub"
)

// TestMain fails the run if goroutines started by the tests are still alive
// after them.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var leaked []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked = leakedGoroutines()
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "goroutine leak: %d still alive\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines other than the main one
// and the runtime's signal handler (which the fuzzing engine starts).
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "auth.TestMain") || strings.Contains(g, "os/signal.") {
			continue
		}
		out = append(out, g)
	}
	return out
}

// waitFor polls cond until it is true, failing the test with what after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// needTool fails the test if the Mosquitto tool at path is not installed.
func needTool(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is required (Debian package mosquitto / mosquitto-clients): %v", path, err)
	}
}

// runPasswd runs mosquitto_passwd with args.
func runPasswd(t *testing.T, args ...string) {
	t.Helper()
	needTool(t, mosquittoPasswd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, mosquittoPasswd, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_passwd %q: %v\n%s", args, err, out)
	}
}

// mosquitto is a running broker started by startMosquitto.
type mosquitto struct {
	port int
	log  string
}

// startMosquitto runs the real broker with the given configuration lines
// on a free loopback port until the test ends. The port is picked by
// binding port 0 and closing it; if another process takes it first the
// broker fails to bind and exits, and another port is tried, so a broker
// that says it is running owns its port.
func startMosquitto(t *testing.T, conf ...string) *mosquitto {
	t.Helper()
	needTool(t, mosquittoBroker)
	dir := t.TempDir()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()

		logPath := filepath.Join(dir, fmt.Sprintf("mosquitto-%d.log", attempt))
		confPath := filepath.Join(dir, fmt.Sprintf("mosquitto-%d.conf", attempt))
		lines := append([]string{
			fmt.Sprintf("listener %d 127.0.0.1", port),
			"user " + u.Username, // as root, do not drop to a user that cannot read t.TempDir()
			"log_dest file " + logPath,
			"log_type all",
			"persistence false",
		}, conf...)
		if err := os.WriteFile(confPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(mosquittoBroker, "-c", confPath) // no stdio: no copying goroutines
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			select {
			case <-exited:
			default:
				cmd.Process.Kill()
				<-exited
			}
		}
		t.Cleanup(stop)

		running := false
		waitFor(t, 10*time.Second, "mosquitto to start or exit", func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			b, _ := os.ReadFile(logPath)
			running = strings.Contains(string(b), " running")
			return running
		})
		if running {
			return &mosquitto{port: port, log: logPath}
		}
		stop()
		b, _ := os.ReadFile(logPath)
		t.Logf("mosquitto on port %d exited (attempt %d):\n%s", port, attempt, b)
	}
	t.Fatal("mosquitto did not start")
	return nil
}

// connect runs mosquitto_pub against the broker with the credentials and
// reports whether the broker accepted them.
func (m *mosquitto) connect(t *testing.T, username, password string) bool {
	t.Helper()
	needTool(t, mosquittoPub)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mosquittoPub, "-h", "127.0.0.1", "-p", strconv.Itoa(m.port),
		"-u", username, "-P", password, "-t", "flockmq/auth-test", "-m", "x", "-q", "1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mosquitto_pub timed out: %s", out)
	}
	if err != nil {
		if !strings.Contains(string(out), "not authorised") && !strings.Contains(string(out), "refused") {
			log, _ := os.ReadFile(m.log)
			t.Fatalf("mosquitto_pub -u %s: %v: %s\nbroker log:\n%s", username, err, out, log)
		}
		return false
	}
	return true
}
