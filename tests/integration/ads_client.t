#!/usr/bin/env bash
# agent/ads.c against an independent xDS server (Python grpcio, tests/lib/xds_server.py), in
# state-of-the-world and delta modes: initial fetch order and ACKs, updates and removals,
# NACKs (bad resource, refused by apply, unknown type), garbage, oversized and too deeply nested
# messages, and a server restart with reconnect, backoff and resync at the known versions.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh

PROBE=${ADS_PROBE:-build/bin/ads_probe} # ADS_PROBE: e.g. a build with sanitizers
DESC=build/xds/closure.pb
PY=/usr/bin/python3
[ -x "$PROBE" ] && [ -f "$DESC" ] || { echo "Bail out! run make (needs $PROBE and $DESC)"; exit 1; }
DIR=$(mktemp -d /tmp/shunt-ads.XXXXXX)
SERVER=
PROBE_PID=
cleanup() {
	[ -n "$PROBE_PID" ] && kill "$PROBE_PID" 2>/dev/null && wait "$PROBE_PID" 2>/dev/null
	[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# start_server [PORT]: sets GPORT (gRPC) and CPORT (control); state persists in $DIR/state.
start_server() {
	: >"$DIR/ports"
	$PY tests/lib/xds_server.py serve "$DESC" "${1:-0}" "$DIR/state.$MODE" >"$DIR/ports" \
		2>>"$DIR/server.err" &
	SERVER=$!
	for _ in $(seq 1 100); do
		[ -s "$DIR/ports" ] && break
		sleep 0.05
	done
	read -r GPORT CPORT <"$DIR/ports"
}
stop_server() {
	kill -9 "$SERVER" 2>/dev/null
	wait "$SERVER" 2>/dev/null
	SERVER=
}
ctl() { $PY tests/lib/xds_server.py ctl "$CPORT" "$@"; }
# One line per request the server got: "TYPE v=VERSION n=NONCE names=A,B" (SotW) or
# "TYPE n=NONCE +SUB -UNSUB init=NAME:VER" (delta), then " node" and " err=..." if present.
requests() {
	ctl requests | $PY -c '
import json, sys
for r in json.load(sys.stdin):
    if r["kind"] == "sotw":
        s = "%s v=%s n=%s names=%s" % (r["type"], r["version"], r["nonce"], ",".join(r["names"]))
    else:
        s = "%s n=%s +%s -%s init=%s" % (r["type"], r["nonce"], ",".join(r["subscribe"]),
            ",".join(r["unsubscribe"]), ",".join("%s:%s" % kv for kv in sorted(r["initial"].items())))
    if r["node"]:
        s += " node=" + r["node"]
    if r["error"]:
        s += " err=" + r["error"]
    print(s)'
}
# wait_for PATTERN [FILE] [SECONDS]: until a line of the probe's output matches.
wait_for() {
	local i
	for i in $(seq 1 $((${3:-10} * 20))); do
		grep -qE "$1" "${2:-$OUT}" && return 0
		sleep 0.05
	done
	return 1
}
count() { grep -cE "$1" "$OUT"; }
# The node's cluster and metadata as the server decoded them from the first request on a stream.
first_node() { ctl requests | jq -cS '.[0] | [.node_cluster, .node_metadata]'; }
WANT_NODE='["web.default",{"ISTIO_VERSION":"1.21.0","LABELS":{"app":"web"}}]'
last_apply() { grep '^apply ' "$OUT" | tail -1 | cut -d' ' -f3-; }

start_probe() {
	sed "s/@PORT@/$GPORT/" >"$DIR/boot.json" <<'EOF'
{
  "node": {"id": "sidecar~10.0.0.7~web.default~default.svc.cluster.local", "cluster": "web.default",
           "metadata": {"ISTIO_VERSION": "1.21.0", "LABELS": {"app": "web"}},
           "locality": {"region": "r1", "zone": "z1"}},
  "dynamic_resources": {
    "lds_config": {"ads": {}}, "cds_config": {"ads": {}},
    "ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
      "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]}
  },
  "static_resources": {"clusters": [{"name": "xds", "type": "STATIC",
    "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
      {"socket_address": {"address": "127.0.0.1", "port_value": @PORT@}}}}]}]}}]}
}
EOF
	OUT=$DIR/probe.$MODE
	"$PROBE" "--$MODE" --max 1048576 --reject evil "$@" "$DIR/boot.json" >"$OUT" 2>&1 &
	PROBE_PID=$!
}

