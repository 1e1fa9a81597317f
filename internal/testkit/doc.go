// Package testkit is test support for the end-to-end tests of several
// packages: starting a server a test built and stopping it at cleanup,
// polling for a condition with a deadline, and reading one sample from a
// Prometheus /metrics endpoint the way an operator would. The server never
// imports it, and it starts nothing of its own.
package testkit
