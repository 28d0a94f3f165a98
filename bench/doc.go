// Package bench is the FlockMQ load tool: MQTT load scenarios driven by gnet
// client event loops, with correctness checks (loss, duplicates, reordering)
// measured next to throughput and latency, and text, JSON and HTML reports.
//
// Threads: a Runner owns one gnet.Client whose event loops own every
// connection (no goroutine per connection). Long-lived goroutines per run: the
// gnet loops, one driver (publish ticks, keepalive, progress), and, while
// connecting, a bounded pool of dialers. Per-connection state is touched only
// on its loop; cross-goroutine figures are atomics or sit under loopState.mu.
// With --tls (MQTT over TLS, which gnet cannot carry) the std-net transport
// replaces gnet: stdLoop goroutines run the same per-client code, and each
// connection adds a reader and a writer goroutine (stdnet.go).
//
// See README.md in this directory for usage.
package bench
