# weft: the two commands a new user runs are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: build test lint fmt bench demo deps

build:
	$(CARGO) build --workspace --release

# Debian packages (iptables, tcpdump, containerd, runc, CNI plugins, ...) and
# Rust's musl target, installed when missing; see scripts/deps.sh.
deps:
	bash scripts/deps.sh

test: deps
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench -p weft-core -p weft-injector

# The demo: first the offline review (`weft inject` on the sample app, no
# cluster needed), then the tutorial on the local cluster and its node
# (e2e/): weft check, weft install | kubectl apply, emojivoto applied,
# annotated and restarted until READY 2/2, what the API server recorded for
# one injected pod, and web -> voting over mTLS from the proxies' metrics.
# The cluster keeps running; `make cluster-down` stops it.
demo: deps
	@echo "== building weft (the first build takes a few minutes)"
	$(CARGO) build -p weft-cli
	$(CARGO) build -p weft-e2e --bin weft-e2e
	$(CARGO) build -p weft-injector --bin weft-injector
	@echo "== offline review: weft inject examples/emojivoto.yml (injected objects in .demo-injected.yml)"
	./target/debug/weft inject examples/emojivoto.yml > .demo-injected.yml
	@echo "== in a real API server: weft-e2e demo"
	$(E2E_RUN) demo --manifest examples/emojivoto.yml

# Targets of the end-to-end cluster and of the proxy.
-include e2e/e2e.mk
-include proxy/proxy.mk
