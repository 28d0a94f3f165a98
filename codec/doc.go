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
// marked 3.1.1), or its section where the specification numbers no statement.
// Errors are *Error values carrying the MQTT reason code to answer with;
// ReasonCode itself implements error, so errors.Is(err, MalformedPacket) works.
// Nothing in this package panics on input.
//
// Topic filters in SUBSCRIBE and UNSUBSCRIBE are checked for structure only;
// ValidateTopicFilter checks each filter's syntax, for the broker to answer per
// filter. Rules that depend on the direction of a packet (a client's PUBLISH
// must carry no Subscription Identifier [MQTT-3.3.4-6]) or on session state
// (topic alias ranges, packet identifiers in use) are the caller's.
//
// The golden packets the tests share, written by hand from the specification,
// are in the codectest package for other packages' tests to reuse.
package codec
