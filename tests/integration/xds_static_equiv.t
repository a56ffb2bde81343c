#!/usr/bin/env bash
# Issue 4, test 3: the same listeners and clusters given in a static bootstrap file and pushed
# over ADS (by the independent Python server, tests/lib/xds_server.py) give the same config dump.
# Envoy files static resources under static_* and ADS ones under dynamic_* with their versions;
# the resources themselves must be identical. State of the world, then delta.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh
. tests/lib/xds.sh

PY=/usr/bin/python3
DESC=build/xds/closure.pb
[ -f "$DESC" ] || { echo "Bail out! run make (needs $DESC)"; exit 1; }
h_init

HCM='"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"'
ROUTER='{"name":"envoy.filters.http.router","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}'
TCP='"@type":"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"'
virtual() { # NAME PORT CLUSTER
	printf '{"name":"%s","address":{"socket_address":{"address":"0.0.0.0","port_value":%s}},"use_original_dst":true,"default_filter_chain":{"filters":[{"name":"envoy.filters.network.tcp_proxy","typed_config":{%s,"stat_prefix":"%s","cluster":"%s"}}]}}' "$1" "$2" "$TCP" "$3" "$3"
}
# An HTTP listener with its routes inline (a static bootstrap cannot name RDS resources), with
# the field kinds the converter must carry: durations, wrappers, enums, repeated messages, Any.
listener() { # NAME PORT CLUSTER
	printf '{"name":"%s","address":{"socket_address":{"address":"0.0.0.0","port_value":%s}},"bind_to_port":false,"filter_chains":[{"filter_chain_match":{"destination_port":%s},"filters":[{"name":"envoy.filters.network.http_connection_manager","typed_config":{%s,"stat_prefix":"x","codec_type":"AUTO","stream_idle_timeout":"30s","max_request_headers_kb":64,"route_config":{"name":"r","virtual_hosts":[{"name":"v","domains":["*","reviews:9080"],"routes":[{"match":{"prefix":"/api","headers":[{"name":"x-v","string_match":{"exact":"2"}}]},"route":{"cluster":"%s","timeout":"1.500s","retry_policy":{"retry_on":"5xx,connect-failure","num_retries":3}}},{"match":{"path":"/health"},"direct_response":{"status":200,"body":{"inline_string":"ok"}}}]}]},"http_filters":[%s]}}]}]}' "$1" "$2" "$2" "$HCM" "$3" "$ROUTER"
}
static_cluster() { # NAME ADDR PORT
	printf '{"name":"%s","type":"STATIC","connect_timeout":"0.250s","lb_policy":"LEAST_REQUEST","circuit_breakers":{"thresholds":[{"max_connections":100}]},"load_assignment":{"cluster_name":"%s","endpoints":[{"locality":{"zone":"z1"},"lb_endpoints":[{"endpoint":{"address":{"socket_address":{"address":"%s","port_value":%s}}},"load_balancing_weight":3}]},{"priority":1,"lb_endpoints":[{"endpoint":{"address":{"socket_address":{"address":"10.0.0.9","port_value":%s}}}}]}]}}' "$1" "$1" "$2" "$3" "$3"
}
orig_dst() { printf '{"name":"%s","type":"ORIGINAL_DST","lb_policy":"CLUSTER_PROVIDED"}' "$1"; }
CLUSTERS="[$(orig_dst PassthroughCluster),$(orig_dst InboundPassthroughCluster),$(static_cluster reviews 10.77.0.3 9080),$(static_cluster ratings 10.77.0.4 8080)]"
LISTENERS="[$(virtual virtualOutbound 15001 PassthroughCluster),$(virtual virtualInbound 15006 InboundPassthroughCluster),$(listener 0.0.0.0_9080 9080 reviews),$(listener 0.0.0.0_8080 8080 ratings)]"

# The resources of a dump, each section's list sorted by name, without the ADS connection's
# own cluster (only the ADS bootstrap has it).
listeners_of() { jq -S '[.configs[0] | (.static_listeners // [])[].listener, (.dynamic_listeners // [])[].active_state.listener] | sort_by(.name)'; }
clusters_of() { jq -S '[.configs[0] | (.static_clusters // [])[].cluster, (.dynamic_active_clusters // [])[].cluster] | map(select(.name != "xds")) | sort_by(.name)'; }

