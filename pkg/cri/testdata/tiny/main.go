// Command tiny is the only binary in the test images. With no arguments it
// waits for a signal, as the pause container does; "say N CODE" writes N
// numbered lines to stderr and exits with CODE.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "say" {
		n, _ := strconv.Atoi(os.Args[2])
		code, _ := strconv.Atoi(os.Args[3])
		for i := 1; i <= n; i++ {
			fmt.Fprintf(os.Stderr, "line %d of %d\n", i, n)
		}
		os.Exit(code)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
}
