# weft: the two commands a new user runs are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: build test lint fmt bench demo

build:
	$(CARGO) build --workspace --release

test:
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench -p weft-injector

demo:
	@echo "make demo: not written yet" && false

# Targets of the end-to-end cluster (issue 3) and the proxy (issue 4).
-include e2e/e2e.mk
-include proxy/proxy.mk
