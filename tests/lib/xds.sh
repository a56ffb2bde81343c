# shellcheck shell=bash
# For tests and the benchmark that drive shuntd over ADS with tests/lib/xds_server.py.
#
#   xds_bootstrap API_TYPE GRPC_PORT [NODE_ID [NODE_CLUSTER]] >boot.json
#   xds_server_start DIR [STATE_FILE [GRPC_PORT]]   sets XDS_PID, GPORT and CPORT
#   xds_ctl WORDS...                                  the running server's control port
#
# prints an Envoy bootstrap whose listeners and clusters all come over ADS (GRPC: state of the
# world, DELTA_GRPC: delta) from 127.0.0.1:GRPC_PORT, through a static cluster named "xds".
xds_bootstrap() {
	local api=$1 port=$2 id=${3:-sidecar~10.77.0.2~a.default~default.svc.cluster.local}
	local cluster=${4:-a.default}
	cat <<EOB
{"node": {"id": "$id", "cluster": "$cluster"},
 "dynamic_resources": {"lds_config": {"ads": {}}, "cds_config": {"ads": {}},
   "ads_config": {"api_type": "$api", "transport_api_version": "V3",
     "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]}},
 "static_resources": {"clusters": [{"name": "xds", "type": "STATIC", "connect_timeout": "1s",
   "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [{"endpoint":
     {"address": {"socket_address": {"address": "127.0.0.1", "port_value": $port}}}}]}]}}]}}
EOB
}

# Starts tests/lib/xds_server.py in the background (killed by pods.sh's cleanup when H_PIDS is
# in use); its ports are written to DIR/xds.ports. 1 if it did not come up.
xds_server_start() {
	local dir=$1 state=${2:-} port=${3:-0}
	: >"$dir/xds.ports"
	/usr/bin/python3 tests/lib/xds_server.py serve build/xds/closure.pb "$port" $state \
		>"$dir/xds.ports" 2>>"$dir/xds.err" &
	XDS_PID=$!
	H_PIDS+=("$XDS_PID")
	for _ in $(seq 1 100); do
		[ -s "$dir/xds.ports" ] && break
		sleep 0.05
	done
	read -r GPORT CPORT <"$dir/xds.ports"
	[ -n "${GPORT:-}" ]
}
xds_ctl() { /usr/bin/python3 tests/lib/xds_server.py ctl "$CPORT" "$@"; }
