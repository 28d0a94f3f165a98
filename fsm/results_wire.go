package fsm

import "encoding/binary"

// AppendResults encodes the results of one batch, for a leader answering a
// proposal forwarded by another node. Safe for concurrent use.
func AppendResults(dst []byte, res []Result) []byte {
	dst = append(dst, resultsVersion)
	dst = binary.AppendUvarint(dst, uint64(len(res)))
	for i := range res {
		dst = appendResult(dst, &res[i])
	}
	return dst
}

// DecodeResults decodes what AppendResults wrote. A damaged input gives an
// error wrapping ErrMalformed, never a panic. Safe for concurrent use.
func DecodeResults(b []byte) ([]Result, error) {
	r := &reader{b: b}
	if v := r.byte("results version"); r.err == nil && v != resultsVersion {
		r.fail(ErrMalformed, "unknown results version")
	}
	n := r.count("results", 2)
	var out []Result
	if r.err == nil && n > 0 {
		out = make([]Result, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			out = append(out, readResult(r))
		}
	}
	if r.err == nil && r.remaining() != 0 {
		r.fail(ErrMalformed, "bytes after the results")
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// resultsVersion is the first byte of an encoded result list.
const resultsVersion = 1
