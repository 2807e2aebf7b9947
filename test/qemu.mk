# QEMU first-boot tests, fast tier (issue 8): Debian's kernel under QEMU
# (TCG; KVM only where it works) with a small initramfs holding kubeboot,
# the kernel modules it needs and a minimal init; userdata by fw_cfg and by
# a NoCloud cidata disk. Include from the top-level Makefile. Runs as root
# (CI does): setup installs QEMU and fetches the kernel into
# ${KUBEBOOT_CACHE:-~/.cache/kubeboot}/qemu once. See test/qemu/README.md.

QEMU_TEST_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/qemu
GO ?= go

.PHONY: qemu-setup qemu-test

qemu-setup:
	$(QEMU_TEST_DIR)/setup.sh

# Console logs, reports and the initramfs stay in _out/qemu; the whole test
# log (with the serial console of a failed boot) in _out/qemu-test.log.
qemu-test: qemu-setup
	mkdir -p _out
	KUBEBOOT_QEMU_OUT=$(CURDIR)/_out/qemu KUBEBOOT_BENCH_OUT=$(CURDIR)/_out/bench-qemu.txt \
	  $(GO) test -count=1 -v -timeout 10m -run TestFastTier ./$(QEMU_TEST_DIR)/ >_out/qemu-test.log 2>&1; \
	status=$$?; \
	if [ $$status -eq 0 ]; then grep -E '^(=== RUN|---|PASS|FAIL|ok)|BENCH|initramfs|preflight passed' _out/qemu-test.log; \
	else cat _out/qemu-test.log; fi; \
	exit $$status
