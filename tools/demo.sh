#!/usr/bin/env bash
# make run: two pods, shuntd between them, traffic through the mesh, and what shunt saw.
set -eu
cd "$(dirname "$0")/.."
. tests/lib/pods.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {
	printf '$ %s\n' "$*"
	"$@"
}

[ "$(id -u)" -eq 0 ] || { echo "make run needs root (network namespaces, cgroups, BPF)" >&2; exit 1; }
h_init
step "Two pods on a node bridge (network namespace + cgroup each)"
h_pod a
h_pod b
echo "pod a: $(h_ip a)  $(h_ip6 a)"
echo "pod b: $(h_ip b)  $(h_ip6 b)"

step "shuntd: attaches at $H_CG, finds the pods by itself"
h_shuntd
grep -E 'enrolled|ready' "$H_DIR/shuntd.log" | sed 's/^[^ ]* //'

step "Servers in pod b: HTTP on 8000, an echo on 8080, a 'who is calling' on 8081"
mkdir -p "$H_DIR/www"
echo "hello from pod b" >"$H_DIR/www/index.html"
h_bg b /usr/bin/python3 -m http.server 8000 --bind :: --directory "$H_DIR/www" 2>>"$H_DIR/http.log"
h_bg b "$H_BIN/nettest" serve 8080
h_bg b "$H_BIN/nettest" serve 8081 peer
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8000 '"

step "Traffic from pod a"
B=$(h_ip b)
for _ in 1 2 3; do
	printf 'curl http://%s:8000/ -> ' "$B"
	h_exec a curl -s -o /dev/stdout -w ' (HTTP %{http_code})\n' "http://$B:8000/" | tr -d '\n'
	echo
done
printf 'curl http://[%s]:8000/ -> ' "$(h_ip6 b)"
h_exec a curl -s -w ' (HTTP %{http_code})' "http://[$(h_ip6 b)]:8000/" | tr -d '\n'
echo
echo "what the app in a sees (getpeername):  $(h_exec a "$H_BIN/nettest" peer "$B" 8080)"
echo "who the server in b sees calling:       $(h_exec a socat -t2 - "TCP:$B:8081" </dev/null)"
echo "10 MB echoed a -> b -> a:               $(h_exec a "$H_BIN/nettest" bulk "$B" 8080 10M)"
echo "200 concurrent connections:             $(h_exec a "$H_BIN/nettest" conns "$B" 8080 200)"

step "shuntctl workloads"
h_ctl workloads
step "shuntctl stats"
h_ctl stats
step "Access log (Istio's format), last lines"
tail -4 "$H_DIR/access.log"

step "Stopping shuntd: programs detached, pins removed, pods talk directly"
h_shuntd_stop
tail -1 "$H_DIR/shuntd.log" | sed 's/^[^ ]* //'
h_ctl status | head -3
echo "who the server in b sees calling now:   $(h_exec a socat -t2 - "TCP:$B:8081" </dev/null)"
step "Done; the harness removes the pods"
