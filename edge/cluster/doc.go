// Package cluster is the NATS bus that joins wsedge nodes into one cluster
// (docs/cluster.md): a Bus per node, built by edge/app from a Config that
// cmd/wsedge fills from the -nats and -cluster-* flags.
//
// It owns the subjects (<prefix>.user.<u>, .room.<r>, .all, .node), the
// wire format of the ops a node sends (wire.go) and the check of every
// message received before anything acts on it (validate.go), the per-user
// and per-room subscriptions with the idle grace of room subscriptions,
// the bounded dispatcher queues that keep a subject's messages in order,
// the requests awaiting other nodes' answers, heartbeats and the node
// list, authentication and TLS towards NATS, and the wsedge_bus_* and
// wsedge_cluster_nodes series on the server's registry.
//
// It never touches a client's connection, the registries or the client
// protocol: what other nodes ask of this one goes through Local, which the
// application implements, and what the application asks of other nodes is
// the Bus's exported methods. It never retries a delivery (NATS core, at
// most once), and no request waits for other nodes longer than Config.Timeout.
//
// Goroutines: nats.go's own, one router, Config.Dispatchers dispatchers and
// one heartbeat, whatever the number of users and rooms.
package cluster
