#!/usr/bin/env bash
# Builds kubeboot's golden image (mkosi.conf) into
# ${KUBEBOOT_CACHE:-$HOME/.cache/kubeboot}/image, outside the repository:
#
#   kubeboot.raw   the root file system, ext4 (no partition table), sparse
#   vmlinuz        Debian's kernel (test/qemu/setup.sh fetches it), whose
#                  modules are in the image
#   initrd.img     a tiny initrd: loads virtio and ext4, mounts root=, runs systemd
#   build-info     inputs, versions, build time and sizes
#
# The last line of stdout is that directory. Nothing is rebuilt when the
# inputs are unchanged (FORCE=1 rebuilds). mkosi runs at most twice: a
# first attempt may fail on a transient fetch.
#
# Inputs: mkosi.conf, image/mkosi.extra, image/mkosi/*, units/*.service,
# bin/kubeboot (make build), the kubelet (test/k8sbin/build.sh), the image
# archives (image/images.sh), the kernel (test/qemu/setup.sh) and the
# Debian mirror, which is read from this machine's apt sources.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${KUBEBOOT_CACHE:-$HOME/.cache/kubeboot}/image
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
log() { echo "image: $*" >&2; }
start=$(date +%s)

export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo

# Tools, installed when missing.
missing=()
for p in mkosi debootstrap systemd-container e2fsprogs busybox-static kmod xz-utils; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	$SUDO apt-get install -y --no-install-recommends "${missing[@]}" >"$cache/apt.log" 2>&1 ||
		{ $SUDO apt-get update >/dev/null 2>&1 || true; $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >"$cache/apt.log" 2>&1; } ||
		{ cat "$cache/apt.log" >&2; exit 1; }
fi

# The Debian mirror and security mirror this machine's apt uses, for the
# image's release (one-line .list and deb822 .sources files).
release=$(awk -F= '$1 == "Release" {print $2}' "$repo/mkosi.conf")
apt_uri() {
	local suite=$1
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk -v s="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == s) { print $i; exit } }'
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] || continue
		awk -v s="$suite" '
			/^[[:space:]]*#/ { next }
			/^[[:space:]]*$/ { if (deb && uri && hit) { print uri; exit } deb = uri = hit = 0; next }
			tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
			END { if (deb && uri && hit) print uri }' "$f"
	done
}
mirror=$(apt_uri "$release" | head -1)
security=$(apt_uri "$release-security" | head -1)
if [ -z "$mirror" ]; then
	echo "image: no deb source for $release in /etc/apt/sources.list*; configure apt for Debian $release first" >&2
	exit 1
fi
mirror=${mirror%/}

# The other inputs, each built or fetched (and cached) by its own script.
kubeboot=$repo/bin/kubeboot
[ -x "$kubeboot" ] || { echo "image: $kubeboot missing: run make build" >&2; exit 1; }
k8s=$("$repo/test/k8sbin/build.sh" path | tail -1)
kubelet=${k8s%%:*}/kubelet
archives=$("$repo/image/images.sh" | tail -1)
ktree=$("$repo/test/qemu/setup.sh" kernel | tail -1)
kver=$(ls "$ktree/lib/modules")
[ -x "$kubelet" ] && [ -d "$archives" ] && [ -e "$ktree/boot/vmlinuz-$kver" ] ||
	{ echo "image: missing input (kubelet $kubelet, archives $archives, kernel $ktree)" >&2; exit 1; }

# Modules the image carries: a virtual machine's (virtio, ACPI, and evdev,
# without which logind never sees the ACPI power button) plus every
# network, netfilter, file system and crypto module; not the hardware
# drivers (GPU, sound, wireless, media, ...), which are three quarters of
# the 400 MB.
module_dirs=(kernel/net kernel/fs kernel/lib kernel/crypto kernel/arch kernel/block kernel/mm kernel/virt
	kernel/drivers/virtio kernel/drivers/block kernel/drivers/char kernel/drivers/firmware kernel/drivers/acpi
	kernel/drivers/input/evdev.ko
	kernel/drivers/net/vxlan kernel/drivers/net/ipvlan kernel/drivers/net/wireguard kernel/drivers/net/team
	kernel/drivers/net/bonding kernel/drivers/md)

