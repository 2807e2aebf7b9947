// Command kubeboot turns a freshly booted machine into a Kubernetes node.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/userdata"
)

// Exit statuses, as kubeadm users expect them.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks bad command-line usage (exit status 2).
type usageError struct{ error }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := newRootCommand()
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || config.IsInvalid(errors.Unwrap(err)) || config.IsInvalid(err) || isConfigError(err) {
		return exitUsage
	}
	return exitFailure
}

// isConfigError: bad configuration or bad userdata is bad input (exit 2).
func isConfigError(err error) bool {
	var ce *config.Error
	var ue *userdata.Error
	return errors.As(err, &ce) || errors.As(err, &ue)
}
