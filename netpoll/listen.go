package netpoll

// ListenConfig holds the listener's socket options.
type ListenConfig struct {
	Backlog int // listen backlog; 0 means SOMAXCONN
	// ReusePort sets SO_REUSEPORT, so that a second process can bind the
	// same address while this one drains (a restart on one host), and
	// attaches a classic BPF program to the port's reuseport group that
	// sends every new connection to the newest of two listeners. Without
	// it, Linux hashes new connections over both, and the ones queued on
	// the old listener when it closes are reset (unless the sysctl
	// net.ipv4.tcp_migrate_req is 1; docs/operations.md has the
	// measurement). With it, the old listener stops getting connections as
	// soon as the new one binds, so its accept queue is empty when it
	// closes.
	ReusePort bool
}
