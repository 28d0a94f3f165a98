// Package eventloop is where client connections live: the gnet engine serves
// MQTT over plain TCP, one broker.Loop per gnet event loop, and turns gnet's
// callbacks into the broker's loop contract (Input, Flush, Closed, Tick, and
// the mailbox drains it runs with Execute). It caps connections below the
// open-file limit and recovers panics raised on a loop. An incoming packet
// that has not arrived whole waits in a buffer of its own connection's, of
// exactly its length, within a budget shared by all connections
// (partial.go); a connection the broker closes with last words for the
// client closes gracefully, so that a client still sending is not reset
// before it has read them (linger.go).
package eventloop
