// Package codec implements MQTT 3.1, 3.1.1 and 5.0 packet decoding, encoding and
// validation. It performs no I/O, starts no goroutines and does not log.
//
// Decoding is in place: Decode fills a caller-owned Packet whose topic, payload,
// strings and properties are views into the input slice. They are valid only as
// long as the input is; Clone makes an owned copy of what must outlive it. A
// Packet reused across calls keeps its slices' capacity, so steady-state decoding
// does not allocate.
//
// Encoding appends to a caller's buffer (AppendPublish(dst, p, v) []byte) after
// computing sizes first, so encoding into a buffer with room does not allocate.
//
// Every normative check cites its conformance id ([MQTT-x.y.z-n], MQTT 5.0 unless
// marked 3.1.1). Errors are *Error values carrying the MQTT reason code to answer
// with; ReasonCode itself implements error, so errors.Is(err, MalformedPacket)
// works. Nothing in this package panics on input.
package codec
