package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testACL exercises every kind of line; see TestACLSemantics.
const testACL = `# anonymous section: clients without a username
topic read public/#
topic readwrite anon/+/chat
topic deny public/secret/#
topic read $SYS/broker/clients/#

user alice
topic readwrite alice/#
topic read shared/#
topic deny alice/private
topic readwrite blocked/#

user bob
topic read #
topic deny shared/bob-hidden/#

user sysop
topic read $SYS/#

# a second section for alice is merged with the first
user alice
topic write merged/alice

# patterns apply to every client, wherever they appear
pattern readwrite devices/%c/#
pattern read users/%u/inbox/#
pattern write users/%u/outbox
pattern deny devices/%c/locked
pattern deny blocked/%u
`

type aclOp int

const (
	opPub aclOp = iota
	opSub
	opRead
)

func (o aclOp) String() string { return [...]string{"publish", "subscribe", "read"}[o] }

// aclCase is one question to an ACL: may client (id, user, anon) do op on
// topic (a filter for opSub)?
type aclCase struct {
	name   string
	op     aclOp
	id     string
	user   string
	anon   bool
	topic  string
	want   bool
	reason string
}

func (c aclCase) ask(a *ACL) bool {
	switch c.op {
	case opPub:
		return a.CanPublish(c.id, c.user, c.anon, c.topic)
	case opSub:
		return a.CanSubscribe(c.id, c.user, c.anon, c.topic)
	}
	return a.CanRead(c.id, c.user, c.anon, c.topic)
}

