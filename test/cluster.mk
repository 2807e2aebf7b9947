# Several nodes on this machine (test/cluster): each a set of namespaces with
# its own containerd and kubelet, on a bridge, all inside an outer sandbox
# (private mount, network and UTS namespaces) that keeps the host's network
# and mounts out of reach. Include from the top-level Makefile.
#
#   make e2e-cluster                          the harness's smoke test, then TestFormation
#   make e2e-cluster E2E_CLUSTER_RUN=REGEXP   choose the tests (-test.run)
#
# Node logs: _out/e2e-cluster/TEST/NODE/*.log. After the tests the binary
# sweeps the run's cgroups (kbc-PID): it fails if the tests' teardown left
# anything, which happens only if the test binary died (-test.timeout).

.PHONY: e2e-cluster
E2E_CLUSTER_RUN ?= .

e2e-cluster: build k8sbin images deps
	mkdir -p _out
	$(GO) test -c -o _out/cluster.test ./test/cluster/
	CGO_ENABLED=0 $(GO) build -o _out/probe ./test/node/probe/
	rm -rf _out/e2e-cluster
	dirs=$$(test/k8sbin/build.sh path | tail -1); images=$(IMAGES_DIR); run=kbc-$$$$; \
	KUBEBOOT_CLUSTER_SANDBOX=1 KUBEBOOT_CLUSTER_RUN=$$run KUBEBOOT_CLUSTER_LOGS=$(CURDIR)/_out/e2e-cluster \
	KUBEBOOT_K8S_BIN=$${dirs%%:*} KUBEBOOT_BIN=$(CURDIR)/bin/kubeboot KUBEBOOT_IMAGES=$$images KUBEBOOT_PROBE=$(CURDIR)/_out/probe KUBEBOOT_ADDONS=$(CURDIR)/image/addons \
	  unshare --mount --net --uts --propagation private _out/cluster.test -test.v -test.timeout 30m -test.run '$(E2E_CLUSTER_RUN)' 2>&1 \
	  | tee _out/e2e-cluster.log | grep -E '^(=== RUN|\s*---|PASS|FAIL|ok)|BENCH|cluster:|panic'; \
	rc=$${PIPESTATUS[0]}; \
	KUBEBOOT_CLUSTER_SWEEP=$$run _out/cluster.test || rc=1; \
	exit $$rc
