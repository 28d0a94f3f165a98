package auth

import (
	"fmt"
	"os"
	"strings"
)

// access is what a rule grants: a set of accessRead and accessWrite, or
// nothing for a deny rule.
type access uint8

const (
	accessRead  access = 1 << iota // receive messages, subscribe
	accessWrite                    // publish
)

// aclRule is one "topic" line, its filter split at '/'.
type aclRule struct {
	levels []string
	access access // 0: deny
}

// aclSection is the rules of the anonymous section or of one user.
type aclSection struct {
	deny, grant []aclRule
}

// aclPattern is one "pattern" line.
type aclPattern struct {
	filter     string   // as written, with %c and %u
	levels     []string // split filter, when it has neither %c nor %u
	access     access   // 0: deny
	hasC, hasU bool
}

// ACL is a parsed Mosquitto acl_file. Lines are
//
//	user <username>                                  start the rules of a user
//	topic [read|write|readwrite|deny] <filter>       a rule of the current section
//	pattern [read|write|readwrite|deny] <filter>     a rule of every client
//
// with blank lines and '#' comment lines skipped. The access word defaults
// to readwrite; as in Mosquitto a line with a single word after the keyword
// takes that word as the filter ("topic read" grants readwrite on the topic
// "read"), and the filter is the rest of the line, spaces included. topic
// lines before the first user line are the anonymous section: they apply to
// clients that connected without a username. Several sections for the same
// user are merged. pattern lines apply to every client wherever they
// appear, with %c replaced by the client id and %u by the username (a
// pattern with %u never applies to an anonymous client).
//
// A client may publish to topic T (CanPublish) if one of its rules with
// write access matches T, and receive a message on T (CanRead) if one with
// read access does; a deny rule matching T refuses both, whatever other
// lines say. It may subscribe to filter F (CanSubscribe) if one of its rules
// with read access covers F (matches every topic F matches: "a/#" covers
// "a/b/+", "a/+" does not cover "a/#") and no deny rule matches any topic F
// matches. A broker checks CanRead again on each delivery and each retained
// message. A topic starting with '$' (such as $SYS/...) is matched only by
// rules whose filter starts with the same literal level, never by a leading
// wildcard, so anonymous clients get $SYS only where a rule names it.
// Anything not granted is denied.
//
// A client id or username containing '+', '#' or '/' gets nothing from
// pattern lines (substituting it could widen the filter into other clients'
// topics: client id "a/#" in "pattern write dev/%c/#"), while pattern deny
// lines still apply to it, with the substituted filter read as written so
// that wildcards in the id widen the denial; a deny pattern that does not
// form a valid filter after substitution denies everything to that client.
//
// Differences from mosquitto 2.0 (checked against 2.0.11): Mosquitto checks
// the user's (or anonymous) topic lines before the pattern lines, so there a
// pattern deny does not override a user's topic grant, here it does;
// Mosquitto refuses patterns only for ids with '+' or '#' ('/' is allowed
// since 2.0); Mosquitto 2.0 does not check subscriptions against the
// acl_file at all (only deliveries); and Mosquitto splits words at spaces
// only, this parser at spaces and tabs.
//
// An ACL is immutable and safe for concurrent use. A nil *ACL denies
// everything.
type ACL struct {
	name     string
	anon     aclSection
	users    map[string]*aclSection
	patDeny  []aclPattern
	patGrant []aclPattern
}

// LoadACLFile reads and parses the acl_file at path. Syntax errors are
// *ParseError values naming path and the line.
func LoadACLFile(path string) (*ACL, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: acl file: %w", err)
	}
	return ParseACL(path, data)
}

// ParseACL parses the contents of an acl_file; name is used in error
// messages only. See ACL for the format.
func ParseACL(name string, data []byte) (*ACL, error) {
	a := &ACL{name: name, users: make(map[string]*aclSection)}
	sec := &a.anon
	for i, raw := range splitLines(data) {
		lineNo := i + 1
		line := strings.Trim(raw, blanks)
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.IndexByte(line, 0) >= 0 {
			return nil, parseErrorf(name, lineNo, "NUL byte in line")
		}
		kw, rest := cutBlank(line)
		switch kw {
		case "user":
			if rest == "" {
				return nil, parseErrorf(name, lineNo, "user: missing username")
			}
			s := a.users[rest]
			if s == nil {
				s = &aclSection{}
				a.users[rest] = s
			}
			sec = s
		case "topic", "pattern":
			if rest == "" {
				return nil, parseErrorf(name, lineNo, "%s: empty topic filter", kw)
			}
			acc := accessRead | accessWrite
			word, filter := cutBlank(rest)
			if filter == "" {
				filter = word // a single word is the filter, as in Mosquitto
			} else {
				switch word {
				case "read":
					acc = accessRead
				case "write":
					acc = accessWrite
				case "readwrite":
				case "deny":
					acc = 0
				default:
					return nil, parseErrorf(name, lineNo, "%s: unknown access %s (want read, write, readwrite or deny)", kw, quote(word))
				}
			}
			if msg := filterProblem(filter); msg != "" {
				return nil, parseErrorf(name, lineNo, "%s: %s: %s", kw, msg, quote(filter))
			}
			if kw == "topic" {
				r := aclRule{levels: strings.Split(filter, "/"), access: acc}
				if acc == 0 {
					sec.deny = append(sec.deny, r)
				} else {
					sec.grant = append(sec.grant, r)
				}
				continue
			}
			p := aclPattern{filter: filter, access: acc,
				hasC: strings.Contains(filter, "%c"), hasU: strings.Contains(filter, "%u")}
			if !p.hasC && !p.hasU {
				p.levels = strings.Split(filter, "/")
			}
			if acc == 0 {
				a.patDeny = append(a.patDeny, p)
			} else {
				a.patGrant = append(a.patGrant, p)
			}
		default:
			return nil, parseErrorf(name, lineNo, "unknown keyword %s (want user, topic or pattern)", quote(kw))
		}
	}
	return a, nil
}

