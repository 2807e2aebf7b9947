#!/usr/bin/env bash
# Installs the Debian packages the tests use, once; a no-op when they are
# present. The mirror is whatever this machine's apt is configured with.
set -euo pipefail
pkgs=(genisoimage dosfstools mtools containerd runc containernetworking-plugins iptables nftables "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
for attempt in 1 2 3; do
  if $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/kubeboot-apt.log 2>&1; then
    exit 0
  fi
  # A fresh machine may have no package lists yet.
  $SUDO apt-get update >/dev/null 2>&1 || true
  sleep $attempt
done
cat /tmp/kubeboot-apt.log >&2
exit 1
