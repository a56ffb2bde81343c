# shellcheck shell=bash
# For tests and the benchmark that drive shuntd over ADS with tests/lib/xds_server.py.
#
#   xds_bootstrap API_TYPE GRPC_PORT [NODE_ID [NODE_CLUSTER]] >boot.json
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