cat >"$H_DIR/static.json" <<EOB
{"node": {"id": "sidecar~10.77.0.2~a.default~default.svc.cluster.local", "cluster": "a.default"},
 "static_resources": {"listeners": $LISTENERS, "clusters": $CLUSTERS}}
EOB
h_shuntd --config "$H_DIR/static.json" || { echo "Bail out! shuntd did not start"; exit 1; }
h_ctl config dump --type listeners >"$H_DIR/static.listeners"
h_ctl config dump --type clusters >"$H_DIR/static.clusters"
h_shuntd_stop >/dev/null
is "$(listeners_of <"$H_DIR/static.listeners" | jq length)" "4" "static: four listeners in the dump"
is "$(clusters_of <"$H_DIR/static.clusters" | jq length)" "4" "static: four clusters in the dump"
is "$(jq '.configs[0].dynamic_listeners // [] | length' "$H_DIR/static.listeners")" "0" \
	"static: nothing under dynamic_listeners"
is "$(listeners_of <"$H_DIR/static.listeners" | jq -r '.[] | select(.name == "0.0.0.0_9080") |
	.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route |
	"\(.timeout) \(.retry_policy.num_retries)"')" "1.500s 3" \
	"static: the dump carries the route's settings (so equal dumps mean equal resources)"

for MODE in sotw delta; do
	api=GRPC
	[ "$MODE" = delta ] && api=DELTA_GRPC
	: >"$H_DIR/ports"
	$PY tests/lib/xds_server.py serve "$DESC" 0 "$H_DIR/state.$MODE" >"$H_DIR/ports" \
		2>>"$H_DIR/server.err" &
	SERVER=$!
	H_PIDS+=("$SERVER")
	h_wait_for 5 test -s "$H_DIR/ports"
	read -r GPORT CPORT <"$H_DIR/ports"
	[ -n "${GPORT:-}" ] || { echo "Bail out! the xDS server did not start"; exit 1; }
	$PY tests/lib/xds_server.py ctl "$CPORT" set cds 7 "$CLUSTERS" >/dev/null
	$PY tests/lib/xds_server.py ctl "$CPORT" set lds 3 "$LISTENERS" >/dev/null
	xds_bootstrap "$api" "$GPORT" >"$H_DIR/ads.$MODE.json"
	: >"$H_DIR/shuntd.log"
	h_shuntd --config "$H_DIR/ads.$MODE.json" || { echo "Bail out! shuntd did not start"; exit 1; }
	h_wait_for 10 grep -q "xds: initial fetch complete" "$H_DIR/shuntd.log" ||
		diag "$(tail -5 "$H_DIR/shuntd.log")"
	h_ctl config dump --type listeners >"$H_DIR/ads.listeners"
	h_ctl config dump --type clusters >"$H_DIR/ads.clusters"
	h_shuntd_stop >/dev/null
	kill "$SERVER" 2>/dev/null
	wait "$SERVER" 2>/dev/null

	is "$(jq -r '[.configs[0].dynamic_listeners[].active_state.version_info] | unique | join(",")' "$H_DIR/ads.listeners")" \
		"3" "$MODE: ADS listeners are dynamic, at the pushed version"
	is "$(jq -r '[.configs[0].dynamic_active_clusters[].version_info] | unique | join(",")' "$H_DIR/ads.clusters")" \
		"7" "$MODE: ADS clusters are dynamic, at the pushed version"
	diff <(listeners_of <"$H_DIR/static.listeners") <(listeners_of <"$H_DIR/ads.listeners") >"$H_DIR/diff"
	t_ok $? "$MODE: the four listeners dump the same from the file and from ADS" ||
		diag "$(head -20 "$H_DIR/diff")"
	diff <(clusters_of <"$H_DIR/static.clusters") <(clusters_of <"$H_DIR/ads.clusters") >"$H_DIR/diff"
	t_ok $? "$MODE: the four clusters dump the same from the file and from ADS" ||
		diag "$(head -20 "$H_DIR/diff")"
done
done_testing
