// Package broker holds MQTT session semantics, independent of the
// transport: CONNECT, authentication and takeover decisions; the QoS 1/2
// state machines, inflight windows and session queues; flow control and the
// slow-consumer policy; wills, retained delivery, keepalive; $SYS topics.
// A Loop owns the sessions and connections of one event loop; the Broker
// holds the client id registry and the subscription trie shared by the
// loops, and a Store (memory, or raft in package cluster) persists what must
// survive a restart.
package broker
