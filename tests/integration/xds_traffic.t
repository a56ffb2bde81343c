#!/usr/bin/env bash
# Issue 4, test 2 (and 1 and 4 through shuntd itself): shuntd driven over ADS by an independent
# xDS server (Python grpcio, tests/lib/xds_server.py). A captured pod's request follows the
# config: routed to the endpoints EDS names; after an EDS change new requests go to the new
# endpoints while one in flight finishes; an invalid listener is NACKed and traffic keeps the
# last good config; config dump shows versions and the rejection; counters (updates accepted and
# rejected per type, the time of the last accepted one); the node the server sees (the
# bootstrap's id, --service-cluster's cluster); the server dies and comes back, shuntd
# reconnects and traffic never stops. SotW, then delta.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh
. tests/lib/xds.sh

PY=/usr/bin/python3
DESC=build/xds/closure.pb
[ -f "$DESC" ] || { echo "Bail out! run make (needs $DESC)"; exit 1; }

h_init
h_pod a
h_pod b
B=$(h_ip b)
for v in v1 v2; do
	mkdir -p "$H_DIR/$v"
	echo "$v" >"$H_DIR/$v/index.html"
	head -c 2097152 /dev/zero >"$H_DIR/$v/blob"
done
h_bg b /usr/bin/python3 -m http.server 8001 --directory "$H_DIR/v1"
h_bg b /usr/bin/python3 -m http.server 8002 --directory "$H_DIR/v2"
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8002 '"

