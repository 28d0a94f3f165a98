package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPasswordFileFromMosquittoPasswd checks files written by the real
// mosquitto_passwd: the default $7$ (PBKDF2, 101 iterations), -H sha512
// ($6$) and -H sha512-pbkdf2, each user against its password, another
// user's password and an unknown user.
func TestPasswordFileFromMosquittoPasswd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	runPasswd(t, "-b", "-c", path, "alice", "s3cret")
	runPasswd(t, "-H", "sha512", "-b", path, "bob", "hunter2")
	runPasswd(t, "-H", "sha512-pbkdf2", "-b", path, "carol", "pässwörd with spaces")
	runPasswd(t, "-b", path, "dave", "")

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"alice:$7$101$", "bob:$6$", "carol:$7$101$", "dave:$7$101$"} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("mosquitto_passwd wrote no %q line:\n%s", want, data)
		}
	}
	p, err := LoadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{"alice": "s3cret", "bob": "hunter2", "carol": "pässwörd with spaces", "dave": ""}
	for user, pass := range creds {
		if !p.Has(user) {
			t.Errorf("Has(%q) = false", user)
		}
		if !p.Check([]byte(user), []byte(pass)) {
			t.Errorf("Check(%q, right password) = false", user)
		}
		for other, wrong := range creds {
			if other != user && p.Check([]byte(user), []byte(wrong)) {
				t.Errorf("Check(%q, %q's password) = true", user, other)
			}
		}
		if p.Check([]byte(user), []byte(pass+"x")) {
			t.Errorf("Check(%q, password+x) = true", user)
		}
	}
	if p.Has("eve") || p.Check([]byte("eve"), []byte("s3cret")) {
		t.Error("unknown user eve accepted")
	}
	if got := strings.Join(p.Users(), ","); got != "alice,bob,carol,dave" {
		t.Errorf("Users() = %s", got)
	}
}

