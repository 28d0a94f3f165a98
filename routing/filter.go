package routing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/flockmq/flockmq/codec"
)

// ErrInvalidFilter is returned (wrapping the codec error) for a filter that
// codec.ValidateTopicFilter rejects, or a malformed $queue/ filter.
var ErrInvalidFilter = errors.New("routing: invalid topic filter")

// QueuePrefix starts a compatibility shared subscription, $queue/{filter}: the
// same as $share/$queue/{filter} (the EMQX convention).
const QueuePrefix = "$queue/"

// QueueGroup is the share name of $queue/ subscriptions.
const QueueGroup = "$queue"

// parsedFilter is a subscription filter split into its share group, if any,
// and the topic filter the trie indexes. Both are substrings of the input.
type parsedFilter struct {
	group  string // share name; "" for a non-shared subscription
	topic  string // the topic filter (after $share/{group}/ or $queue/)
	shared bool
}

// parseFilter validates filter and splits off a $share/{group}/ or $queue/
// prefix [MQTT-4.8.2-1, MQTT-4.8.2-2].
func parseFilter(filter string) (parsedFilter, error) {
	if strings.HasPrefix(filter, QueuePrefix) {
		topic := filter[len(QueuePrefix):]
		if strings.HasPrefix(topic, codec.SharePrefix) || strings.HasPrefix(topic, QueuePrefix) {
			return parsedFilter{}, fmt.Errorf("%w %q: nested share prefix", ErrInvalidFilter, filter)
		}
		if err := codec.ValidateTopicFilter([]byte(topic)); err != nil {
			return parsedFilter{}, fmt.Errorf("%w %q: %w", ErrInvalidFilter, filter, err)
		}
		return parsedFilter{group: QueueGroup, topic: topic, shared: true}, nil
	}
	b := []byte(filter)
	if err := codec.ValidateTopicFilter(b); err != nil {
		return parsedFilter{}, fmt.Errorf("%w %q: %w", ErrInvalidFilter, filter, err)
	}
	group, _, shared, _ := codec.ParseShared(b) // validated above
	if !shared {
		return parsedFilter{topic: filter}, nil
	}
	// Re-slice the string rather than converting the byte views: no copies.
	g := filter[len(codec.SharePrefix) : len(codec.SharePrefix)+len(group)]
	topic := filter[len(codec.SharePrefix)+len(group)+1:]
	return parsedFilter{group: g, topic: topic, shared: true}, nil
}

// nextLevel splits the first level off a topic or filter: "a/b" gives "a",
// "b", true; "a" gives "a", "", false. Empty levels are real levels ("a//b",
// "/a", "a/"): "adjacent Topic Level Separators indicate a zero-length topic
// level" (section 4.7.1.1).
func nextLevel(s string) (tok, rest string, more bool) {
	return strings.Cut(s, "/")
}
