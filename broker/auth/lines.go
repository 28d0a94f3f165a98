package auth

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// blanks are the characters trimmed around fields, as C's isspace.
const blanks = " \t\r\n\v\f"

// splitLines splits data at '\n'. A final newline does not start an empty
// last line; a trailing '\r' stays in the line (callers trim it).
func splitLines(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	s := string(data)
	s = strings.TrimSuffix(s, "\n")
	return strings.Split(s, "\n")
}

// cutBlank splits s at its first run of blanks: the word before and the rest
// after, with the rest's leading blanks removed.
func cutBlank(s string) (word, rest string) {
	i := strings.IndexAny(s, blanks)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], blanks)
}

// quote returns s quoted for an error message, shortened past 64 bytes so a
// megabyte-long line does not become a megabyte-long error.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
