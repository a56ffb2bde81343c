#!/usr/bin/env bash
# Issue 4, test 3: the same listeners, clusters, endpoints and secrets given in a static
# bootstrap file and pushed over ADS (by the independent Python server, tests/lib/xds_server.py)
# give the same config dump. Envoy files static resources under static_* and ADS ones under
# dynamic_* with their versions; the resources themselves must be identical. Endpoints are those
# the clusters carry (static_endpoint_configs, and dynamic_endpoint_configs for clusters from
# CDS, as Envoy dumps them); the secret is static in the file and comes by SDS over ADS, so the
# one thing that differs is the cluster's sds_config that says so. Secrets are compared as shunt
# prints them, private key redacted. State of the world, then delta.
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
# A cluster originating mTLS with the client certificate secret "client-cert"; SDS_CONFIG is
# empty for the static secret, ',"sds_config":{"ads":{}}' for the one from ADS.
tls_cluster() { # SDS_CONFIG
	printf '{"name":"secure","type":"STATIC","connect_timeout":"1s","load_assignment":{"cluster_name":"secure","endpoints":[{"lb_endpoints":[{"endpoint":{"address":{"socket_address":{"address":"10.77.0.5","port_value":443}}}}]}]},"transport_socket":{"name":"envoy.transport_sockets.tls","typed_config":{"@type":"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext","sni":"secure.test","common_tls_context":{"tls_certificate_sds_secret_configs":[{"name":"client-cert"%s}]}}}}' "$1"
}
C=$H_DIR/pki
mkdir -p "$C"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=client \
	-keyout "$C/client.key" -out "$C/client.crt" 2>/dev/null
[ -s "$C/client.crt" ] || { echo "Bail out! openssl could not make the test certificate"; exit 1; }
SECRET=$(jq -nc --rawfile c "$C/client.crt" --rawfile k "$C/client.key" \
	'{name: "client-cert", tls_certificate: {certificate_chain: {inline_string: $c}, private_key: {inline_string: $k}}}')
CLUSTERS_BASE="$(orig_dst PassthroughCluster),$(orig_dst InboundPassthroughCluster),$(static_cluster reviews 10.77.0.3 9080),$(static_cluster ratings 10.77.0.4 8080)"
CLUSTERS="[$CLUSTERS_BASE,$(tls_cluster '')]"
ADS_CLUSTERS="[$CLUSTERS_BASE,$(tls_cluster ',"sds_config":{"ads":{}}')]"
LISTENERS="[$(virtual virtualOutbound 15001 PassthroughCluster),$(virtual virtualInbound 15006 InboundPassthroughCluster),$(listener 0.0.0.0_9080 9080 reviews),$(listener 0.0.0.0_8080 8080 ratings)]"

# The resources of a dump, each section's list sorted by name, without the ADS connection's
# own cluster (only the ADS bootstrap has it).
listeners_of() { jq -S '[.configs[0] | (.static_listeners // [])[].listener, (.dynamic_listeners // [])[].active_state.listener] | sort_by(.name)'; }
clusters_of() { jq -S '[.configs[0] | (.static_clusters // [])[].cluster, (.dynamic_active_clusters // [])[].cluster] | map(select(.name != "xds")) | sort_by(.name) | walk(if type == "object" then del(.sds_config) else . end)'; }
endpoints_of() { jq -S '[.configs[0] | (.static_endpoint_configs // [])[].endpoint_config, (.dynamic_endpoint_configs // [])[].endpoint_config] | map(select(.cluster_name != "xds")) | sort_by(.cluster_name)'; }
secrets_of() { jq -S '[.configs[0] | (.static_secrets // [])[].secret, (.dynamic_active_secrets // [])[].secret] | sort_by(.name)'; }

cat >"$H_DIR/static.json" <<EOB
{"node": {"id": "sidecar~10.77.0.2~a.default~default.svc.cluster.local", "cluster": "a.default"},
 "static_resources": {"listeners": $LISTENERS, "clusters": $CLUSTERS, "secrets": [$SECRET]}}
