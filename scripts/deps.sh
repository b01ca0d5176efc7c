#!/usr/bin/env bash
# Installs what weft's tests and demo need from the machine when it is
# missing, so `make test` and `make demo` work on a fresh Debian machine as
# root: Debian's packages (iptables, iproute2, tcpdump, containerd, runc,
# the CNI plugins, conntrack, musl-tools, busybox-static for the test
# workloads' image) and Rust's musl target, which the
# static proxy and control-plane images are built for. A machine that has
# everything pays a few `command -v` calls.
set -euo pipefail

# program or file → the Debian package that has it
declare -A need_pkg=(
  [iptables]=iptables [ip6tables]=iptables [ip]=iproute2 [setpriv]=util-linux [flock]=util-linux
  [tcpdump]=tcpdump [containerd]=containerd [ctr]=containerd [runc]=runc
  [conntrack]=conntrack [musl-gcc]=musl-tools [/usr/lib/cni/bridge]=containernetworking-plugins
  [/usr/lib/cni/host-local]=containernetworking-plugins [/usr/lib/cni/portmap]=containernetworking-plugins
  [/usr/lib/cni/loopback]=containernetworking-plugins [busybox]=busybox-static [strip]=binutils
)
missing=()
for what in "${!need_pkg[@]}"; do
  if [[ "$what" == /* ]]; then [ -e "$what" ] && continue; else command -v "$what" >/dev/null 2>&1 && continue; fi
  missing+=("${need_pkg[$what]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  pkgs="$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages: $pkgs; run as root, or: sudo apt-get install -y $pkgs" >&2
    exit 1
  fi
  echo "deps: installing Debian packages: $pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# The images' binaries are static musl builds.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  echo "deps: adding Rust's x86_64-unknown-linux-musl target" >&2
  rustup target add x86_64-unknown-linux-musl >&2
fi
