package bench

import (
	"errors"
	"strconv"
)

// ErrTemplate is returned for a topic template with an unknown % directive.
var ErrTemplate = errors.New("bench: bad topic template")

// ExpandTemplate expands a topic or client-id template:
//
//	%i  the client index (0-based, over all clients of the run)
//	%p  the publisher index (or subscriber index, for subscriber filters)
//	%%  a literal percent sign
func ExpandTemplate(tmpl string, client, pub int) (string, error) {
	out := make([]byte, 0, len(tmpl)+8)
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+1 == len(tmpl) {
			return "", ErrTemplate
		}
		i++
		switch tmpl[i] {
		case 'i':
			out = strconv.AppendInt(out, int64(client), 10)
		case 'p':
			out = strconv.AppendInt(out, int64(pub), 10)
		case '%':
			out = append(out, '%')
		default:
			return "", ErrTemplate
		}
	}
	return string(out), nil
}
