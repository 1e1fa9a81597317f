// Command wsedge is the WebSocket edge server binary. It owns the command
// line: flags with WSEDGE_<FLAG> environment fallbacks into edge.Config and
// app.Config, the open-file limit, logging, signals (SIGTERM/SIGINT drain
// the server) and exit codes (0 after a clean shutdown, 1 when the server
// cannot start, 2 for bad flags or configuration). It never holds
// connection logic: everything it runs lives in edge and edge/app.
package main
