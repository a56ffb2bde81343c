#!/usr/bin/env bash
# Installs every build and test dependency of shunt from Debian 12's packages; a no-op when present.
set -euo pipefail

# Build: BPF toolchain, libraries shunt links against, code generators.
build_pkgs=(make gcc clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev pkg-config
	libssl-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev
	libnl-3-dev libnl-route-3-dev libnghttp2-dev libpcre2-dev libclang-rt-14-dev libyaml-dev)
# Tests, demo and benchmark: network tools, real peers, reference proxies, TAP runner, lint.
test_pkgs=(iproute2 iptables curl socat ncat perl util-linux libcap2-bin procps psmisc
	nghttp2-client nghttp2-server nginx-light haproxy wrk python3 python3-grpcio python3-protobuf python3-h2
	libhttp-parser-dev gnuplot-nox clang-format clang-tidy cppcheck shellcheck
	linux-perf jq)
# The npm client fetches the pinned Envoy API protos; the machine's Node.js may already ship it.
command -v npm >/dev/null 2>&1 || test_pkgs+=(nodejs npm)

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#build_pkgs[@]} build and ${#test_pkgs[@]} test packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian starts packaged daemons on install; policy-rc.d keeps nginx/haproxy from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