inputs() {
	echo "mirror $mirror security $security kernel $(basename "$ktree") modules ${module_dirs[*]}"
	(cd "$repo" && find mkosi.conf image/mkosi.extra image/mkosi -printf '%p %m %l\n' | sort &&
		find mkosi.conf image/mkosi.extra image/mkosi units/*.service -type f -print0 | sort -z | xargs -0 sha256sum)
	sha256sum "$kubeboot" "$kubelet" "$archives"/*.tar | awk '{print $1}'
}
want=$(inputs | sha256sum | cut -d' ' -f1)
if [ "${FORCE:-}" != 1 ] && [ -e "$cache/kubeboot.raw" ] && [ -e "$cache/initrd.img" ] &&
	[ "$(cat "$cache/inputs.sha256" 2>/dev/null)" = "$want" ]; then
	log "up to date ($(sed -n 's/^built //p' "$cache/build-info"))"
	echo "$cache"
	exit 0
fi
rm -f "$cache/inputs.sha256"

# What mkosi copies in on top of the packages, besides image/mkosi.extra.
work=$cache/work
rm -rf "$work"
extra=$work/extra
mkdir -p "$extra/usr/bin" "$extra/usr/lib/systemd/system" "$extra/var/lib/kubeboot/images" "$extra/usr/lib/modules/$kver"
install -m 0755 "$kubeboot" "$extra/usr/bin/kubeboot"
install -m 0755 "$kubelet" "$extra/usr/bin/kubelet"
install -m 0644 "$repo"/units/*.service "$extra/usr/lib/systemd/system/"
cp -l "$archives"/*.tar "$extra/var/lib/kubeboot/images/" 2>/dev/null || cp "$archives"/*.tar "$extra/var/lib/kubeboot/images/"
chmod 0644 "$extra/var/lib/kubeboot/images/"*.tar
(cd "$ktree/lib/modules/$kver" && cp -a --parents "${module_dirs[@]}" modules.builtin modules.builtin.modinfo modules.order "$extra/usr/lib/modules/$kver/")
(cd "$ktree/lib/modules/$kver" && find kernel/drivers/net -maxdepth 1 -name '*.ko*' -print0 | xargs -0 cp -a --parents -t "$extra/usr/lib/modules/$kver/")
# No nested virtualization (kvm_amd would fail for want of ccp) and no floppy.
rm -rf "$extra/usr/lib/modules/$kver/kernel/arch/x86/kvm" "$extra/usr/lib/modules/$kver/kernel/drivers/block/floppy.ko"
depmod -b "$extra/usr" "$kver"

# apt in the image and during the build uses this machine's security
# mirror too (mkosi 14 would write its own; a skeleton tree is copied
# after it).
skel=$work/skeleton
mkdir -p "$skel/etc/apt/sources.list.d"
if [ -n "$security" ]; then
	echo "deb $security $release-security main" >"$skel/etc/apt/sources.list.d/$release-security.list"
fi

# mkosi: twice at most.
mk_start=$(date +%s)
mkosi_args=(--mirror="$mirror" --cache="$cache/pkgcache" --output-dir="$cache/mkosi" --workspace-dir="$cache/workspace"
	--extra-tree="$extra" --skeleton-tree="$skel" --force)
mkdir -p "$cache/pkgcache" "$cache/mkosi" "$cache/workspace"
rm -f "$cache"/mkosi.attempt*.log
ok=0
for attempt in 1 2; do
	log "mkosi build, attempt $attempt (log: $cache/mkosi.log)"
	if (cd "$repo" && mkosi "${mkosi_args[@]}" build) >"$cache/mkosi.log" 2>&1; then
		ok=1
		break
	fi
	cp "$cache/mkosi.log" "$cache/mkosi.attempt$attempt.log"
	log "mkosi failed (attempt $attempt):"
	tail -15 "$cache/mkosi.log" >&2
	rm -rf "$cache/workspace"/* 2>/dev/null || true
done
[ $ok = 1 ] || exit 1
mk_secs=$(($(date +%s) - mk_start))
# mkosi 14 puts it under <distribution>~<release>/.
tree=$(ls -d "$cache"/mkosi/*/kubeboot 2>/dev/null | head -1)
[ -d "$tree" ] || { echo "image: mkosi made no kubeboot tree under $cache/mkosi" >&2; exit 1; }

# The tree into an ext4 file system: sparse, 6 GiB, room for containerd's
# unpacked images, etcd and logs (the kubelet evicts below 10-15% free).
tree_kib=$(du -sk "$tree" | cut -f1)
rm -f "$cache/kubeboot.raw.tmp"
truncate -s "${KUBEBOOT_IMAGE_SIZE:-6G}" "$cache/kubeboot.raw.tmp"
mkfs.ext4 -q -F -L kubeboot-root -d "$tree" "$cache/kubeboot.raw.tmp"
mv -f "$cache/kubeboot.raw.tmp" "$cache/kubeboot.raw"

# The kernel, and the initrd that reaches the root disk.
install -m 0644 "$ktree/boot/vmlinuz-$kver" "$cache/vmlinuz"
ird=$work/initrd
mkdir -p "$ird/bin" "$ird/dev" "$ird/lib/modules"
cp "$(command -v busybox)" "$ird/bin/busybox"
install -m 0755 "$repo/image/mkosi/initrd-init" "$ird/init"
mknod -m 600 "$ird/dev/console" c 5 1
modprobe -d "$ktree" -S "$kver" -D -a virtio_pci virtio_blk ext4 crc32c_generic crc32c_intel |
	awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
	rel=${ko#"$ktree/lib/modules/$kver/"}
	mkdir -p "$ird/lib/modules/$(dirname "$rel")"
	cp "$ko" "$ird/lib/modules/$rel"
	echo "$rel"
done >"$ird/modules.order"
(cd "$ird" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null | gzip -9) >"$cache/initrd.img.tmp"
mv -f "$cache/initrd.img.tmp" "$cache/initrd.img"

# The tree is in kubeboot.raw now; keep the manifest (package versions).
cp -f "$tree.manifest" "$cache/packages.json" 2>/dev/null || true
rm -rf "$tree" "$work"

total=$(($(date +%s) - start))
raw_apparent=$(stat -c %s "$cache/kubeboot.raw")
raw_alloc=$(($(stat -c %b "$cache/kubeboot.raw") * $(stat -c %B "$cache/kubeboot.raw")))
cat >"$cache/build-info" <<EOF
built $(date -u +%Y-%m-%dT%H:%M:%SZ) in ${total}s (mkosi ${mk_secs}s, attempt $attempt)
inputs $want
kernel $kver
kubeboot $("$kubeboot" version 2>/dev/null | head -1)
kubelet $("$kubelet" --version 2>/dev/null)
mirror $mirror
tree $((tree_kib / 1024)) MiB
kubeboot.raw ${raw_apparent} bytes, $((raw_alloc / 1024 / 1024)) MiB allocated
initrd.img $(stat -c %s "$cache/initrd.img") bytes
EOF
echo "$want" >"$cache/inputs.sha256"
log "built in ${total}s (mkosi ${mk_secs}s): tree $((tree_kib / 1024)) MiB, kubeboot.raw $((raw_alloc / 1024 / 1024)) MiB allocated"
echo "$cache"
