// Package routing matches topics to subscriptions. It is pure: no I/O, no
// goroutines, no logging.
package routing
