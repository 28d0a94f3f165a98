// Package eventloop is where client connections live. The gnet engine
// (Server) serves MQTT over plain TCP, one broker.Loop per gnet event loop,
// and turns gnet's callbacks into the broker's loop contract (Input, Flush,
// Closed, Tick, and the mailbox drains it runs with Execute). It caps
// connections below the open-file limit and recovers panics raised on a
// loop. An incoming packet that has not arrived whole waits in a buffer of
// its own connection's, of exactly its length, within a budget shared by
// all connections (partial.go); a connection the broker closes with last
// words for the client closes gracefully, so that a client still sending is
// not reset before it has read them (linger.go). With ProxyProtocol, each
// connection starts with a PROXY protocol v1 or v2 header whose source
// address the broker sees (proxyproto.go).
//
// StdServer serves MQTT over TLS, WebSocket and WebSocket over TLS on Go's
// network stack, with loops of its own driving broker loops the same way:
// a reader goroutine per connection hands its bytes to the loop and reads
// no more until the broker took them (stdnet.go, ws.go); certificates come
// from files and reload without dropping connections (tlsconf.go).
package eventloop
