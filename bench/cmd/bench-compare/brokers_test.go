package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain doubles as a fake broker when BENCH_COMPARE_FAKE=1: it listens on
// os.Args[1] (and accepts on any further addresses given), crashes (exit 2) when a client sends "X", and exits 0 on SIGTERM.
// With BENCH_COMPARE_FAKE_CLUSTER=DIR it is a node of a fake cluster of
// three: it leaves a file in DIR, waits until all three have, and only then
// listens and logs FlockMQ's serving line.
func TestMain(m *testing.M) {
	if os.Getenv("BENCH_COMPARE_FAKE") == "1" {
		os.Exit(fakeBroker(os.Args[1], os.Args[2:]...))
	}
	os.Exit(m.Run())
}

func fakeBroker(addr string, more ...string) int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	if dir := os.Getenv("BENCH_COMPARE_FAKE_CLUSTER"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, strings.ReplaceAll(addr, ":", "_")), nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for {
			ents, _ := os.ReadDir(dir)
			if len(ents) >= 3 {
				break
			}
			time.Sleep(10 * time.Millisecond) // a fake peer's start, polled
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, a := range more { // further listeners (a TLS port), accepting only
		ml, err := net.Listen("tcp", a)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			for {
				c, err := ml.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	if os.Getenv("BENCH_COMPARE_FAKE_CLUSTER") != "" {
		fmt.Printf("time=now level=INFO msg=\"flockmq serving MQTT\" listen=%s version=fake\n", addr)
	}
	crash := make(chan struct{})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1)
			n, _ := c.Read(buf)
			c.Close()
			if n == 1 && buf[0] == 'X' {
				close(crash)
				return
			}
		}
	}()
	select {
	case <-sig:
		return 0
	case <-crash:
		fmt.Fprintln(os.Stderr, "panic: fake crash\n\ngoroutine 1 [running]:")
		return 2
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func fakeSpec() brokerSpec {
	return brokerSpec{Name: "fake", Env: []string{"BENCH_COMPARE_FAKE=1"},
		Argv: func(port int, _, _ string) ([]string, error) { return []string{os.Args[0], loopback(port)}, nil }}
}

func TestBrokerRestartAfterCrash(t *testing.T) {
	dir := t.TempDir()
	b, err := startBroker(context.Background(), fakeSpec(), dir, filepath.Join(dir, "fake"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(5 * time.Second)
	pid := b.PID()
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("X"))
	c.Close()
	waitFor(t, "the restart", func() bool { return b.PID() != pid })
	crashes := b.Crashes()
	if len(crashes) != 1 || !strings.Contains(crashes[0], "panic: fake crash") ||
		!strings.Contains(crashes[0], "exit status 2") {
		t.Fatalf("crashes = %q", crashes)
	}
	c, err = net.Dial("tcp", b.Addr()) // same port, new process
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := os.Stat(filepath.Join(dir, "fake.restart1.log")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.DataDir); err != nil {
		t.Fatalf("a restart must keep the data directory: %v", err)
	}
	if err := b.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(b.DataDir); !os.IsNotExist(err) {
		t.Fatalf("data directory left after Stop: %v", err)
	}
	if len(b.Crashes()) != 1 {
		t.Fatalf("Stop counted as a crash: %q", b.Crashes())
	}
	if err := b.Stop(5 * time.Second); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestBrokerExitsAtStart(t *testing.T) {
	dir := t.TempDir()
	var data string
	spec := brokerSpec{Name: "bad", Argv: func(_ int, _, d string) ([]string, error) {
		data = d
		return []string{"sh", "-c", "echo bind failed >&2; exit 1"}, nil
	}}
	_, err := startBroker(context.Background(), spec, dir, filepath.Join(dir, "bad"))
	if err == nil || !strings.Contains(err.Error(), "bind failed") {
		t.Fatalf("err = %v", err)
	}
	if data == "" || filepath.Dir(data) != dir {
		t.Fatalf("data directory %q, want one in %s", data, dir)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("data directory left after a failed start: %v", err)
	}
}

// TestSpecsRunDefaults: no broker is pinned or tuned; FlockMQ gets only the
// flags `make run` does not give (listen, data and raft addresses).
func TestSpecsRunDefaults(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, s := range specs("bin", "/usr/sbin/mosquitto") {
		if len(s.Env) != 0 {
			t.Errorf("%s: env %q", s.Name, s.Env)
		}
		argv, err := s.Argv(1883, dir, filepath.Join(dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(argv[0], "taskset") {
			t.Errorf("%s pinned: %q", s.Name, argv)
		}
		if s.Name != "flockmq" {
			continue
		}
		if len(argv) != 9 || argv[7] != "-admin-listen" || argv[8] != "127.0.0.1:0" || argv[0] != "bin/flockmq" || argv[1] != "-listen" || argv[2] != "127.0.0.1:1883" ||
			argv[3] != "-data-dir" || argv[4] != filepath.Join(dir, "data") ||
			argv[5] != "-raft-bind" || !strings.HasPrefix(argv[6], "127.0.0.1:") || argv[6] == "127.0.0.1:1883" {
			t.Errorf("flockmq argv = %q", argv)
		}
	}
}

func TestBrokerEnv(t *testing.T) {
	got := brokerEnv([]string{"PATH=/bin", "GOMAXPROCS=1", "GOGC=off", "GOMEMLIMIT=1GiB", "FLOCKMQ_LOOPS=1",
		"FLOCKMQ_STORE=memory", "HOME=/root"}, []string{"X=1"})
	if want := "PATH=/bin HOME=/root X=1"; strings.Join(got, " ") != want {
		t.Errorf("brokerEnv = %q, want %q", got, want)
	}
}
