package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunHelpStatus: usage asked for is a success (status 0); a command line
// the tool cannot use is status 2. Nothing is run.
func TestRunHelpStatus(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		want   string // in stderr
	}{
		{[]string{"-h"}, 0, "usage: flockmq-bench"},
		{[]string{"-help"}, 0, "usage: flockmq-bench"},
		{[]string{"--help"}, 0, "usage: flockmq-bench"},
		{[]string{"help"}, 0, "usage: flockmq-bench"},
		{[]string{"pairs", "-h"}, 0, "-host"},
		{[]string{"pairs", "--help"}, 0, "-host"},
		{[]string{"compare", "-h"}, 0, "-target"},
		{nil, 2, "usage: flockmq-bench"},
		{[]string{"pairs", "-no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"compare", "-no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"fanin", "--tls"}, 2, "--tls needs --cafile FILE to verify the broker's certificate, or --insecure"},
		{[]string{"compare", "--target", "a=127.0.0.1:1", "--", "conn", "--tls"}, 2, "--tls needs --cafile"},
	} {
		var stdout, stderr bytes.Buffer
		if got := run(tc.args, &stdout, &stderr); got != tc.status {
			t.Errorf("flockmq-bench %q: status %d, want %d; stderr:\n%s", tc.args, got, tc.status, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("flockmq-bench %q: stderr lacks %q:\n%s", tc.args, tc.want, stderr.String())
		}
	}
}
