// Package broker holds MQTT session semantics, independent of the transport.
// Nothing is in it yet; it arrives with the single-node broker.
package broker
