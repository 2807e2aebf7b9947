#!/usr/bin/env bash
# Prepares the QEMU fast tier, idempotently, with what it fetches cached
# outside the repository under ${KUBEBOOT_CACHE:-$HOME/.cache/kubeboot}/qemu:
#   - Debian packages: qemu-system-x86, genisoimage, kmod (depmod) and
#     xz-utils (the kernel's payload), installed only when missing;
#   - Debian's kernel (the package linux-image-amd64 depends on), fetched
#     with `apt-get download` and unpacked with `dpkg -x`, not installed;
#   - modules.dep and friends for it (the .deb ships none): depmod -b.
# Prints the unpacked kernel tree on the last line; qemu/kernel/current
# points at it. `setup.sh kernel` skips the package step.
set -euo pipefail
cache=${KUBEBOOT_CACHE:-$HOME/.cache/kubeboot}/qemu
mkdir -p "$cache/kernel" "$cache/debs"
# One setup at a time per cache (two checkouts may share it).
exec 9>"$cache/.lock"
flock 9
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo

if [ "${1:-}" != kernel ]; then
  missing=()
  for p in qemu-system-x86 genisoimage kmod xz-utils; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    for attempt in 1 2 3; do
      $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >"$cache/apt.log" 2>&1 && break
      if [ $attempt -eq 3 ]; then cat "$cache/apt.log" >&2; exit 1; fi
      # A fresh machine may have no package lists yet.
      $SUDO apt-get update >/dev/null 2>&1 || true
    done
  fi
fi

# The versioned image package behind the linux-image-amd64 metapackage.
image_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(image_pkg || true)
if [ -z "$pkg" ]; then
  $SUDO apt-get update >/dev/null 2>&1 || true
  pkg=$(image_pkg || true)
fi
if [ -z "$pkg" ]; then
  # No package lists at all: a tree unpacked earlier still does.
  if [ -e "$cache/kernel/current/.ready" ]; then
    echo "setup: apt knows no linux-image-amd64; using the cached kernel" >&2
    readlink -f "$cache/kernel/current"
    exit 0
  fi
  echo "setup: apt-cache knows no linux-image-amd64 (no package lists?)" >&2
  exit 1
fi
version=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2; exit}')
tree="$cache/kernel/${pkg}_${version}"

if [ ! -e "$tree/.ready" ]; then
  deb=$(ls "$cache/debs/${pkg}_${version//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    echo "setup: downloading $pkg $version" >&2
    # As root, apt's _apt sandbox user cannot write to the cache: say so
    # instead of warning.
    sandbox=()
    [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$cache/debs" && for attempt in 1 2 3; do
      apt-get "${sandbox[@]}" download "$pkg=$version" >&2 && break
      [ $attempt -eq 3 ] && exit 1
      sleep $attempt
    done)
    deb=$(ls "$cache/debs/${pkg}_${version//:/%3a}_"*.deb 2>/dev/null | head -1)
  fi
  rm -rf "$tree.tmp"
  mkdir -p "$tree.tmp"
  dpkg -x "$deb" "$tree.tmp"
  kver=$(ls "$tree.tmp/lib/modules" | head -1)
  if [ -z "$kver" ] || [ ! -e "$tree.tmp/boot/vmlinuz-$kver" ]; then
    echo "setup: $deb holds no kernel and modules" >&2
    exit 1
  fi
  depmod=$(command -v depmod || echo /usr/sbin/depmod)
  "$depmod" -b "$tree.tmp" "$kver"
  rm -rf "$tree"
  mv "$tree.tmp" "$tree"
  touch "$tree/.ready"
fi
ln -sfn "$(basename "$tree")" "$cache/kernel/current.tmp"
mv -T "$cache/kernel/current.tmp" "$cache/kernel/current"
echo "$tree"