EOB
h_shuntd --config "$H_DIR/static.json" || { echo "Bail out! shuntd did not start"; exit 1; }
for T in listeners clusters endpoints secrets; do h_ctl config dump --type $T >"$H_DIR/static.$T"; done
h_shuntd_stop >/dev/null
is "$(listeners_of <"$H_DIR/static.listeners" | jq length)" "4" "static: four listeners in the dump"
is "$(clusters_of <"$H_DIR/static.clusters" | jq length)" "5" "static: five clusters in the dump"
is "$(endpoints_of <"$H_DIR/static.endpoints" | jq -c 'map(.cluster_name)')" '["ratings","reviews","secure"]' \
	"static: the endpoints of the three clusters that carry them, as static_endpoint_configs"
is "$(endpoints_of <"$H_DIR/static.endpoints" | jq -r '.[] | select(.cluster_name == "reviews") |
	[.endpoints[0].lb_endpoints[0].load_balancing_weight, .endpoints[0].locality.zone, .endpoints[1].priority] | join(" ")')" \
	"3 z1 1" "static: the endpoints carry weights, localities and priorities (so equal dumps mean equal endpoints)"
is "$(secrets_of <"$H_DIR/static.secrets" | jq -r '.[0] | [.name, .tls_certificate.private_key.inline_string] | join(" ")')" \
	"client-cert [redacted]" "static: the secret under static_secrets, its private key redacted"
is "$(secrets_of <"$H_DIR/static.secrets" | jq -r '.[0].tls_certificate.certificate_chain.inline_string')" \
	"$(cat "$C/client.crt")" "static: and its certificate as given"
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
	$PY tests/lib/xds_server.py ctl "$CPORT" set cds 7 "$ADS_CLUSTERS" >/dev/null
	$PY tests/lib/xds_server.py ctl "$CPORT" set lds 3 "$LISTENERS" >/dev/null
	$PY tests/lib/xds_server.py ctl "$CPORT" set sds 5 "[$SECRET]" >/dev/null
	xds_bootstrap "$api" "$GPORT" >"$H_DIR/ads.$MODE.json"
	: >"$H_DIR/shuntd.log"
	h_shuntd --config "$H_DIR/ads.$MODE.json" || { echo "Bail out! shuntd did not start"; exit 1; }
	h_wait_for 10 grep -q "xds: initial fetch complete" "$H_DIR/shuntd.log" ||
		diag "$(tail -5 "$H_DIR/shuntd.log")"
	for T in listeners clusters endpoints secrets; do h_ctl config dump --type $T >"$H_DIR/ads.$T"; done
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
	t_ok $? "$MODE: the five clusters dump the same from the file and from ADS (but for sds_config)" ||
		diag "$(head -20 "$H_DIR/diff")"
	is "$(jq -r '[.configs[0].dynamic_endpoint_configs[] | "\(.endpoint_config.cluster_name)@\(.version_info)"] | sort | join(",")' "$H_DIR/ads.endpoints")" \
		"ratings@7,reviews@7,secure@7" "$MODE: ADS clusters' endpoints are dynamic, at their cluster's version"
	diff <(endpoints_of <"$H_DIR/static.endpoints") <(endpoints_of <"$H_DIR/ads.endpoints") >"$H_DIR/diff"
	t_ok $? "$MODE: the endpoints dump the same from the file and from ADS" ||
		diag "$(head -20 "$H_DIR/diff")"
	is "$(jq -r '[.configs[0].dynamic_active_secrets[] | "\(.name)@\(.version_info)"] | join(",")' "$H_DIR/ads.secrets")" \
		"client-cert@5" "$MODE: the secret came by SDS, dynamic, at the pushed version"
	is "$(jq '.configs[0].static_secrets // [] | length' "$H_DIR/ads.secrets")" "0" \
		"$MODE: nothing under static_secrets"
	diff <(secrets_of <"$H_DIR/static.secrets") <(secrets_of <"$H_DIR/ads.secrets") >"$H_DIR/diff"
	t_ok $? "$MODE: the secret dumps the same (key redacted) from the file and from ADS" ||
		diag "$(head -20 "$H_DIR/diff")"
done
done_testing