// CanPublish reports whether the client may publish to topic. anonymous
// means the client connected without a username; username is then ignored.
// An invalid topic name (empty, or with a wildcard) is refused. Safe for
// concurrent use.
func (a *ACL) CanPublish(clientID, username string, anonymous bool, topic string) bool {
	if !validTopicName(topic) {
		return false
	}
	return a.allowed(clientID, username, anonymous, strings.Split(topic, "/"), accessWrite)
}

// CanRead reports whether the client may receive a message published to
// topic: check it on each delivery and each retained message. Arguments as
// for CanPublish. Safe for concurrent use.
func (a *ACL) CanRead(clientID, username string, anonymous bool, topic string) bool {
	if !validTopicName(topic) {
		return false
	}
	return a.allowed(clientID, username, anonymous, strings.Split(topic, "/"), accessRead)
}

// CanSubscribe reports whether the client may subscribe to filter: a read
// rule covers it and no deny rule matches any topic it matches. A shared
// subscription "$share/<group>/<filter>" is checked as its <filter>. An
// invalid filter is refused. Arguments as for CanPublish. Safe for
// concurrent use.
func (a *ACL) CanSubscribe(clientID, username string, anonymous bool, filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		group, f, found := strings.Cut(rest, "/")
		if !found || group == "" || strings.ContainsAny(group, "+#") { // [MQTT-4.8.2-1] [MQTT-4.8.2-2]
			return false
		}
		filter = f
	}
	if filterProblem(filter) != "" {
		return false
	}
	return a.allowed(clientID, username, anonymous, strings.Split(filter, "/"), accessRead)
}

// allowed applies the rules to the valid filter f (a topic name for
// publish and read checks): denied if a deny rule intersects f, else
// allowed if a rule with want access covers f.
func (a *ACL) allowed(clientID, username string, anonymous bool, f []string, want access) bool {
	if a == nil {
		return false
	}
	sec := &a.anon
	if !anonymous {
		sec = a.users[username] // nil for a user without a section
	}
	if sec != nil {
		for _, r := range sec.deny {
			if intersects(r.levels, f) {
				return false
			}
		}
	}
	for i := range a.patDeny {
		p := &a.patDeny[i]
		if p.hasU && anonymous {
			continue
		}
		levels, ok := p.expand(clientID, username)
		if !ok || intersects(levels, f) {
			return false // an unusable deny pattern denies everything
		}
	}
	if sec != nil {
		for _, r := range sec.grant {
			if r.access&want != 0 && covers(r.levels, f) {
				return true
			}
		}
	}
	if unsafeSubstitution(clientID) || (!anonymous && unsafeSubstitution(username)) {
		return false
	}
	for i := range a.patGrant {
		p := &a.patGrant[i]
		if p.access&want == 0 || (p.hasU && anonymous) {
			continue
		}
		if levels, ok := p.expand(clientID, username); ok && covers(levels, f) {
			return true
		}
	}
	return false
}

// unsafeSubstitution reports whether s, put into a pattern, could change
// its levels or add wildcards.
func unsafeSubstitution(s string) bool { return strings.ContainsAny(s, "+#/") }

// expand returns the pattern's filter with %c and %u replaced, split at
// '/', and false if the result is not a valid filter. Like Mosquitto it
// scans left to right, so "%%c" is '%' then the client id.
func (p *aclPattern) expand(clientID, username string) ([]string, bool) {
	if p.levels != nil {
		return p.levels, true
	}
	var b strings.Builder
	s := p.filter
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+1 < len(s) {
			switch s[i+1] {
			case 'c':
				b.WriteString(clientID)
				i++
				continue
			case 'u':
				b.WriteString(username)
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	f := b.String()
	if filterProblem(f) != "" {
		return nil, false
	}
	return strings.Split(f, "/"), true
}
