#!/usr/bin/env bash
# Builds the e2e cluster's binaries (etcd; kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl
# from one pinned k8s.io/kubernetes; CoreDNS) from the Go modules beside this
# script into e2e/.bin/, and does nothing when the pinned versions have not
# changed.
#
# The stamp is a hash of both modules' go.mod/go.sum, this script and the Go
# version, so a version bump (or a new Go, or new build flags) rebuilds, and anything else is a no-op that costs
# a few milliseconds. A lock serialises concurrent callers (parallel tests).
#
# `build.sh --check` only answers: exit 0 when the binaries are up to date, 1
# when a build is needed.
#
# Environment: WEFT_E2E_BIN_DIR overrides the output folder; GOPROXY and the
# rest of the Go environment are left as the machine configures them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="${WEFT_E2E_BIN_DIR:-$here/../.bin}"
mkdir -p "$bin_dir"
bin_dir="$(cd "$bin_dir" && pwd)"

stamp() {
  {
    go version
    cat "$0" "$here/kube/go.mod" "$here/kube/go.sum" "$here/etcd/go.mod" "$here/etcd/go.sum" "$here/etcd/main.go" \
      "$here/coredns/go.mod" "$here/coredns/go.sum" "$here/coredns/main.go"
  } | sha256sum | cut -d' ' -f1
}

exec 9>"$bin_dir/.lock"
flock 9

want="$(stamp)"
bins=(etcd kube-apiserver kube-controller-manager kubectl kubelet kube-proxy kube-scheduler coredns)
up_to_date=1
for b in "${bins[@]}"; do [ -x "$bin_dir/$b" ] || up_to_date=0; done
if [ "$up_to_date" = 1 ] && [ "$(cat "$bin_dir/stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ "${1:-}" = "--check" ] && exit 1

echo "e2e: building etcd and Kubernetes binaries into $bin_dir (cold: many minutes)" >&2
rm -f "$bin_dir/stamp"
export CGO_ENABLED=0
# The machine is shared: stay out of the way of interactive work.
build=(nice -n 10 go build -trimpath)

(cd "$here/etcd" && "${build[@]}" -ldflags="-s -w" -o "$bin_dir/etcd" .)

# Without these the binaries report v0.0.0-master, and kubectl warns about skew.
kube_version="$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
minor="$(echo "$kube_version" | cut -d. -f2)"
[[ "$kube_version" =~ ^v1\.[0-9]+\.[0-9]+$ ]] || { echo "e2e: unexpected Kubernetes version '$kube_version'" >&2; exit 1; }
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"
done
# `tool` builds every tool named in go.mod: the control plane, the node's
# kubelet, kube-proxy and scheduler, and kubectl.
(cd "$here/kube" && "${build[@]}" -ldflags="$ldflags" -o "$bin_dir/" tool)

(cd "$here/coredns" && "${build[@]}" -ldflags="-s -w" -o "$bin_dir/coredns" .)

for b in "${bins[@]}"; do
  [ -x "$bin_dir/$b" ] || { echo "e2e: $b missing after build" >&2; exit 1; }
done
echo "$want" >"$bin_dir/stamp"
echo "e2e: binaries ready in $bin_dir" >&2
