// Package qemufull is the full tier of the QEMU first-boot tests: the
// golden image that `make image` builds (mkosi.conf) boots under QEMU with
// systemd as PID 1 and cgroup v2, kubeboot.service turns it into a
// control-plane node from userdata on fw_cfg, and the join secret reaches
// the host through a virtio-serial port and an HTTP PUT. A second boot of
// the same disk must do nothing (the stamp) and bring the control plane
// back. Run it with `make qemu-full`; see README.md.
package qemufull
