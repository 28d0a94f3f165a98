// Package eventloop is where client connections live: the gnet engine serves
// MQTT over plain TCP, one broker.Loop per gnet event loop, and turns gnet's
// callbacks into the broker's loop contract (Input, Flush, Closed, Tick, and
// the mailbox drains it runs with Execute). It caps connections below the
// open-file limit and recovers panics raised on a loop.
package eventloop
