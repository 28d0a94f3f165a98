package auth

import (
	"strings"
	"unicode/utf8"
)

// Topic names and filters. Rules of the MQTT specification (section 4.7):
// '+' fills a whole level and matches exactly one level [MQTT-4.7.1-2]; '#'
// is the last level and matches its parent and every level below
// [MQTT-4.7.1-1]; a filter starting with '+' or '#' does not match a topic
// starting with '$' [MQTT-4.7.2-1].

// TopicMatch reports whether the topic filter matches the topic name. It is
// false when filter is not a valid filter or topic is not a valid topic name
// (empty, or containing '+' or '#').
func TopicMatch(filter, topic string) bool {
	if filterProblem(filter) != "" || !validTopicName(topic) {
		return false
	}
	return covers(strings.Split(filter, "/"), strings.Split(topic, "/"))
}

// FilterCovers reports whether every topic name that filter matches is also
// matched by rule: "a/#" covers "a/b/+" and "a", "a/+" covers "a/b" but not
// "a/#", "#" does not cover "$SYS/#". It is false when either is not a valid
// filter.
func FilterCovers(rule, filter string) bool {
	if filterProblem(rule) != "" || filterProblem(filter) != "" {
		return false
	}
	return covers(strings.Split(rule, "/"), strings.Split(filter, "/"))
}

// filterProblem returns why f is not a valid topic filter, or "".
func filterProblem(f string) string {
	switch {
	case f == "":
		return "empty topic filter" // [MQTT-4.7.3-1]
	case len(f) > 65535:
		return "topic filter longer than 65535 bytes" // [MQTT-4.7.3-3]
	case !utf8.ValidString(f):
		return "topic filter is not valid UTF-8" // [MQTT-1.5.4-1]
	case strings.IndexByte(f, 0) >= 0:
		return "topic filter contains U+0000" // [MQTT-1.5.4-2]
	}
	rest := f
	for {
		level, more, found := strings.Cut(rest, "/")
		if level != "#" && level != "+" && strings.ContainsAny(level, "+#") {
			return "'+' or '#' does not fill its whole level" // [MQTT-4.7.1-1] [MQTT-4.7.1-2]
		}
		if level == "#" && found {
			return "'#' is not the last level" // [MQTT-4.7.1-1]
		}
		if !found {
			return ""
		}
		rest = more
	}
}

// validTopicName reports whether t can be published to: not empty
// [MQTT-4.7.3-1] and without wildcards [MQTT-3.3.2-2].
func validTopicName(t string) bool {
	return t != "" && !strings.ContainsAny(t, "+#")
}

// isDollar reports whether a level starts with '$'.
func isDollar(level string) bool { return level != "" && level[0] == '$' }

// isWild reports whether a level is a wildcard.
func isWild(level string) bool { return level == "+" || level == "#" }

// covers reports whether every topic matched by filter f is matched by
// rule, both valid filters split at '/'. A topic name is a filter matching
// itself, so covers(rule, topic) is "rule matches topic".
func covers(rule, f []string) bool {
	if f[0] == "#" {
		// "#" has no parent level: it matches what "+/#" matches.
		f = plusHash
	}
	for i, r := range rule {
		if r == "#" {
			// Matches the rest, parent included, except that a leading
			// wildcard does not match '$' topics [MQTT-4.7.2-1]; a
			// wildcard first level of f matches no '$' topic.
			return i > 0 || !isDollar(f[0])
		}
		if i == len(f) {
			return false // f stops here, rule wants more levels
		}
		x := f[i]
		switch {
		case x == "#":
			return false // f reaches any depth, rule does not
		case r == "+":
			if i == 0 && isDollar(x) {
				return false // [MQTT-4.7.2-1]
			}
		case x == "+" || r != x:
			return false
		}
	}
	return len(f) == len(rule)
}

// plusHash is the filter "+/#" split; never modified.
var plusHash = []string{"+", "#"}

// intersects reports whether some topic is matched by both filters, valid
// and split at '/'. For a topic name b it is "a matches b".
func intersects(a, b []string) bool {
	// A leading wildcard matches no '$' topic [MQTT-4.7.2-1].
	if (isDollar(a[0]) && isWild(b[0])) || (isDollar(b[0]) && isWild(a[0])) {
		return false
	}
	for i := 0; ; i++ {
		switch {
		case i == len(a) && i == len(b):
			return true
		case i == len(a):
			return b[i] == "#" // '#' matches its parent
		case i == len(b):
			return a[i] == "#"
		}
		x, y := a[i], b[i]
		switch {
		case x == "#" || y == "#":
			return true
		case x == "+" || y == "+":
		case x != y:
			return false
		}
	}
}
