package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestPasswordSourceReload checks that Reload picks up an edit, and that a
// broken file keeps the previous value and names the file and line.
func TestPasswordSourceReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	if err := SetPassword(path, "u", "old"); err != nil {
		t.Fatal(err)
	}
	src, err := NewPasswordSource(path)
	if err != nil {
		t.Fatal(err)
	}
	if src.Path() != path || !src.Current().Check([]byte("u"), []byte("old")) {
		t.Fatal("initial load")
	}
	if err := SetPassword(path, "u", "new"); err != nil {
		t.Fatal(err)
	}
	if !src.Current().Check([]byte("u"), []byte("old")) {
		t.Fatal("changed before Reload")
	}
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	if !src.Current().Check([]byte("u"), []byte("new")) || src.Current().Check([]byte("u"), []byte("old")) {
		t.Fatal("Reload did not pick up the edit")
	}
	data, _ := os.ReadFile(path)
	os.WriteFile(path, append(data, "\nbroken line\n"...), 0o600)
	err = src.Reload()
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != path || pe.Line != 3 {
		t.Fatalf("Reload of a broken file = %v, want a ParseError at %s:3", err, path)
	}
	if !src.Current().Check([]byte("u"), []byte("new")) {
		t.Fatal("a failed Reload replaced the current file")
	}
	os.Remove(path)
	if err := src.Reload(); !errors.Is(err, os.ErrNotExist) || src.Current() == nil {
		t.Fatalf("Reload of a missing file = %v", err)
	}
	if _, err := NewPasswordSource(path); err == nil {
		t.Fatal("NewPasswordSource of a missing file succeeded")
	}
}

// TestACLSourceReload checks ACL reloads, failing ones included, while
// other goroutines keep reading (run with -race).
func TestACLSourceReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acl")
	os.WriteFile(path, []byte("topic read a/#\n"), 0o600)
	src, err := NewACLSource(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := src.Current()
				// Both versions grant a/x; neither grants b/x to write.
				if !a.CanRead("c", "", true, "a/x") || a.CanPublish("c", "", true, "b/x") {
					t.Error("reader saw an unexpected ACL")
					return
				}
			}
		}()
	}
	for i := range 20 {
		content := "topic read a/#\ntopic read b/#\n"
		if i%2 == 1 {
			content = "topic read a/#\ntopic read b/#/bad\n"
		}
		os.WriteFile(path, []byte(content), 0o600)
		err := src.Reload()
		if i%2 == 1 {
			if err == nil || !strings.Contains(err.Error(), path+":2: ") {
				t.Errorf("Reload %d: %v", i, err)
			}
		} else if err != nil {
			t.Errorf("Reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if !src.Current().CanRead("c", "", true, "b/x") {
		t.Error("last good ACL not current")
	}
}

// TestReloadableNilLoad checks that a loader returning nothing is an
// error, not a nil current value.
func TestReloadableNilLoad(t *testing.T) {
	_, err := NewReloadable("x", func(string) (*ACL, error) { return nil, nil })
	if err == nil {
		t.Fatal("nil load accepted")
	}
}
