#!/bin/sh
# mkosi's FinalizeScript: runs on the build machine with the image tree in
# $BUILDROOT, after the packages and the extra trees are in. Enables what
# the image starts at boot; kubeboot enables the kubelet itself once it has
# written the kubelet's configuration (kubelet-start).
set -eu
[ "${1:-final}" = final ] || exit 0
root=${BUILDROOT:?}

systemctl --root="$root" enable \
	kubeboot.service kubeboot-status.service containerd.service \
	systemd-networkd.service systemd-networkd-wait-online.service systemd-resolved.service
# The kubelet is not enabled here: without kubeboot's drop-in it would run
# unconfigured and hold the ports that preflight checks.
systemctl --root="$root" disable kubelet.service 2>/dev/null || true

# The kubelet hands /etc/resolv.conf to pods and CoreDNS forwards to it:
# it must name the real upstream servers, not resolved's 127.0.0.53 stub
# (CoreDNS would detect a forwarding loop and stop).
ln -sfn ../run/systemd/resolve/resolv.conf "$root/etc/resolv.conf"
