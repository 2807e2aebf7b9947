// Command pause is the process of a pod's sandbox container
// (the pause image under the default imageRepository): it holds the pod's namespaces open, reaps the
// zombies it inherits when it is PID 1 of a pod that shares its process
// namespace, and exits 0 on SIGINT or SIGTERM. It does what upstream's
// pause.c does, in Go, so the image builds from this repository alone.
//
// Build it static: CGO_ENABLED=0 go build -trimpath -ldflags '-s -w'.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

// version is what -v prints; the image builder stamps the image tag in.
var version = "dev"

func main() {
	if len(os.Args) > 1 {
		if os.Args[1] == "-v" || os.Args[1] == "--version" {
			os.Stdout.WriteString("pause " + version + "\n")
			os.Exit(0)
		}
		os.Stderr.WriteString("usage: pause [-v]\n")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	// After Notify: a test that sees this line may signal at once.
	if os.Getpid() != 1 {
		os.Stderr.WriteString("Warning: pause should be the first process\n")
	}
	// A child may have exited before Notify took effect.
	reap()
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Stderr.WriteString("Shutting down, got signal: " + sig.String() + "\n")
		os.Exit(0)
	}
}

// reap collects every exited child. Signals coalesce, so one SIGCHLD may
// stand for several children.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
