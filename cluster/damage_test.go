package cluster

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRaftDamagedLogPages: a raft.db whose meta pages are intact but whose
// other pages are garbage gives an error naming the file. bbolt asserts on
// such pages with a panic, which used to end the process.
func TestRaftDamagedLogPages(t *testing.T) {
	dir := t.TempDir()
	r := openTestRaft(t, "n1", dir, true, &sumFSM{})
	if _, err := r.WaitLeader(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for v := uint64(1); v <= 20; v++ {
		if err := r.Apply(cmd(v), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	path := filepath.Join(dir, "raft.db")
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("garbage!"), 8*4096/8), 2*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = OpenRaft(RaftConfig{NodeID: "n1", Dir: dir, Bind: "127.0.0.1:0", Bootstrap: true, Fast: true, Logger: quiet}, &sumFSM{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("want an error saying %s is damaged, got %v", path, err)
	}
	t.Log(err)
}
