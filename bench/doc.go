// Package bench is the load generator behind cmd/wsbench: scenarios,
// latency histograms and reports. It never imports edge.
package bench
