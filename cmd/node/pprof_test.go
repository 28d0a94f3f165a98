package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestPprofEndpoint: the profiler answers a heap profile and its index, and
// is gone once stopped.
func TestPprofEndpoint(t *testing.T) {
	var logs bytes.Buffer
	addr, stop, err := servePprof("127.0.0.1:0", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	for path, want := range map[string]string{
		"/debug/pprof/":                  "heap",
		"/debug/pprof/heap?debug=1":      "HeapAlloc",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
	} {
		code, body, err := get(path)
		if err != nil || code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: status %d, err %v, %q not in the first bytes %.200q", path, code, err, want, body)
		}
	}
	if !strings.Contains(logs.String(), "listen="+addr) {
		t.Errorf("the log does not name the address %s: %s", addr, logs.String())
	}
	stop()
	if _, _, err := get("/debug/pprof/"); err == nil {
		t.Error("the profiler still answers after stop")
	}
}

// TestPprofBadAddress: a malformed address is a configuration error (status
// 2), a busy one a failure to start (status 1), each with a sentence.
func TestPprofBadAddress(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-pprof-listen", "localhost", "-store", "memory"}, envOf(), &stderr); code != 2 {
		t.Fatalf("pprof-listen without a port: status %d, want 2\n%s", code, stderr.String())
	}
	if want := `pprof listen address "localhost"`; !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr does not say %q: %s", want, stderr.String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stderr.Reset()
	if code := run([]string{"-pprof-listen", ln.Addr().String(), "-listen", "127.0.0.1:0", "-store", "memory", "-sys-interval", "0"}, envOf(), &stderr); code != 1 {
		t.Fatalf("pprof-listen on a busy port: status %d, want 1\n%s", code, stderr.String())
	}
	if want := "flockmq: pprof listen on " + ln.Addr().String(); !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr does not say %q: %s", want, stderr.String())
	}
}
