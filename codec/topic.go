package codec

import "bytes"

// SharePrefix starts a shared subscription filter: $share/{ShareName}/{filter}.
const SharePrefix = "$share/"

// ValidateTopicName checks a PUBLISH topic name (or a will topic): at least one
// byte [MQTT-4.7.3-1], at most 65535 [MQTT-4.7.3-3], no wildcard [MQTT-3.3.2-2].
// UTF-8 validity is checked when the packet is decoded. An empty topic with a
// topic alias is the broker's to allow; call this only for non-empty names.
func ValidateTopicName(topic []byte) error {
	if len(topic) == 0 {
		return ErrTopicEmpty
	}
	if len(topic) > MaxStringLength {
		return ErrStringTooLong
	}
	if bytes.ContainsAny(topic, "+#") {
		return ErrTopicWildcard
	}
	return nil
}

// ValidateTopicFilter checks a SUBSCRIBE or UNSUBSCRIBE topic filter, including
// the $share/{ShareName}/ prefix of a shared subscription.
func ValidateTopicFilter(filter []byte) error {
	if len(filter) == 0 {
		return ErrTopicEmpty // [MQTT-4.7.3-1]
	}
	if len(filter) > MaxStringLength {
		return ErrStringTooLong // [MQTT-4.7.3-3]
	}
	_, f, _, err := ParseShared(filter)
	if err != nil {
		return err
	}
	return ValidFilterLevels(f)
}

// ValidFilterLevels applies the wildcard rules to a filter without a share
// prefix: non-empty, '+' fills a whole level [MQTT-4.7.1-2]; '#' is alone
// in the last level [MQTT-4.7.1-1].
func ValidFilterLevels(f []byte) error {
	if len(f) == 0 {
		return ErrTopicEmpty
	}
	start := 0
	for i := 0; i <= len(f); i++ {
		if i < len(f) && f[i] != '/' {
			continue
		}
		level := f[start:i]
		if len(level) > 1 && bytes.ContainsAny(level, "+#") {
			return ErrFilterInvalid
		}
		if len(level) == 1 && level[0] == '#' && i != len(f) {
			return ErrFilterInvalid // [MQTT-4.7.1-1]: '#' must be the last character
		}
		start = i + 1
	}
	return nil
}

// ParseShared splits a shared subscription filter $share/{ShareName}/{filter}
// into its share name and filter. For any other filter it returns the filter
// unchanged and shared false. The share name is at least one byte and holds no
// '/', '+' or '#' [MQTT-4.8.2-1, MQTT-4.8.2-2]; the filter after it must be
// non-empty.
func ParseShared(filter []byte) (group, topicFilter []byte, shared bool, err error) {
	if len(filter) < len(SharePrefix) || string(filter[:len(SharePrefix)]) != SharePrefix {
		return nil, filter, false, nil
	}
	rest := filter[len(SharePrefix):]
	slash := bytes.IndexByte(rest, '/')
	if slash <= 0 {
		return nil, nil, true, ErrShareNameInvalid
	}
	group = rest[:slash]
	if bytes.ContainsAny(group, "+#") {
		return nil, nil, true, ErrShareNameInvalid
	}
	topicFilter = rest[slash+1:]
	if len(topicFilter) == 0 {
		return nil, nil, true, ErrTopicEmpty
	}
	return group, topicFilter, true, nil
}