eds_cluster() { printf '{"name":"%s","type":"EDS","eds_cluster_config":{"eds_config":{"ads":{}}}}' "$1"; }
assignment() {
	printf '{"cluster_name":"%s","endpoints":[{"lb_endpoints":[{"endpoint":{"address":{"socket_address":{"address":"%s","port_value":80}}}}]}]}' "$1" "$2"
}
listener() { # NAME PORT ROUTE
	printf '{"name":"%s","address":{"socket_address":{"address":"0.0.0.0","port_value":%s}},"filter_chains":[{"filters":[{"name":"envoy.filters.network.http_connection_manager","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager","stat_prefix":"x","rds":{"route_config_name":"%s","config_source":{"ads":{}}},"http_filters":[{"name":"envoy.filters.http.router","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}' "$1" "$2" "$3"
}
route() { # NAME CLUSTER
	printf '{"name":"%s","virtual_hosts":[{"name":"v","domains":["*"],"routes":[{"match":{"prefix":"/"},"route":{"cluster":"%s"}}]}]}' "$1" "$2"
}
tls_listener() { # NAME PORT SECRET: a TCP listener terminating TLS with a certificate from SDS
	printf '{"name":"%s","address":{"socket_address":{"address":"0.0.0.0","port_value":%s}},"filter_chains":[{"transport_socket":{"name":"envoy.transport_sockets.tls","typed_config":{"@type":"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext","common_tls_context":{"tls_certificate_sds_secret_configs":[{"name":"%s","sds_config":{"ads":{},"resource_api_version":"V3"}}]}}},"filters":[{"name":"envoy.filters.network.tcp_proxy","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy","stat_prefix":"t","cluster":"db"}}]}]}' "$1" "$2" "$3"
}
secret() { # NAME SERIAL: a certificate secret (apply does not load it here: any text will do)
	printf '{"name":"%s","tls_certificate":{"certificate_chain":{"inline_string":"chain %s"},"private_key":{"inline_string":"key %s"}}}' "$1" "$2" "$2"
}
static_cluster() {
	printf '{"name":"%s","type":"STATIC","load_assignment":{"cluster_name":"%s","endpoints":[{"lb_endpoints":[{"endpoint":{"address":{"socket_address":{"address":"10.0.0.9","port_value":5432}}}}]}]}}' "$1" "$1"
}

NODE=sidecar~10.0.0.7~web.default~default.svc.cluster.local/shunt/z1 # id/user_agent_name/zone
for MODE in sotw delta; do
	rm -f "$DIR/state.$MODE"
	start_server
	[ -n "$GPORT" ] || { echo "Bail out! the xDS server did not start: $(cat "$DIR/server.err")"; exit 1; }
	ctl set cds 1 "[$(eds_cluster web),$(static_cluster db)]" >/dev/null
	ctl set eds 1 "[$(assignment web 10.0.0.1)]" >/dev/null
	ctl set lds 1 "[$(listener l80 80 r80),$(tls_listener l443 443 cert)]" >/dev/null
	ctl set rds 1 "[$(route r80 web)]" >/dev/null
	ctl set sds 1 "[$(secret cert 1),$(secret unasked 1)]" >/dev/null
	start_probe

	# ---- initial fetch ----
	wait_for '^ready$'
	is "$(grep -E '^(apply|ready)' "$OUT")" "$(printf 'apply 1 cds=db@1,web@1 eds=web@1 lds=l443@1,l80@1 rds=r80@1 sds=cert@1\nready')" \
		"$MODE: one apply with all five types after the initial fetch, then ready"
	if [ $MODE = sotw ]; then
		want="cds v= n= names= node=$NODE