SERVER=
start_server() { # [GRPC_PORT]
	xds_server_start "$H_DIR" "$H_DIR/state.$MODE" "${1:-0}"
	SERVER=$XDS_PID
}
stop_server() { kill -9 "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=; }
ctl() { xds_ctl "$@"; }

HCM='"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"'
ROUTER='{"name":"envoy.filters.http.router","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}'
TCP='"@type":"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"'
virtual() { # NAME PORT CLUSTER
	printf '{"name":"%s","address":{"socket_address":{"address":"0.0.0.0","port_value":%s}},"use_original_dst":true,"default_filter_chain":{"filters":[{"name":"envoy.filters.network.tcp_proxy","typed_config":{%s,"stat_prefix":"%s","cluster":"%s"}}]}}' "$1" "$2" "$TCP" "$3" "$3"
}
listener() { # NAME PORT ROUTE
	printf '{"name":"%s","address":{"socket_address":{"address":"0.0.0.0","port_value":%s}},"bind_to_port":false,"filter_chains":[{"filters":[{"name":"envoy.filters.network.http_connection_manager","typed_config":{%s,"stat_prefix":"x","rds":{"route_config_name":"%s","config_source":{"ads":{}}},"http_filters":[%s]}}]}]}' "$1" "$2" "$HCM" "$3" "$ROUTER"
}
route() { # NAME CLUSTER
	printf '{"name":"%s","virtual_hosts":[{"name":"reviews","domains":["*"],"routes":[{"match":{"prefix":"/"},"route":{"cluster":"%s"}}]}]}' "$1" "$2"
}
orig_dst() { printf '{"name":"%s","type":"ORIGINAL_DST","lb_policy":"CLUSTER_PROVIDED"%s}' "$1" "$2"; }
eds_cluster() { printf '{"name":"%s","type":"EDS","eds_cluster_config":{"eds_config":{"ads":{}}}}' "$1"; }
assignment() { # CLUSTER ADDR PORT
	printf '{"cluster_name":"%s","endpoints":[{"lb_endpoints":[{"endpoint":{"address":{"socket_address":{"address":"%s","port_value":%s}}}}]}]}' "$1" "$2" "$3"
}
CLUSTERS="[$(orig_dst PassthroughCluster ''),$(orig_dst InboundPassthroughCluster ',"upstream_bind_config":{"source_address":{"address":"127.0.0.6","port_value":0}}'),$(eds_cluster reviews)]"
LISTENERS="[$(virtual virtualOutbound 15001 PassthroughCluster),$(virtual virtualInbound 15006 InboundPassthroughCluster),$(listener 0.0.0.0_9080 9080 9080)]"
VIP=http://10.96.0.10:9080
get() { h_exec a curl -sf -m 5 "$VIP/"; }
metric() { curl -s "http://127.0.0.1:$APORT/stats/prometheus" | grep "^shunt_$1" | awk '{print $2}'; }
accepted() { metric "xds_updates_accepted_total{type=\"$1\"}"; }
last_update() { metric "xds_last_update_seconds{type=\"$1\"}"; }
# "TYPE=N" for each type, N the updates accepted (or "-" if the counter is missing).
accepted_all() {
	local t out=
	for t in listeners routes clusters endpoints secrets; do out="$out $t=$(accepted $t)"; done
	echo "${out# }"
}
# The types whose last accepted update is not within [FROM, TO] (epoch seconds).
stale_types() { # FROM TO TYPES...
	local from=$1 to=$2 t v
	shift 2
	for t in "$@"; do
		v=$(last_update "$t")
		[ -n "$v" ] && [ "$v" -ge "$from" ] && [ "$v" -le "$to" ] || printf '%s=%s ' "$t" "${v:--}"
	done
}

for MODE in sotw delta; do
	api=GRPC
	[ "$MODE" = delta ] && api=DELTA_GRPC
	rm -f "$H_DIR/state.$MODE"
	start_server
	[ -n "$GPORT" ] || { echo "Bail out! the xDS server did not start: $(cat "$H_DIR/xds.err")"; exit 1; }
	ctl set cds 1 "$CLUSTERS" >/dev/null
	ctl set eds 1 "[$(assignment reviews "$B" 8001)]" >/dev/null
	ctl set lds 1 "$LISTENERS" >/dev/null
	ctl set rds 1 "[$(route 9080 reviews)]" >/dev/null
	xds_bootstrap "$api" "$GPORT" >"$H_DIR/boot.$MODE.json"
	APORT=$((20000 + RANDOM % 20000))
	: >"$H_DIR/shuntd.log"
	t_start=$(date +%s)
	h_shuntd --config "$H_DIR/boot.$MODE.json" --admin-port "$APORT" --admin-address 127.0.0.1 \
		--service-cluster "traffic.$MODE" || { echo "Bail out! shuntd did not start"; exit 1; }
	h_wait_for 10 grep -q "xds: initial fetch complete" "$H_DIR/shuntd.log" ||
		diag "$(tail -5 "$H_DIR/shuntd.log")"
	is "$(ctl requests | jq -r '.[0] | "\(.node | split("/")[0]) \(.node_cluster)"')" \
		"sidecar~10.77.0.2~a.default~default.svc.cluster.local traffic.$MODE" \
		"$MODE: the server sees the bootstrap's node id and --service-cluster's cluster"
	is "$(accepted_all)" "listeners=1 routes=1 clusters=1 endpoints=1 secrets=0" \
		"$MODE: updates accepted, per type: one of each type pushed, no secrets"
	is "$(stale_types "$t_start" "$(date +%s)" listeners routes clusters endpoints)" "" \
		"$MODE: last update time of each type pushed: since shuntd started"
	is "$(last_update secrets)" "0" "$MODE: last update time of secrets: never"

	is "$(get)" "v1" "$MODE: pod A -> VIP routed to the endpoint EDS names"
	is "$(metric xds_connected)" "1" "$MODE: shunt_xds_connected 1"
	is "$(metric 'xds_resources{type="clusters"}')" "4" "$MODE: 4 clusters active (3 from ADS, the xds one static)"

	# An HTTP download in flight while EDS moves the service.
	h_exec a curl -sf -m 20 --limit-rate 1M -o "$H_DIR/inflight" "$VIP/blob" &
	inflight=$!
	sleep 0.5
	t_eds=$(date +%s)
	ctl set eds 2 "[$(assignment reviews "$B" 8002)]" >/dev/null
	h_wait_for 5 sh -c "[ \"\$(h_exec a curl -sf -m 2 $VIP/ 2>/dev/null)\" = v2 ]" 2>/dev/null
	is "$(get)" "v2" "$MODE: after the EDS change, new requests reach the new endpoint"
	is "$(accepted_all)" "listeners=1 routes=1 clusters=1 endpoints=2 secrets=0" \
		"$MODE: the EDS change is one more endpoints update accepted, nothing else"
	is "$(stale_types "$t_eds" "$(date +%s)" endpoints)" "" \
		"$MODE: last update time of endpoints: the EDS change"
	wait "$inflight"
	is "$?/$(stat -c %s "$H_DIR/inflight")" "0/2097152" "$MODE: the request in flight finished on the old one"

	# An invalid listener: NACKed, nothing changes.
	ctl set lds 2 "[$(virtual virtualOutbound 15001 PassthroughCluster),$(virtual virtualInbound 15006 InboundPassthroughCluster),$(listener 0.0.0.0_9080 0 9080)]" >/dev/null
	h_wait_for 5 sh -c "ctl() { $PY tests/lib/xds_server.py ctl $CPORT \"\$@\"; }; ctl requests | grep -q port"
	like "$(ctl requests | jq -r '.[] | select(.error != "" and .error != null) | .error' | tail -1)" \
		'0.0.0.0_9080.*port' "$MODE: the bad listener is NACKed, naming it and the port"
	is "$(get)" "v2" "$MODE: traffic keeps flowing on the last good config"
	cmp_ok "$(metric 'xds_updates_rejected_total{type="listeners"}')" -ge 1 \
		"$MODE: the rejection is counted"
	is "$(accepted listeners)" "1" "$MODE: and not as an update accepted"
	dump=$(h_ctl config dump --type listeners)
	like "$(jq -r '.configs[0].dynamic_listeners[] | select(.name == "0.0.0.0_9080") | .active_state.version_info' <<<"$dump")" \
		'^1$' "$MODE: config dump: the listener still at version 1"
	like "$(jq -r '.configs[0].dynamic_listeners[] | select(.name == "0.0.0.0_9080") | .error_state.details' <<<"$dump")" \
		'port' "$MODE: config dump: and the rejected update with its reason"

	# The control plane goes away and comes back: traffic never stops; shuntd resyncs.
	stop_server
	is "$(get)" "v2" "$MODE: with the xDS server gone, traffic goes on"
	h_wait_for 5 sh -c "[ \"\$(curl -s http://127.0.0.1:$APORT/stats/prometheus | awk '/^shunt_xds_connected/ {print \$2}')\" = 0 ]"
	is "$(metric xds_connected)" "0" "$MODE: shunt_xds_connected 0"
	start_server "$GPORT"
	ctl set lds 3 "$LISTENERS" >/dev/null
	ctl set eds 3 "[$(assignment reviews "$B" 8001)]" >/dev/null
	h_wait_for 15 sh -c "[ \"\$(h_exec a curl -sf -m 2 $VIP/ 2>/dev/null)\" = v1 ]" 2>/dev/null
	is "$(get)" "v1" "$MODE: reconnected and resynced: the new EDS applies"
	is "$(metric xds_connected)" "1" "$MODE: connected again"
	h_shuntd_stop
	is "$?" "0" "$MODE: shuntd stops cleanly"
	stop_server
done
done_testing
