package auth

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// checkParseError fails the fuzz case unless err is a *ParseError for name
// at one of data's lines.
func checkParseError(t *testing.T, err error, name string, data []byte) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *ParseError", err)
	}
	if pe.File != name || pe.Line < 1 || pe.Line > len(splitLines(data)) {
		t.Fatalf("error at %s:%d, file has %d lines", pe.File, pe.Line, len(splitLines(data)))
	}
}

// FuzzPasswordFile parses arbitrary password files: no panic, errors are
// ParseErrors at a real line, CRLF line ends change nothing, and a line
// appended with a HashPassword-style hash checks with its password (and
// overrides an earlier line for the same user).
func FuzzPasswordFile(f *testing.F) {
	known, err := hashPBKDF2("fuzz-pw", []byte("0123456789ab"), DefaultIterations)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("# comment\nalice:" + known + "\n"))
	f.Add([]byte("alice:$7$101$w+60/hRgw9bX2Hlf$LOvVWEiJfWywJVi3pXwO6GXmkvCU4gGXeWFFvdDLCbzEqpZnkkS3W94T1nAH/mGgVELYzJwAKLofv3JOYu+E6g==\r\n" +
		"bob:$6$qwdCtRD4Nyd8TxKo$I53ili8sRfJeO5dNYTRobhC1sqsePmtb73b/ehHauYYLUb9xLqLCEjEm5w6A/H3W/T1MPS6bNHA4FS8xBdyoAA=="))
	f.Add([]byte("alice\n"))
	f.Add([]byte("a:$7$0$$\n"))
	f.Add([]byte("a:$6$AAAAAAAAAAAAAAAA$x\n"))
	f.Add([]byte(" : \n\n#\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.passwd"
		p, err := ParsePasswordFile(name, data)
		crlf := bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
		p2, err2 := ParsePasswordFile(name, crlf)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("CRLF changes acceptance: %v / %v", err, err2)
		}
		if err != nil {
			checkParseError(t, err, name, data)
			return
		}
		users := p.Users()
		if strings.Join(users, "\x00") != strings.Join(p2.Users(), "\x00") {
			t.Fatalf("CRLF changes the users: %q / %q", users, p2.Users())
		}
		for _, u := range users {
			if !p.Has(u) {
				t.Fatalf("Users lists %q, Has says no", u)
			}
		}
		user := "fuzz-user"
		if len(users) > 0 {
			user = users[0] // the appended line must override it
		}
		more := append(append(bytes.Clone(data), '\n'), user+":"+known+"\n"...)
		q, err := ParsePasswordFile(name, more)
		if err != nil {
			t.Fatalf("appending a good line broke the file: %v", err)
		}
		if !q.Check([]byte(user), []byte("fuzz-pw")) || q.Check([]byte(user), []byte("fuzz-pW")) {
			t.Fatalf("appended user %q does not check", user)
		}
		for _, u := range users {
			if !q.Has(u) {
				t.Fatalf("appending lost %q", u)
			}
		}
	})
}

// FuzzACLFile parses arbitrary acl_files and asks them arbitrary
// questions: no panic; errors are ParseErrors at a real line; CRLF line
// ends change nothing; subscribing to a topic name is decided as reading
// it; a global "pattern readwrite #" only adds permissions, and none to a
// client whose id or username could inject into a pattern; a global
// "pattern deny #" refuses every topic not starting with '$'.
func FuzzACLFile(f *testing.F) {
	f.Add([]byte(testACL), "dev1", "alice", false, "alice/x")
	f.Add([]byte(testACL), "a/#", "", true, "devices/a/b")
	f.Add([]byte(testACL), "+", "bob", false, "$SYS/broker/load")
	f.Add([]byte("topic read\nuser\n"), "c", "u", false, "read")
	f.Add([]byte("pattern deny %c/x\npattern %u/%c\n"), "x#y", "u", false, "u/x#y")
	f.Add([]byte("topic a/#/b\n"), "c", "", true, "a")
	f.Fuzz(func(t *testing.T, data []byte, id, user string, anon bool, topic string) {
		const name = "fuzz.acl"
		a, err := ParseACL(name, data)
		crlf := bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
		a2, err2 := ParseACL(name, crlf)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("CRLF changes acceptance: %v / %v", err, err2)
		}
		if err != nil {
			checkParseError(t, err, name, data)
			return
		}
		type decision struct{ pub, read, sub, subRaw bool }
		ask := func(a *ACL) decision {
			return decision{
				pub:    a.CanPublish(id, user, anon, topic),
				read:   a.CanRead(id, user, anon, topic),
				sub:    a.CanSubscribe(id, user, anon, topic),
				subRaw: a.CanSubscribe(id, user, anon, "$share/g/"+topic),
			}
		}
		d := ask(a)
		if d != ask(a2) {
			t.Fatalf("CRLF changes decisions: %+v / %+v", d, ask(a2))
		}
		if validTopicName(topic) && !strings.HasPrefix(topic, "$share/") && d.sub != d.read {
			t.Fatalf("topic %q: CanSubscribe %v, CanRead %v", topic, d.sub, d.read)
		}
		if d.subRaw != d.sub && !strings.HasPrefix(topic, "$share/") {
			t.Fatalf("$share/g/%q decided %v, %q %v", topic, d.subRaw, topic, d.sub)
		}

		grantAll, err := ParseACL(name, append([]byte("pattern readwrite #\n"), data...))
		if err != nil {
			t.Fatalf("prepending a good line broke the file: %v", err)
		}
		g := ask(grantAll)
		unsafe := unsafeSubstitution(id) || (!anon && unsafeSubstitution(user))
		if unsafe && g != d {
			t.Fatalf("id %q user %q: a pattern changed decisions %+v -> %+v", id, user, d, g)
		}
		if (d.pub && !g.pub) || (d.read && !g.read) || (d.sub && !g.sub) {
			t.Fatalf("a grant removed permissions: %+v -> %+v", d, g)
		}

		denyAll, err := ParseACL(name, append([]byte("pattern deny #\n"), data...))
		if err != nil {
			t.Fatalf("prepending a good line broke the file: %v", err)
		}
		n := ask(denyAll)
		if strings.HasPrefix(topic, "$") {
			if n.pub != d.pub || n.read != d.read {
				t.Fatalf("deny # changed a $ topic: %+v -> %+v", d, n)
			}
		} else if n.pub || n.read || n.sub {
			t.Fatalf("deny # left a permission: %+v", n)
		}
	})
}
