package codec_test

import (
	"testing"

	"github.com/flockmq/flockmq/codec"
)

// FuzzValidateTopicFilter compares ValidateTopicFilter with the literal
// reference validFilter, and ParseShared with the filter it split.
func FuzzValidateTopicFilter(f *testing.F) {
	for _, s := range []string{"#", "+", "a/b", "a/#/b", "a+", "#a", "$share/g/a", "$share//a", "$share/g",
		"$share/g/", "$share/g+/x", "/", "a//b", "$SYS/#", "ü/+/€"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := codec.ValidateTopicFilter([]byte(s))
		if got, want := err == nil, validFilter(s); got != want {
			t.Fatalf("ValidateTopicFilter(%q) = %v, reference says valid=%t", s, err, want)
		}
		if err != nil {
			if c := codec.Code(err); c != codec.TopicFilterInvalid && c != codec.MalformedPacket {
				t.Fatalf("ValidateTopicFilter(%q): code %v", s, c)
			}
			return
		}
		group, filter, shared, perr := codec.ParseShared([]byte(s))
		if perr != nil {
			t.Fatalf("ParseShared(%q) fails on a valid filter: %v", s, perr)
		}
		rebuilt := string(filter)
		if shared {
			rebuilt = codec.SharePrefix + string(group) + "/" + rebuilt
		}
		if rebuilt != s {
			t.Fatalf("ParseShared(%q) split into %q and %q", s, group, filter)
		}
	})
}
