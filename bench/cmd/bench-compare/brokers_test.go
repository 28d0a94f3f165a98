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
// os.Args[1], crashes (exit 2) when a client sends "X", and exits 0 on SIGTERM.
func TestMain(m *testing.M) {
	if os.Getenv("BENCH_COMPARE_FAKE") == "1" {
		os.Exit(fakeBroker(os.Args[1]))
	}
	os.Exit(m.Run())
}

func fakeBroker(addr string) int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
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
		Argv: func(port int, _ string) ([]string, error) { return []string{os.Args[0], loopback(port)}, nil }}
}

func TestBrokerRestartAfterCrash(t *testing.T) {
	dir := t.TempDir()
	b, err := startBroker(context.Background(), fakeSpec(), "", dir, filepath.Join(dir, "fake"))
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
	if err := b.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
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
	spec := brokerSpec{Name: "bad", Argv: func(int, string) ([]string, error) {
		return []string{"sh", "-c", "echo bind failed >&2; exit 1"}, nil
	}}
	_, err := startBroker(context.Background(), spec, "", dir, filepath.Join(dir, "bad"))
	if err == nil || !strings.Contains(err.Error(), "bind failed") {
		t.Fatalf("err = %v", err)
	}
}
