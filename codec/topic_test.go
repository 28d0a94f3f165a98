package codec_test

import (
	"strings"
	"testing"

	"github.com/flockmq/flockmq/codec"
)

// validFilter is the reference the topic filter rules are checked against:
// the rules of sections 4.7.1 and 4.8.2 read literally, on strings.
func validFilter(f string) bool {
	if f == "" || len(f) > codec.MaxStringLength {
		return false
	}
	if rest, ok := strings.CutPrefix(f, codec.SharePrefix); ok {
		group, filter, found := strings.Cut(rest, "/")
		if !found || group == "" || strings.ContainsAny(group, "+#") || filter == "" {
			return false
		}
		f = filter
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

func TestValidateTopicFilter(t *testing.T) {
	valid := []string{"#", "+", "a", "/", "//", "a/b", "a/+", "+/+", "a/#", "+/#", "/#", "a//b",
		"$SYS/#", "$share/g/a", "$share/g/#", "$share/g/+/b", "$share/g//", "$share", "$sharex/a",
		"ü/€/𝄞", "$share/ü/𝄞", " "}
	invalid := map[string]*codec.Error{
		"":               codec.ErrTopicEmpty,
		"a/#/b":          codec.ErrFilterInvalid,
		"a+":             codec.ErrFilterInvalid,
		"+a":             codec.ErrFilterInvalid,
		"#a":             codec.ErrFilterInvalid,
		"a#":             codec.ErrFilterInvalid,
		"a/b#":           codec.ErrFilterInvalid,
		"##":             codec.ErrFilterInvalid,
		"#/":             codec.ErrFilterInvalid,
		"a/++":           codec.ErrFilterInvalid,
		"$share/":        codec.ErrShareNameInvalid,
		"$share//a":      codec.ErrShareNameInvalid,
		"$share/g":       codec.ErrShareNameInvalid,
		"$share/g+/a":    codec.ErrShareNameInvalid,
		"$share/#/a":     codec.ErrShareNameInvalid,
		"$share/g/":      codec.ErrTopicEmpty,
		"$share/g/a/#/b": codec.ErrFilterInvalid,
		"$share/g/a+":    codec.ErrFilterInvalid,
	}
	for _, f := range valid {
		if err := codec.ValidateTopicFilter([]byte(f)); err != nil {
			t.Errorf("%q: %v", f, err)
		}
		if !validFilter(f) {
			t.Errorf("reference rejects %q", f)
		}
	}
	for f, want := range invalid {
		err := codec.ValidateTopicFilter([]byte(f))
		if err != want {
			t.Errorf("%q: %v, want %v", f, err, want)
		}
		if validFilter(f) {
			t.Errorf("reference accepts %q", f)
		}
	}
}

func TestValidateTopicName(t *testing.T) {
	for _, n := range []string{"a", "/", "a/b", "$SYS/x", "ü/€", " ", "$share/g/a"} {
		if err := codec.ValidateTopicName([]byte(n)); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for n, want := range map[string]*codec.Error{
		"": codec.ErrTopicEmpty, "+": codec.ErrTopicWildcard, "#": codec.ErrTopicWildcard,
		"a/+/b": codec.ErrTopicWildcard, "a/b#": codec.ErrTopicWildcard,
	} {
		if err := codec.ValidateTopicName([]byte(n)); err != want {
			t.Errorf("%q: %v, want %v", n, err, want)
		}
	}
}

func TestParseShared(t *testing.T) {
	for _, c := range []struct {
		in, group, filter string
		shared            bool
	}{
		{"a/b", "", "a/b", false},
		{"$share/g/a/b", "g", "a/b", true},
		{"$share/group/#", "group", "#", true},
		{"$share/g//", "g", "/", true},
		{"$shared/g/a", "", "$shared/g/a", false},
	} {
		g, f, shared, err := codec.ParseShared([]byte(c.in))
		if err != nil || string(g) != c.group || string(f) != c.filter || shared != c.shared {
			t.Errorf("ParseShared(%q) = %q, %q, %t, %v", c.in, g, f, shared, err)
		}
	}
	if _, _, shared, err := codec.ParseShared([]byte("$share/g")); !shared || err != codec.ErrShareNameInvalid {
		t.Errorf("ParseShared($share/g): shared=%t err=%v", shared, err)
	}
}
