# The local Kubernetes cluster and its node. Included by the root Makefile.
#   make e2e-bins      build etcd, the Kubernetes components, kubectl and CoreDNS (cached in e2e/.bin)
#   make images        build the node's images as OCI archives (cached in e2e/.images)
#   make cluster-up    start the cluster and its node in the background, wait until the node is Ready;
#                      prints `export KUBECONFIG=...`
#   make cluster-status  the components and the node
#   make cluster-down  stop everything, put the host back, remove e2e/.cluster
#   make test-e2e      the end-to-end suites (they start their own clusters)
#   make bench-e2e     webhook latency through the API server (docs/benchmarks.md)
#   make bench-node    the node's figures: start-up, rollout restart to 2/2, images, memory
#   make bench-mesh    latency the mesh adds web -> voting, meshed vs plain pods, and the spread over 3 endpoints
E2E_CLUSTER_DIR ?= $(CURDIR)/e2e/.cluster
E2E_RUN = $(CARGO) run -q -p weft-e2e --bin weft-e2e -- --dir $(E2E_CLUSTER_DIR)

.PHONY: e2e-bins images cluster-up cluster-down cluster-status test-e2e bench-e2e bench-node bench-mesh

e2e-bins:
	bash e2e/go/build.sh

images: deps e2e-bins
	$(E2E_RUN) images

cluster-up: deps e2e-bins images
	$(E2E_RUN) up

cluster-down:
	$(E2E_RUN) down

cluster-status:
	$(E2E_RUN) status

test-e2e: e2e-bins
	$(CARGO) test -p weft-e2e

bench-e2e: e2e-bins
	$(CARGO) bench -p weft-e2e --bench webhook_latency

bench-node: deps e2e-bins images
	$(CARGO) bench -p weft-e2e --bench node_figures

bench-mesh: deps e2e-bins images
	$(CARGO) bench -p weft-e2e --bench mesh_latency
