# kubeadm's control-plane images and the add-ons' images (flannel) as OCI
# archives, built locally by image/builder from the project's binaries (see
# image/builder/README.md). Include from the top-level Makefile; nothing here
# runs at parse time.
#
#   make images                 build (cold: CoreDNS ~5 min and flannel
#                               ~4 min once, the Kubernetes binaries via
#                               k8sbin ~15 min once; warm: a no-op in about
#                               0.2 s)
#   $(IMAGES_DIR) in a recipe   the archive directory, building first if needed:
#       e2e-node: images
#               KUBEBOOT_IMAGE_ARCHIVES=$(IMAGES_DIR) go test ./test/node/

IMAGES_SH := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/images.sh
IMAGES_DIR = $$($(IMAGES_SH) | tail -1)

.PHONY: images
images:
	$(IMAGES_SH)
