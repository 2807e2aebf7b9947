# kubeboot's golden image (mkosi.conf) and the full QEMU first-boot tier.
# Include from the top-level Makefile (after `build` is defined); nothing
# here runs at parse time. Both run as root (mkosi, mknod, QEMU).
#
#   make image       Debian 12 + containerd + kubelet + kubeboot + the image
#                    archives, as an ext4 disk with Debian's kernel and a tiny
#                    initrd, in ${KUBEBOOT_CACHE:-~/.cache/kubeboot}/image
#                    (cold: a few minutes plus the Kubernetes binaries and
#                    images once; unchanged inputs: a few seconds)
#   make qemu-full   boots that image under QEMU (TCG here) with userdata on
#                    fw_cfg: a real first boot to the join secret, then a
#                    second boot of the same disk. Not part of `make test`:
#                    it takes many minutes under TCG. See test/qemufull/.

IMAGE_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
GO ?= go

.PHONY: image qemu-full

image: build
	$(IMAGE_MK_DIR)/mkosi/build.sh

# The console logs, the join secrets and QEMU's command lines stay in
# _out/qemu-full; the test's log in _out/qemu-full.log.
qemu-full: image
	$(IMAGE_MK_DIR)/../test/qemu/setup.sh >/dev/null
	mkdir -p _out
	KUBEBOOT_IMAGE_DIR=$$($(IMAGE_MK_DIR)/mkosi/build.sh | tail -1) \
	KUBEBOOT_QEMU_OUT=$(CURDIR)/_out/qemu-full KUBEBOOT_BENCH_OUT=$(CURDIR)/_out/bench-qemu-full.txt \
	  $(GO) test -count=1 -v -timeout 60m ./test/qemufull/ 2>&1 | tee _out/qemu-full.log | \
	  grep -E '^(=== RUN|---|PASS|FAIL|ok)|BENCH|qemufull_test|fulltier_test'; \
	exit $${PIPESTATUS[0]}