// TestACLSemantics is the table of ACL decisions: user sections, the
// anonymous section, %c and %u patterns, deny overriding grants (also a
// pattern deny over a user's topic grant), $SYS, subscription coverage,
// shared subscriptions and client ids or usernames that try to inject
// wildcards or levels into a pattern.
func TestACLSemantics(t *testing.T) {
	a, err := ParseACL("test.acl", []byte(testACL))
	if err != nil {
		t.Fatal(err)
	}
	const anon, named = true, false
	cases := []aclCase{
		// Anonymous section.
		{"anon reads public", opRead, "c1", "", anon, "public/news", true, "topic read public/#"},
		{"anon cannot publish public", opPub, "c1", "", anon, "public/news", false, "read only"},
		{"anon subscribes under public", opSub, "c1", "", anon, "public/news/+", true, "covered, no deny intersects"},
		{"anon public/# meets the deny", opSub, "c1", "", anon, "public/#", false, "deny public/secret/# intersects"},
		{"anon deny beats grant", opRead, "c1", "", anon, "public/secret/key", false, "topic deny public/secret/#"},
		{"anon chat", opPub, "c1", "", anon, "anon/room1/chat", true, "anon/+/chat"},
		{"anon chat one level only", opPub, "c1", "", anon, "anon/a/b/chat", false, "'+' is one level"},
		{"anon subscribe #", opSub, "c1", "", anon, "#", false, "nothing covers #"},
		{"anon flag wins over username", opPub, "c1", "alice", anon, "alice/x", false, "anonymous: alice's section does not apply"},
		{"anon no %u patterns", opRead, "c1", "", anon, "users//inbox/1", false, "%u patterns skip anonymous clients"},

		// $SYS.
		{"anon $SYS not granted", opRead, "c1", "", anon, "$SYS/broker/load", false, "no rule names it"},
		{"anon $SYS named", opRead, "c1", "", anon, "$SYS/broker/clients/connected", true, "topic read $SYS/broker/clients/#"},
		{"anon $SYS/# not covered", opSub, "c1", "", anon, "$SYS/#", false, "only part of $SYS granted"},
		{"bob # does not reach $SYS", opRead, "c1", "bob", named, "$SYS/broker/load", false, "leading # skips $ topics"},
		{"sysop reads $SYS", opRead, "c1", "sysop", named, "$SYS/broker/load", true, "topic read $SYS/#"},
		{"sysop subscribes $SYS/#", opSub, "c1", "sysop", named, "$SYS/#", true, "covered"},
		{"sysop # not covered", opSub, "c1", "sysop", named, "#", false, "$SYS/# does not cover #"},

		// User sections.
		{"alice own tree", opPub, "c1", "alice", named, "alice/x/y", true, "alice/#"},
		{"alice parent of #", opPub, "c1", "alice", named, "alice", true, "# matches its parent"},
		{"alice deny", opPub, "c1", "alice", named, "alice/private", false, "topic deny alice/private"},
		{"alice deny read too", opRead, "c1", "alice", named, "alice/private", false, "deny refuses reads"},
		{"alice sub meets deny", opSub, "c1", "alice", named, "alice/#", false, "deny alice/private intersects"},
		{"alice sub beside deny", opSub, "c1", "alice", named, "alice/+/x", true, "no intersection with alice/private"},
		{"alice sub + meets deny", opSub, "c1", "alice", named, "alice/+", false, "alice/+ matches alice/private"},
		{"alice shared read", opRead, "c1", "alice", named, "shared/doc", true, "topic read shared/#"},
		{"alice shared no write", opPub, "c1", "alice", named, "shared/doc", false, "read only"},
		{"alice merged section", opPub, "c1", "alice", named, "merged/alice", true, "second user alice section"},
		{"alice not anon section", opRead, "c1", "alice", named, "public/news", false, "anonymous rules are not hers"},
		{"alice shared sub", opSub, "c1", "alice", named, "$share/g1/alice/+/x", true, "checked as alice/+/x"},
		{"alice shared sub deny", opSub, "c1", "alice", named, "$share/g1/alice/#", false, "checked as alice/#"},
		{"bad shared sub", opSub, "c1", "alice", named, "$share//alice/x", false, "empty share name"},
		{"bad shared sub 2", opSub, "c1", "alice", named, "$share/g1", false, "no filter"},
		{"bob reads all", opRead, "c1", "bob", named, "x/y", true, "topic read #"},
		{"bob cannot write", opPub, "c1", "bob", named, "x/y", false, "read only"},
		{"bob sub # meets deny", opSub, "c1", "bob", named, "#", false, "deny shared/bob-hidden/# intersects"},
		{"bob sub +/+ meets deny parent", opSub, "c1", "bob", named, "+/+", false, "+/+ matches shared/bob-hidden"},
		{"bob sub x/#", opSub, "c1", "bob", named, "x/#", true, "covered by #"},
		{"unknown user no anon rules", opRead, "c1", "mallory", named, "public/news", false, "no section"},

		// Patterns.
		{"pattern %c", opPub, "dev1", "", anon, "devices/dev1/temp", true, "devices/%c/#"},
		{"pattern %c other id", opPub, "dev1", "", anon, "devices/dev2/temp", false, "not its id"},
		{"pattern %c for users too", opPub, "dev1", "mallory", named, "devices/dev1/temp", true, "patterns apply to everyone"},
		{"pattern deny %c", opPub, "dev1", "", anon, "devices/dev1/locked", false, "pattern deny devices/%c/locked"},
		{"pattern sub meets deny", opSub, "dev1", "", anon, "devices/dev1/#", false, "deny intersects"},
		{"pattern sub beside deny", opSub, "dev1", "", anon, "devices/dev1/+/x", true, "no intersection"},
		{"pattern %u read", opRead, "c1", "alice", named, "users/alice/inbox/1", true, "users/%u/inbox/#"},
		{"pattern %u read only", opPub, "c1", "alice", named, "users/alice/inbox/1", false, "read pattern"},
		{"pattern %u write", opPub, "c1", "alice", named, "users/alice/outbox", true, "users/%u/outbox"},
		{"pattern %u other user", opPub, "c1", "alice", named, "users/bob/outbox", false, "not her name"},
		{"pattern deny beats user grant", opPub, "c1", "alice", named, "blocked/alice", false, "pattern deny blocked/%u over topic readwrite blocked/#"},
		{"user grant beside pattern deny", opPub, "c1", "alice", named, "blocked/other", true, "topic readwrite blocked/#"},

		// Injection through the client id or username.
		{"id with # gets no pattern", opPub, "a/#", "", anon, "devices/a/b/c", false, "id a/# would make devices/a/#/#"},
		{"id # gets no pattern", opPub, "#", "", anon, "devices/x/y", false, "id # would make devices/#/#"},
		{"id + gets no pattern", opPub, "+", "", anon, "devices/x/y", false, "id + would make devices/+/#"},
		{"id with / gets no pattern", opPub, "x/y", "", anon, "devices/x/y/z", false, "'/' refused as well"},
		{"id with + inside level", opRead, "a+b", "", anon, "public/news", false, "deny devices/a+b/locked is not a filter: fail closed"},
		{"username + gets no pattern", opRead, "c1", "+", named, "users/x/inbox/1", false, "username + would make users/+/inbox/#"},
		{"username # no pattern", opPub, "c1", "#", named, "users/x/outbox", false, "username #"},
		{"username / no pattern", opPub, "c1", "bob/x", named, "users/bob/x/outbox", false, "username bob/x"},
		{"bad id keeps user grants", opPub, "+", "alice", named, "alice/x", true, "deny devices/+/locked is valid and misses alice/x"},
		{"bad id # fails closed", opPub, "a/#", "alice", named, "alice/x", false, "deny devices/a/#/locked is not a filter"},
		{"bad id slash keeps user grants", opPub, "x/y", "alice", named, "alice/x", true, "deny devices/x/y/locked is a valid filter"},
		{"bad id deny widened", opPub, "+", "alice", named, "blocked/zzz", true, "deny blocked/%u uses the username only"},
		{"bad id fails closed", opPub, "x#y", "alice", named, "alice/x", false, "deny devices/x#y/locked is not a filter"},
		{"wildcard id widens deny", opPub, "+", "bob", named, "devices/q/locked", false, "not granted anyway"},

		// Invalid input.
		{"publish empty topic", opPub, "c1", "alice", named, "", false, "invalid topic"},
		{"publish wildcard topic", opPub, "c1", "alice", named, "alice/+", false, "invalid topic"},
		{"read wildcard topic", opRead, "c1", "alice", named, "alice/#", false, "invalid topic"},
		{"subscribe bad filter", opSub, "c1", "alice", named, "alice/#/x", false, "invalid filter"},
	}
	for _, c := range cases {
		if got := c.ask(a); got != c.want {
			t.Errorf("%s: %s(id=%q user=%q anon=%v, %q) = %v, want %v (%s)", c.name, c.op, c.id, c.user, c.anon, c.topic, got, c.want, c.reason)
		}
	}
}

