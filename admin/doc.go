// Package admin serves the operator HTTP endpoint: health, metrics and the REST
// API. Nothing is in it yet.
package admin
