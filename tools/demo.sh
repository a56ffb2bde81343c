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

step "L7: shuntd --config deploy/examples/demo-l7.yaml (a service VIP that exists nowhere)"
for v in v1 v2; do
	mkdir -p "$H_DIR/$v"
	echo "reviews $v" >"$H_DIR/$v/index.html"
done
h_bg b /usr/bin/python3 -m http.server 8001 --directory "$H_DIR/v1" 2>>"$H_DIR/http.log"
h_bg b /usr/bin/python3 -m http.server 8002 --directory "$H_DIR/v2" 2>>"$H_DIR/http.log"
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8002 '"
sed "s/@B@/$B/" deploy/examples/demo-l7.yaml >"$H_DIR/demo-l7.yaml"
: >"$H_DIR/access.log"
h_shuntd --config "$H_DIR/demo-l7.yaml"
VIP=http://10.96.0.10:9080
echo "20 requests to $VIP/ (weighted 80/20): $(for _ in $(seq 20); do
	h_exec a curl -s "$VIP/"
done | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
printf 'with x-version: v2 -> %s' "$(h_exec a curl -s -H 'x-version: v2' "$VIP/")"
echo
printf '%s/health (direct response) -> %s' "$VIP" "$(h_exec a curl -s "$VIP/health")"
echo
echo "Host: nobody -> HTTP $(h_exec a curl -s -o /dev/null -w '%{http_code}' -H 'Host: nobody' "$VIP/")"
step "Access log of the L7 requests: status, flags, route details, cluster, endpoint"
grep '"GET /' "$H_DIR/access.log" | tail -4
step "shuntctl config dump --type routes (Envoy's /config_dump), summarised"
h_ctl config dump --type routes | jq -c '.configs[] | (.static_route_configs // [])[] |
	.route_config.virtual_hosts[] | {vhost: .name, routes: [.routes[] | .match]}' 2>/dev/null ||
	h_ctl config dump --type routes | head -20
h_shuntd_stop >/dev/null

step "mTLS between the pods: shuntd --config deploy/examples/demo-mtls.yaml (Istio's shapes)"
tools/mesh-certs.sh "$H_DIR/pki"
sed -e "s/@B@/$B/" -e "s|@D@|$H_DIR/pki|g" deploy/examples/demo-mtls.yaml >"$H_DIR/demo-mtls.yaml"
h_shuntd --config "$H_DIR/demo-mtls.yaml"
hs=$(h_ctl -o json stats | jq -r .proxy.ssl_handshake)
echo "pod a -> 10.96.0.10:9080 (mTLS to pod b, terminated by b's inbound): $(h_exec a curl -s http://10.96.0.10:9080/)"
echo "TLS handshakes it took: $(($(h_ctl -o json stats | jq -r .proxy.ssl_handshake) - hs)) (a's client side, b's server side)"
echo "plaintext to $B:8001 from outside the mesh: '$(h_exec_netns a curl -s -m 3 "http://$B:8001/")' (refused: STRICT)"
echo "the workload certificate: $(openssl x509 -in "$H_DIR/pki/workload.crt" -noout -ext subjectAltName | tail -1 | tr -d ' ')"
h_shuntd_stop >/dev/null
step "Done; the harness removes the pods"
