// Package promtest reads one sample from a Prometheus /metrics endpoint, for
// end-to-end tests that assert what an operator would see. It is test
// support: the server never imports it, and it never starts anything.
package promtest