// TestHashPassword checks HashPassword's format ($7$101$, 12-byte salt,
// 64-byte key, padded base64), that salts differ, and that the hash checks.
func TestHashPassword(t *testing.T) {
	h1, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("pw")
	if h1 == h2 {
		t.Fatal("two hashes of the same password are equal: salt not random")
	}
	f := strings.Split(h1, "$")
	if len(f) != 5 || f[1] != "7" || f[2] != "101" || len(f[3]) != 16 || len(f[4]) != 88 || !strings.HasSuffix(f[4], "==") {
		t.Fatalf("HashPassword = %q, want $7$101$<16 base64>$<88 base64>", h1)
	}
	p, err := ParsePasswordFile("mem", []byte("u:"+h1+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Check([]byte("u"), []byte("pw")) || p.Check([]byte("u"), []byte("pW")) {
		t.Fatal("hash does not check")
	}
}

// TestHashKnownVectors pins both schemes to values computed by
// mosquitto_passwd (salt and hash copied from its output), so that a
// change of either digest is caught without the tool.
func TestHashKnownVectors(t *testing.T) {
	file := "" +
		"alice:$7$101$w+60/hRgw9bX2Hlf$LOvVWEiJfWywJVi3pXwO6GXmkvCU4gGXeWFFvdDLCbzEqpZnkkS3W94T1nAH/mGgVELYzJwAKLofv3JOYu+E6g==\n" +
		"bob:$6$qwdCtRD4Nyd8TxKo$I53ili8sRfJeO5dNYTRobhC1sqsePmtb73b/ehHauYYLUb9xLqLCEjEm5w6A/H3W/T1MPS6bNHA4FS8xBdyoAA==\n"
	p, err := ParsePasswordFile("vectors", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Check([]byte("alice"), []byte("secret")) {
		t.Error("$7$ vector does not check")
	}
	if !p.Check([]byte("bob"), []byte("hunter2")) {
		t.Error("$6$ vector does not check")
	}
	if p.Check([]byte("alice"), []byte("hunter2")) || p.Check([]byte("bob"), []byte("secret")) {
		t.Error("vector checks with the wrong password")
	}
}

// TestParsePasswordFileSyntax covers comments, blanks, CRLF line ends,
// blanks around fields and duplicate users (the last line wins, as in
// mosquitto 2.0.11).
func TestParsePasswordFileSyntax(t *testing.T) {
	first, _ := HashPassword("first")
	second, _ := HashPassword("second")
	other, _ := HashPassword("other")
	file := "# comment\r\n\r\n   \n  # indented comment\n" +
		"carol:" + first + "\r\n" +
		"  dan \t:  " + other + "  \r\n" +
		"carol:" + second // no final newline
	p, err := ParsePasswordFile("dup", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if p.Check([]byte("carol"), []byte("first")) || !p.Check([]byte("carol"), []byte("second")) {
		t.Error("duplicate user: the last line does not win")
	}
	if !p.Check([]byte("dan"), []byte("other")) {
		t.Error("blanks around username and hash not ignored")
	}
	if got := strings.Join(p.Users(), ","); got != "carol,dan" {
		t.Errorf("Users() = %s", got)
	}
	empty, err := ParsePasswordFile("empty", nil)
	if err != nil || len(empty.Users()) != 0 {
		t.Errorf("empty file: %v, %v", empty.Users(), err)
	}
}

// TestParsePasswordFileErrors checks that each malformed line is refused
// with a *ParseError naming the file, the line and the problem.
func TestParsePasswordFileErrors(t *testing.T) {
	good, _ := HashPassword("pw")
	salt := "w+60/hRgw9bX2Hlf"
	sum := "I53ili8sRfJeO5dNYTRobhC1sqsePmtb73b/ehHauYYLUb9xLqLCEjEm5w6A/H3W/T1MPS6bNHA4FS8xBdyoAA=="
	tests := []struct {
		name, line, want string
	}{
		{"no colon", "alice", `missing ':' between username and hash in "alice"`},
		{"empty user", ":" + good, "empty username"},
		{"empty hash", "alice:", `user "alice": empty password hash`},
		{"plain text", "alice:secret", `"secret" does not start with '$'`},
		{"unknown type", "alice:$5$" + salt + "$" + sum, `unknown hash type "$5$"`},
		{"6 missing field", "alice:$6$" + salt, "want $6$<salt>$<hash>"},
		{"6 extra field", "alice:$6$" + salt + "$" + sum + "$x", "want $6$<salt>$<hash>"},
		{"7 missing field", "alice:$7$101$" + salt, "want $7$<iterations>$<salt>$<hash>"},
		{"7 zero iterations", "alice:$7$0$" + salt + "$" + sum, `iteration count "0"`},
		{"7 negative iterations", "alice:$7$-5$" + salt + "$" + sum, `iteration count "-5"`},
		{"7 plus iterations", "alice:$7$+5$" + salt + "$" + sum, `iteration count "+5"`},
		{"7 huge iterations", "alice:$7$99999999999$" + salt + "$" + sum, `iteration count "99999999999"`},
		{"bad salt base64", "alice:$6$!!!!$" + sum, `salt "!!!!" is not 12 bytes`},
		{"short salt", "alice:$6$AAAA$" + sum, `salt "AAAA" is not 12 bytes`},
		{"short hash", "alice:$6$" + salt + "$AAAA", `hash "AAAA" is not 64 bytes`},
		{"unpadded hash", "alice:$6$" + salt + "$" + strings.TrimRight(sum, "="), "is not 64 bytes"},
		{"NUL", "al\x00ice:" + good, "NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := "# header\nok:" + good + "\n" + tt.line + "\nlast:" + good + "\n"
			_, err := ParsePasswordFile("/etc/mosquitto/passwd", []byte(data))
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if pe.File != "/etc/mosquitto/passwd" || pe.Line != 3 {
				t.Errorf("error at %s:%d, want /etc/mosquitto/passwd:3", pe.File, pe.Line)
			}
			if !strings.HasPrefix(err.Error(), "auth: /etc/mosquitto/passwd:3: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestLoadPasswordFileErrors checks that a load error names the path.
func TestLoadPasswordFileErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	if _, err := LoadPasswordFile(path); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("\n\nalice\n"), 0o600)
	if _, err := LoadPasswordFile(bad); err == nil || !strings.Contains(err.Error(), bad+":3: ") {
		t.Errorf("bad file: %v", err)
	}
}

// TestNilPasswordFile checks that a nil *PasswordFile refuses everyone.
func TestNilPasswordFile(t *testing.T) {
	var p *PasswordFile
	if p.Check([]byte("a"), []byte("b")) || p.Has("a") || p.Users() != nil {
		t.Fatal("nil PasswordFile accepts")
	}
}
