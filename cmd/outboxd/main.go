// Command outboxd is the outboxd daemon and its command-line tools. This package
// only wires flags and the environment to the library packages.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal starts a graceful stop, a second one kills as usual.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(execute(ctx, osApp(), os.Args[1:]))
}
