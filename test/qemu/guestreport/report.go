// Package guestreport is what the QEMU fast tier's guest init sends back
// to the test on the host through a virtio-serial port: one JSON document.
package guestreport

// PortName is the virtio-serial port the report is written to.
const PortName = "kubeboot.report"

// Kernel command-line parameters the test passes to the guest init.
const (
	// ParamIgnore is kubeboot preflight's --ignore-preflight-errors list.
	ParamIgnore = "kubeboot.test.ignore"
	// ParamAddress is an address (CIDR) the guest puts on lo, so that
	// the pinned advertise address is local, as on a real machine.
	ParamAddress = "kubeboot.test.address"
	// ParamPorts are the virtio-serial port names to wait for before
	// kubeboot runs, comma-separated.
	ParamPorts = "kubeboot.test.ports"
)

// Report is what the guest saw.
type Report struct {
	Kernel string `json:"kernel"`
	// Uptime is the guest's /proc/uptime when the init started and when
	// it wrote the report, in seconds.
	UptimeStart float64 `json:"uptimeStart"`
	UptimeEnd   float64 `json:"uptimeEnd"`
	// InitModules is what the guest init loaded itself (virtio, isofs),
	// as pkg/host reported it.
	InitModules []string `json:"initModules"`
	// Modules are the names in /proc/modules after kubeboot ran.
	Modules []string `json:"modules"`
	// Sysctls are read from /proc/sys after kubeboot ran.
	Sysctls map[string]string `json:"sysctls"`
	// Steps are the kubeboot commands, in order.
	Steps []Step `json:"steps"`
	// Files are every file under the rendered trees: digest always,
	// contents only for files that hold no secret.
	Files map[string]File `json:"files"`
	// KernelLog is the kernel's message buffer, all levels.
	KernelLog string `json:"kernelLog"`
	// Errors are the guest init's own problems (kubeboot's are in Steps).
	Errors []string `json:"errors,omitempty"`
}

// Step is one kubeboot command.
type Step struct {
	Name string   `json:"name"`
	Args []string `json:"args"`
	// Exit is the exit status; -1 when it could not run.
	Exit int `json:"exit"`
	// Output is stdout and stderr, interleaved as on the console.
	Output string `json:"output"`
	// Seconds is the wall time of the command in the guest.
	Seconds float64 `json:"seconds"`
	// Skipped says why the step did not run.
	Skipped string `json:"skipped,omitempty"`
}

// File is one rendered file.
type File struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Mode   string `json:"mode"`
	Data   string `json:"data,omitempty"`
}
