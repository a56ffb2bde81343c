#!/usr/bin/env bash
# Issue 4 (static half) and issue 5: shuntd --config FILE. Istio's listener shapes from an Envoy
# bootstrap route a captured pod's HTTP request by host, path and header to the endpoints the
# config names (a service VIP that exists nowhere else), direct responses and rewrites apply, a
# bind_to_port listener serves as a gateway, config dump shows the resources, bad files are one
# clear line and exit 1.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

h_init
h_pod a
h_pod b
B=$(h_ip b)
for v in v1 v2 local; do
	mkdir -p "$H_DIR/$v/v2"
	echo "$v" >"$H_DIR/$v/index.html"
	echo "$v under /v2" >"$H_DIR/$v/v2/index.html"
done
h_bg b /usr/bin/python3 -m http.server 8001 --directory "$H_DIR/v1"
h_bg b /usr/bin/python3 -m http.server 8002 --directory "$H_DIR/v2"
# The gateway's backend, on the host's loopback where shuntd itself runs.
/usr/bin/python3 -m http.server 0 --bind 127.0.0.1 --directory "$H_DIR/local" \
	>"$H_DIR/local.out" 2>&1 &
LOCAL_PID=$!
H_PIDS+=("$LOCAL_PID")
h_wait_for 5 grep -q "port [0-9]" "$H_DIR/local.out"
LPORT=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$H_DIR/local.out" | head -1)
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8002 '"
sed -e "s/@B@/$B/" -e "s/@LPORT@/$LPORT/" tests/integration/fixtures/mesh-static.yaml \
	>"$H_DIR/mesh.yaml"

# Bad files first: nothing starts, one line says where.
run_bad() {
	"$H_BIN/shuntd" --cgroup "$H_CG" --bpffs-dir "$H_DIR/bpf" --run-dir "$H_DIR/run" \
		--admin-port 0 --config "$1" >/dev/null 2>"$H_DIR/err"
	rc=$?
	err=$(cat "$H_DIR/err")
}
mkdir -p "$H_DIR/run"
printf 'static_resources:\n  clusters:\n  - name: x\n    connect_timeout: 5\n' >"$H_DIR/bad1.yaml"
run_bad "$H_DIR/bad1.yaml"
is "$rc" "1" "a wrong type: exit 1"
like "$err" "^shuntd: --config $H_DIR/bad1.yaml:4:[0-9]+: static_resources.clusters\[0\].connect_timeout: expected a duration" \
	"names file, line and field"
sed 's/cluster: reviews-v1/cluster: reviews-v9/' "$H_DIR/mesh.yaml" >"$H_DIR/bad2.yaml"
run_bad "$H_DIR/bad2.yaml"
is "$rc" "1" "a route to a cluster that does not exist: exit 1"
like "$err" 'reviews-v9' "names the dangling cluster"
run_bad "$H_DIR/missing.yaml"
like "$err" "missing.yaml.*No such file" "a missing file says so"
is "$(ls "$H_DIR/bpf" 2>/dev/null | wc -l)" "0" "and nothing was left pinned"

NODE_ID="sidecar~$(h_ip a)~a.default~default.svc.cluster.local"
h_shuntd --config "$H_DIR/mesh.yaml" --service-node "$NODE_ID" --service-cluster a.default \
	--service-zone z9 || { echo "Bail out! shuntd did not start"; exit 1; }
VIP=http://10.96.0.10:9080
is "$(h_exec a curl -sf -m 5 "$VIP/")" "v1" "pod A -> service VIP: routed to reviews-v1's endpoint"
is "$(h_exec a curl -sf -m 5 -H 'x-version: v2' "$VIP/")" "v2" "a header match picks reviews-v2"
is "$(h_exec a curl -sf -m 5 "$VIP/v2/")" "v2" "prefix /v2/ is rewritten to / on reviews-v2"
is "$(h_exec a curl -sf -m 5 "$VIP/health")" "healthy" "a direct response, no upstream"
is "$(h_exec a curl -s -m 5 -o /dev/null -w '%{http_code}' -H 'Host: nobody' "$VIP/")" "404" \
	"an unknown host gets 404 (NR)"
h_wait_for 2 grep -q '"GET / HTTP/1.1" 200 .* reviews-v1 ' "$H_DIR/access.log"
like "$(grep '"GET / HTTP/1.1" 200' "$H_DIR/access.log" | grep reviews-v1 | head -1)" \
	"\"10.96.0.10:9080\" \"$B:8001\" reviews-v1 " "the access log names the route's cluster and endpoint"
like "$(grep ' 404 NR ' "$H_DIR/access.log" | head -1)" 'route_not_found' "and the NR flag"
is "$(curl -sf -m 5 http://127.0.0.1:8003/)" "local" "a bind_to_port listener serves as a gateway"
like "$(h_exec a curl -sf -m 5 "http://$B:8001/")" "v1" \
	"other destinations still pass through (virtualOutbound's default chain)"

dump=$(h_ctl config dump)
is "$(jq -r '.configs[] | select(."@type" | endswith("ListenersConfigDump")) | .static_listeners | length' <<<"$dump")" "4" \
	"config dump: the four static listeners"
is "$(h_ctl config dump --type clusters | jq -r '[.configs[0].static_clusters[].cluster.name] | sort | join(",")')" \
	"InboundPassthroughCluster,PassthroughCluster,local,reviews-v1,reviews-v2" "config dump --type clusters"
is "$(h_ctl config dump --type bootstrap | jq -r '.configs[0].bootstrap.node | [.id, .cluster, .locality.zone] | join(" ")')" \
	"$NODE_ID a.default z9" \
	"--service-node, --service-cluster and --service-zone set the bootstrap's node (the file has none)"
h_ctl config dump --type nonsense >/dev/null 2>"$H_DIR/err"
is "$?" "2" "an unknown --type: exit 2"
like "$(cat "$H_DIR/err")" "nonsense" "naming it"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
