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

# Until the local cluster lands, the demo shows what the injector does to a
# sample app: the injected objects, the report, and the patch of one workload.
demo:
	$(CARGO) build -q -p weft-cli
	@echo "== weft inject examples/emojivoto.yml (report on stderr, objects on stdout)"
	./target/debug/weft inject examples/emojivoto.yml > .demo-injected.yml
	@echo "== injected objects written to .demo-injected.yml"
	@echo "== the JSON patch weft applies to deployment/web"
	./target/debug/weft inject --patch examples/emojivoto.yml 2>/dev/null | python3 -c 'import json,sys; [print(json.dumps(w, indent=2)) for w in json.load(sys.stdin) if w["name"] == "web"]' 

# Targets of the end-to-end cluster (issue 3) and the proxy (issue 4).
-include e2e/e2e.mk
-include proxy/proxy.mk