cds v=1 n=1 names=
eds v= n= names=web
eds v=1 n=2 names=web
lds v= n= names=
lds v=1 n=3 names=
rds v= n= names=r80
sds v= n= names=cert
rds v=1 n=4 names=r80
sds v=1 n=5 names=cert"
	else
		want="cds n= + - init= node=$NODE
cds n=1 + - init=
eds n= +web - init=
eds n=2 + - init=
lds n= + - init=
lds n=3 + - init=
rds n= +r80 - init=
sds n= +cert - init=
rds n=4 + - init=
sds n=5 + - init="
	fi
	is "$(requests)" "$want" "$MODE: CDS, EDS, LDS, then RDS and SDS for the names the listeners use, each ACKed with its version and nonce; node only first"
	is "$(first_node)" "$WANT_NODE" "$MODE: the node carries the bootstrap's cluster and metadata (a nested Struct too)"

	# ---- a secret rotated ----
	ctl set sds 2 "[$(secret cert 2)]" >/dev/null
	wait_for '^apply .* sds=cert@2' || true
	like "$(last_apply)" '^cds=db@1,web@1 eds=web@1 lds=l443@1,l80@1 rds=r80@1 sds=cert@2$' \
		"$MODE: a rotated secret is applied on its own"

	# ---- updates, additions, removals ----
	ctl set cds 2 "[$(eds_cluster web),$(eds_cluster api),$(static_cluster db)]" >/dev/null
	wait_for 'eds=api@' || true
	ctl set eds 2 "[$(assignment web 10.0.0.1),$(assignment api 10.0.0.2)]" >/dev/null
	wait_for '^apply .* eds=api@2,web@' || true
	like "$(last_apply)" '^cds=api@2,db@.,web@. eds=api@2,web@[12] lds=l443@1,l80@1 rds=r80@1 sds=cert@2$' \
		"$MODE: a cluster added over CDS, its endpoints subscribed and applied"
	ctl set lds 2 "[$(listener l81 81 r81)]" >/dev/null
	ctl set rds 2 "[$(route r81 api)]" >/dev/null
	wait_for 'rds=r81@2' || true
	like "$(last_apply)" 'lds=l81@2 rds=r81@2 sds=$' \
		"$MODE: listeners replaced: the new route table arrives; the old listeners, their table and secret are gone"
	ctl set cds 3 "[$(eds_cluster api),$(static_cluster db)]" >/dev/null
	wait_for '^apply .* cds=api@2,db@.? eds=api@2 ' || wait_for '^apply .* cds=api@[23],db@[123] eds=api@2 '
	like "$(last_apply)" '^cds=api@[23],db@[123] eds=api@2 lds=l81@2 rds=r81@2 sds=$' \
		"$MODE: a cluster removed over CDS takes its endpoints along"
	sleep 0.3
	if [ $MODE = sotw ]; then
		like "$(requests | grep '^rds' | tail -1)" '^rds v=2 n=[0-9]+ names=r81$' "$MODE: RDS now asks for r81 only"
		like "$(requests | grep '^eds' | tail -1)" '^eds v=2 n=[0-9]* names=api$' "$MODE: EDS unsubscribed from web"
		like "$(requests | grep '^sds' | tail -1)" '^sds v=2 n=[0-9]+ names=$' "$MODE: SDS unsubscribed from cert"
	else
		like "$(requests | grep '^rds n= ' | tail -1)" '^rds n= \+r81 -r80 init=$' "$MODE: RDS subscribes r81, unsubscribes r80"
		like "$(requests | grep '^eds n= ' | tail -1)" '^eds n= \+ -web init=$' "$MODE: EDS unsubscribed from web"
		like "$(requests | grep '^sds n= ' | tail -1)" '^sds n= \+ -cert init=$' "$MODE: SDS unsubscribed from cert"
	fi

	# ---- NACKs ----
	applies=$(count '^apply ')
	ctl set lds 3 "[$(listener l81 0 r81)]" >/dev/null
	wait_for '^nack lds' || true
	like "$(grep '^nack lds' "$OUT" | tail -1)" 'nack lds listener "l81".*port' "$MODE: a listener on port 0 is NACKed, naming it"
	sleep 0.3
	if [ $MODE = sotw ]; then
		like "$(requests | grep '^lds' | tail -1)" '^lds v=2 n=[0-9]+ names= err=listener "l81".*port' \
			"$MODE: the NACK carries the previous version and the reason"
	else
		like "$(requests | grep '^lds' | tail -1)" '^lds n=[0-9]+ \+ - init= err=listener "l81".*port' \
			"$MODE: the NACK carries the nonce and the reason"
	fi
	is "$(count '^apply ')" "$applies" "$MODE: nothing applied for the rejected update"
	ctl set cds 4 "[$(eds_cluster api),$(static_cluster db),$(eds_cluster evil)]" >/dev/null
	wait_for '^nack cds' || true
	like "$(grep '^nack cds' "$OUT" | tail -1)" 'refused by ads_probe --reject' "$MODE: a config refused by apply is NACKed with its reason"
	ctl set lds 4 "[$(listener l81 81 r81)]" >/dev/null
	ctl set cds 5 "[$(eds_cluster api),$(static_cluster db)]" >/dev/null
	wait_for '^apply .* cds=api@[2-5],db@[1-5] .*lds=l81@4' || true
	like "$(last_apply)" 'lds=l81@4 rds=r81@2' "$MODE: a good update after NACKs applies"
	ctl unknown >/dev/null
	wait_for '^nack unknown' || true
	like "$(grep '^nack unknown' "$OUT")" 'test.Nobody.* is not a resource type shuntd consumes' "$MODE: an unknown type URL is NACKed"

	# ---- garbage, oversized, deep ----
	applies=$(count '^apply ')
	ctl raw ffffffff0a >/dev/null
	wait_for 'does not decode' || true
	like "$(grep 'does not decode' "$OUT")" '^log ads: a response of 5 bytes does not decode as a (Delta)?DiscoveryResponse; resetting the stream$' \
		"$MODE: undecodable bytes: a clear error and a stream reset"
	wait_for 'connected.*' >/dev/null
	for _ in $(seq 1 40); do [ "$(count '^log ads: connected')" -ge 2 ] && break; sleep 0.1; done
	is "$(count '^log ads: connected')" 2 "$MODE: reconnected after the reset"
	ctl big 2000000 >/dev/null
	wait_for 'larger than the limit' || true
	like "$(grep 'stream closed' "$OUT" | tail -1)" 'status 8: received message larger than the limit of 1048576 bytes' \
		"$MODE: an oversized message: RESOURCE_EXHAUSTED and a reconnect"
	for _ in $(seq 1 40); do [ "$(count '^log ads: connected')" -ge 3 ] && break; sleep 0.1; done
	ctl deep 1000 >/dev/null
	wait_for 'nests deeper' || true
	like "$(grep 'nests deeper' "$OUT")" 'nests deeper than 64 messages; resetting the stream' \
		"$MODE: a message nested 1000 deep is refused before decoding"
	for _ in $(seq 1 40); do [ "$(count '^log ads: connected')" -ge 4 ] && break; sleep 0.1; done
	is "$(count '^log ads: connected')" 4 "$MODE: reconnected each time"
	sleep 0.3
	is "$(count '^apply ')" "$applies" "$MODE: the config is unchanged through all of it"

	# ---- server restart: backoff, resync with known versions ----
	before=$(last_apply)
	closes=$(grep -c 'reconnecting in' "$OUT")
	stop_server
	sleep 2.5
	start_server "$GPORT"
	for _ in $(seq 1 100); do [ "$(count '^log ads: connected')" -ge 5 ] && break; sleep 0.1; done
	is "$(count '^log ads: connected')" 5 "$MODE: reconnected to the restarted server"
	delays=$(grep -o 'reconnecting in [0-9]*' "$OUT" | tail -n +$((closes + 1)) | awk '{print $3}')
	first=$(echo "$delays" | head -1)
	third=$(echo "$delays" | sed -n 3p)
	ok "$MODE: exponential backoff while the server is down ($(echo $delays))" \
		test -n "$third" -a "${third:-0}" -gt "${first:-0}"
	sleep 0.5
	if [ $MODE = sotw ]; then
		like "$(requests | head -3 | tr '\n' ';')" "^cds v=5 n= names= node=$NODE;eds v=2 n= names=api;lds v=4 n= names=;" \
			"$MODE: resubscribed with the known versions"
	else
		like "$(requests | head -3 | tr '\n' ';')" "^cds n= \+ - init=api:2,db:1 node=$NODE;eds n= \+api - init=api:2;lds n= \+ - init=l81:4;" \
			"$MODE: resubscribed with initial_resource_versions"
	fi
	is "$(first_node)" "$WANT_NODE" "$MODE: the new stream's first request carries the node's cluster and metadata again"
	is "$(last_apply)" "$before" "$MODE: the config after the resync is the one before"
	kill "$PROBE_PID"
	wait "$PROBE_PID"
	is "$?" 0 "$MODE: the probe exits cleanly"
	PROBE_PID=
	like "$(grep '^stats' "$OUT")" '^stats connects=5 disconnects=4 connect_failures=[1-9][0-9]* ready=1 ' "$MODE: counters"
	stop_server
