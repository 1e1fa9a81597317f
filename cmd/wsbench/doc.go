// Command wsbench is the load generator that ships with wsedge: it measures
// how many connections a server holds, what each costs, and how fast
// messages and broadcasts get through. It owns the command line, the
// worker-process plumbing (-procs), thresholds and exit codes, and the
// side-by-side comparison with bench/peers; the scenarios themselves live in
// bench. It never imports the server it measures, except in tests. Run
// "wsbench -h" for the scenarios, flags, the -fail-on grammar and the exit
// codes.
package main
