// Package peers holds the comparison servers that wsbench measures side by
// side with wsedge. Each is a main package in its own folder, and all speak
// the subset of the wsedge contract that the idle, echo and fanout
// scenarios use:
//
//   - -addr: GET /echo echoes every text or binary message unchanged;
//     GET /ws?user=ID registers a user (its messages are read and dropped).
//   - -admin: GET /metrics (process and Go collectors plus the gauge
//     wsedge_connections) and POST /v1/broadcast, whose JSON body reaches
//     every /ws connection as {"type":"message","data":<body>}, answered
//     with 200 {"delivered":N}.
//
// The peers live in their own module so that wsedge's go.mod does not
// depend on their libraries.
package peers
