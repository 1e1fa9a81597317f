// Command wsedge is the WebSocket edge server.
package main

import (
	"flag"
	"fmt"
	"os"
)

var version = "dev"

func main() {
	fs := flag.NewFlagSet("wsedge", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	fmt.Println("wsedge", version)
	if *showVersion {
		return
	}
	fs.PrintDefaults()
}