// TestACLReadSubscribeAgree checks that subscribing to a topic name (a
// filter without wildcards) is decided as reading it.
func TestACLReadSubscribeAgree(t *testing.T) {
	a, err := ParseACL("test.acl", []byte(testACL))
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"public/news", "public/secret/k", "alice/x", "alice/private", "$SYS/broker/load", "devices/d/x", "users/alice/inbox/1", "x"} {
		for _, who := range []struct {
			id, user string
			anon     bool
		}{{"d", "", true}, {"d", "alice", false}, {"d", "bob", false}, {"d/x", "sysop", false}} {
			r := a.CanRead(who.id, who.user, who.anon, topic)
			s := a.CanSubscribe(who.id, who.user, who.anon, topic)
			if r != s {
				t.Errorf("%+v %q: CanRead %v, CanSubscribe %v", who, topic, r, s)
			}
		}
	}
}

// TestACLNoFileLinesDenyAll checks that an empty ACL and a nil ACL deny
// everything.
func TestACLNoFileLinesDenyAll(t *testing.T) {
	empty, err := ParseACL("empty", []byte("# nothing\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	var nilACL *ACL
	for _, a := range []*ACL{empty, nilACL} {
		if a.CanPublish("c", "", true, "x") || a.CanRead("c", "u", false, "x") || a.CanSubscribe("c", "u", false, "x") {
			t.Errorf("%v grants", a)
		}
	}
}

// TestParseACLSyntax covers the accepted forms: tabs and repeated blanks,
// CRLF, indented comments, filters with spaces, the default access, and a
// lone word taken as the filter (as in Mosquitto).
func TestParseACLSyntax(t *testing.T) {
	file := "  # indented comment\r\n" +
		"topic\tread \t my topic/x  \r\n" +
		"topic read\r\n" + // the filter "read", readwrite
		"topic  a/b\n" + // default readwrite
		"user   carol smith  \n" +
		"topic write c/#\n" +
		"pattern %c/%%c\n"
	a, err := ParseACL("syntax", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		got  bool
		what string
	}{
		{a.CanRead("c", "", true, "my topic/x"), "filter with a space"},
		{!a.CanPublish("c", "", true, "my topic/x"), "read access on the spaced filter"},
		{a.CanPublish("c", "", true, "read"), "lone word is the filter, readwrite"},
		{a.CanPublish("c", "", true, "a/b") && a.CanRead("c", "", true, "a/b"), "default readwrite"},
		{a.CanPublish("c", "carol smith", false, "c/d"), "username with a space, trimmed"},
		{a.CanPublish("id", "", true, "id/%id"), "%%c scans left to right"},
	}
	for _, c := range checks {
		if !c.got {
			t.Errorf("%s: wrong decision", c.what)
		}
	}
}

// TestParseACLErrors checks that each malformed line is refused with a
// *ParseError naming the file, the line and the bad token.
func TestParseACLErrors(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"empty filter", "topic", "topic: empty topic filter"},
		{"empty pattern", "pattern   ", "pattern: empty topic filter"},
		{"unknown access", "topic rw a/b", `topic: unknown access "rw" (want read, write, readwrite or deny)`},
		{"access case", "topic READ a/b", `unknown access "READ"`},
		{"hash not last", "topic read a/#/b", `'#' is not the last level: "a/#/b"`},
		{"hash in level", "topic read a/b#", `'+' or '#' does not fill its whole level: "a/b#"`},
		{"plus in level", "pattern write a+/%c", `pattern: '+' or '#' does not fill its whole level: "a+/%c"`},
		{"not utf8", "topic read a/\xff", "not valid UTF-8"},
		{"missing user", "user", "user: missing username"},
		{"missing user blanks", "user \t ", "user: missing username"},
		{"unknown keyword", "usr alice", `unknown keyword "usr" (want user, topic or pattern)`},
		{"inline comment", "topic read a/b # note", `does not fill its whole level: "a/b # note"`},
		{"NUL", "topic read a\x00", "NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := "# header\ntopic read ok/#\n\n" + tt.line + "\ntopic read more\n"
			_, err := ParseACL("/etc/mosquitto/acl", []byte(data))
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if pe.File != "/etc/mosquitto/acl" || pe.Line != 4 {
				t.Errorf("error at %s:%d, want /etc/mosquitto/acl:4", pe.File, pe.Line)
			}
			if !strings.HasPrefix(err.Error(), "auth: /etc/mosquitto/acl:4: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestLoadACLFile checks loading from disk and that errors name the path.
func TestLoadACLFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "acl")
	os.WriteFile(good, []byte(testACL), 0o600)
	a, err := LoadACLFile(good)
	if err != nil || !a.CanPublish("c", "alice", false, "alice/x") {
		t.Fatalf("LoadACLFile: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("user a\ntopic nope a b\n"), 0o600)
	if _, err := LoadACLFile(bad); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s:2: ", bad)) {
		t.Errorf("bad file: %v", err)
	}
	if _, err := LoadACLFile(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
