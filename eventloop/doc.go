// Package eventloop is where client connections live: the gnet engine for plain
// TCP and std-net loops for TLS and WebSocket. Nothing is in it yet.
package eventloop
