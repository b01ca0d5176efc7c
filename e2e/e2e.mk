# The local Kubernetes control plane (issue 3). Included by the root Makefile.
#   make e2e-bins      build etcd, kube-apiserver, kube-controller-manager, kubectl (cached in e2e/.bin)
#   make cluster-up    start a cluster in the background; prints `export KUBECONFIG=...`
#   make cluster-down  stop it (and the injector `make demo` left running) and remove e2e/.cluster
#   make test-e2e      the end-to-end suites (they start their own clusters)
#   make bench-e2e     webhook latency through the API server (docs/benchmarks.md)
E2E_CLUSTER_DIR ?= $(CURDIR)/e2e/.cluster
E2E_RUN = $(CARGO) run -q -p weft-e2e --bin weft-e2e -- --dir $(E2E_CLUSTER_DIR)

.PHONY: e2e-bins cluster-up cluster-down cluster-status test-e2e bench-e2e

e2e-bins:
	bash e2e/go/build.sh

cluster-up: e2e-bins
	$(E2E_RUN) up

cluster-down:
	$(E2E_RUN) down

cluster-status:
	$(E2E_RUN) status

test-e2e: e2e-bins
	$(CARGO) test -p weft-e2e

bench-e2e: e2e-bins
	$(CARGO) bench -p weft-e2e --bench webhook_latency
