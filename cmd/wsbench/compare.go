package main

import (
	"context"
	"fmt"
	"io"
)

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wsbench compare: not yet")
	return exitUsage
}
