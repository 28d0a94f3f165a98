// Package fsm is the raft state machine: session registry, persistent
// subscriptions and retained messages. Nothing is in it yet.
package fsm