done

# ---- scale: 10,000 clusters with 100,000 endpoints, then one assignment changed ----
now_ms() { date +%s%3N; }
for MODE in sotw delta; do
	rm -f "$DIR/state.$MODE"
	start_server
	ctl set lds 1 '[]' >/dev/null
	start_probe --max 0
	wait_for '^ready$'
	t0=$(now_ms)
	ctl scale 10000 10 s1 >/dev/null
	wait_for '^apply .* cds=#10000 eds=#10000 ' "$OUT" 60
	t1=$(now_ms)
	like "$(last_apply)" '^cds=#10000 eds=#10000 lds= rds= sds=$' \
		"$MODE: 10000 clusters and 10000 assignments of 10 endpoints applied in $((t1 - t0)) ms"
	ok "$MODE: ... in less than 20 s (server side included)" test $((t1 - t0)) -lt 20000
	applies=$(count '^apply ')
	t0=$(now_ms)
	ctl touch eds c5 s2 >/dev/null
	for _ in $(seq 1 400); do [ "$(count '^apply ')" -gt "$applies" ] && break; sleep 0.05; done
	t1=$(now_ms)
	is "$(count '^apply ')" $((applies + 1)) "$MODE: one changed assignment applied in $((t1 - t0)) ms"
	sleep 0.3
	if [ $MODE = sotw ]; then
		like "$(requests | grep '^eds' | tail -1)" '^eds v=s2 n=[0-9]+ names=c0,c1,' "$MODE: ACKed"
	else
		like "$(requests | grep '^eds' | tail -1)" '^eds n=[0-9]+ \+ - init=$' "$MODE: ACKed"
	fi
	kill "$PROBE_PID"
	wait "$PROBE_PID"
	PROBE_PID=
	like "$(grep '^stats' "$OUT")" 'cds=[0-9]+/0/10001 eds=[0-9]+/0/10000 ' "$MODE: counters at scale (the static ADS cluster included)"
	stop_server
done
done_testing
