// Package bench is the FlockMQ load tool: scenarios, histograms and reports.
// Nothing is in it yet.
package bench
