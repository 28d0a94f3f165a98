package auth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSetPasswordAcceptedByMosquitto writes a password file with
// SetPassword (on top of one written by mosquitto_passwd, $6$ and $7$
// lines) and has the real broker, with allow_anonymous false, accept the
// right passwords and refuse wrong ones.
func TestSetPasswordAcceptedByMosquitto(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	runPasswd(t, "-b", "-c", path, "tool7", "from-the-tool")
	runPasswd(t, "-H", "sha512", "-b", path, "tool6", "sha512-user")
	if err := SetPassword(path, "flock", "fl0ck pass"); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "tool6", "replaced"); err != nil { // $6$ line becomes $7$
		t.Fatal(err)
	}
	if err := SetPassword(path, "gone", "x"); err != nil {
		t.Fatal(err)
	}
	if err := DeletePassword(path, "gone"); err != nil {
		t.Fatal(err)
	}

	m := startMosquitto(t, "allow_anonymous false", "password_file "+path)
	for _, c := range []struct {
		user, pass string
		ok         bool
	}{
		{"flock", "fl0ck pass", true},
		{"flock", "fl0ck Pass", false},
		{"flock", "", false},
		{"tool7", "from-the-tool", true},
		{"tool6", "replaced", true},
		{"tool6", "sha512-user", false},
		{"gone", "x", false},
	} {
		if got := m.connect(t, c.user, c.pass); got != c.ok {
			t.Errorf("mosquitto: %s with %q accepted = %v, want %v", c.user, c.pass, got, c.ok)
		}
	}

	// A file created by SetPassword alone.
	fresh := filepath.Join(t.TempDir(), "fresh")
	if err := SetPassword(fresh, "solo", "only-me"); err != nil {
		t.Fatal(err)
	}
	m2 := startMosquitto(t, "allow_anonymous false", "password_file "+fresh)
	if !m2.connect(t, "solo", "only-me") || m2.connect(t, "solo", "only-you") {
		t.Error("mosquitto: a file created by SetPassword is not honoured")
	}

	// And the edited file through this package.
	p, err := LoadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Check([]byte("flock"), []byte("fl0ck pass")) || !p.Check([]byte("tool6"), []byte("replaced")) || p.Has("gone") {
		t.Error("package disagrees with mosquitto")
	}
}

// TestSetPasswordKeepsOtherLines checks that an edit replaces only the
// user's line (in place, keeping CRLF), drops a duplicate, keeps comments
// and other users byte for byte, and leaves mode 0600.
func TestSetPasswordKeepsOtherLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	h1, _ := HashPassword("one")
	h2, _ := HashPassword("two")
	h3, _ := HashPassword("three")
	orig := "# users of site A\r\n" +
		"alice:" + h1 + "\r\n" +
		"\n" +
		"  # bob is next\n" +
		"bob:" + h2 + "\n" +
		"alice:" + h3 + "\n" +
		"# end" // no final newline
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "alice", "new"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	want := []string{"# users of site A\r", "alice:$7$101$", "", "  # bob is next", "bob:" + h2, "# end", ""}
	if len(lines) != len(want) {
		t.Fatalf("after SetPassword:\n%s", data)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) || (want[i] != "alice:$7$101$" && lines[i] != want[i]) {
			t.Errorf("line %d = %q, want %q", i+1, lines[i], want[i])
		}
	}
	if !strings.HasSuffix(lines[1], "\r") {
		t.Error("CRLF line end of the replaced line lost")
	}
	p, err := LoadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Check([]byte("alice"), []byte("new")) || !p.Check([]byte("bob"), []byte("two")) {
		t.Error("passwords after edit wrong")
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".passwd.tmp-*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// TestSetPasswordCreates checks that a missing file is created, 0600.
func TestSetPasswordCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new-passwd")
	if err := SetPassword(path, "u", "p"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "u:$7$101$") || strings.Count(string(data), "\n") != 1 {
		t.Fatalf("created file:\n%s", data)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestSetPasswordFollowsSymlink checks that the link's target is replaced
// and the link kept.
func TestSetPasswordFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	link := filepath.Join(dir, "link")
	if err := SetPassword(target, "a", "1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(link, "b", "2"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("link replaced: %v", err)
	}
	p, err := LoadPasswordFile(target)
	if err != nil || !p.Check([]byte("a"), []byte("1")) || !p.Check([]byte("b"), []byte("2")) {
		t.Fatalf("target: %v", err)
	}
}

// TestSetPasswordRefuses checks usernames that cannot be stored, and a
// broken file, which is left unchanged.
func TestSetPasswordRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	for _, u := range []string{"", "a:b", "a\nb", "#a", " a", "a\t", "a\x00", "\xff"} {
		if err := SetPassword(path, u, "p"); !errors.Is(err, ErrInvalidUsername) {
			t.Errorf("SetPassword(%q) = %v, want ErrInvalidUsername", u, err)
		}
	}
	if err := SetPassword(path, "u", "a\x00b"); err == nil {
		t.Error("password with NUL accepted")
	}
	broken := "ok:$7$101$w+60/hRgw9bX2Hlf$LOvVWEiJfWywJVi3pXwO6GXmkvCU4gGXeWFFvdDLCbzEqpZnkkS3W94T1nAH/mGgVELYzJwAKLofv3JOYu+E6g==\nbroken\n"
	os.WriteFile(path, []byte(broken), 0o600)
	err := SetPassword(path, "u", "p")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 {
		t.Errorf("SetPassword on a broken file = %v, want a ParseError at line 2", err)
	}
	if data, _ := os.ReadFile(path); string(data) != broken {
		t.Error("broken file modified")
	}
}

// TestDeletePassword checks deletion of every line of a user and the
// errors for an unknown user and a missing file.
func TestDeletePassword(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	h, _ := HashPassword("x")
	os.WriteFile(path, []byte("# c\na:"+h+"\nb:"+h+"\na:"+h+"\n"), 0o600)
	if err := DeletePassword(path, "a"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != "# c\nb:"+h+"\n" {
		t.Fatalf("after delete:\n%s", data)
	}
	if err := DeletePassword(path, "a"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("second delete = %v, want ErrUnknownUser", err)
	}
	if err := DeletePassword(filepath.Join(t.TempDir(), "none"), "a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("delete in missing file = %v, want ErrNotExist", err)
	}
}
