#!/usr/bin/env bash
# TLS to the control plane: the ADS cluster's UpstreamTlsContext (trusted CA file, SNI) makes
# shuntd speak TLS with ALPN h2 to tests/lib/xds_server.py serving gRPC's own TLS, with certs
# made here by openssl. A full sync over TLS; a wrong CA and a name the certificate does not
# carry are refused, counted and retried while shuntd keeps its static config; an unreadable CA
# file is a configuration error at start.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh
. tests/lib/xds.sh

PY=/usr/bin/python3
DESC=build/xds/closure.pb
[ -f "$DESC" ] || { echo "Bail out! run make (needs $DESC)"; exit 1; }
h_init

# Two CAs; the server's certificate is signed by the first and names xds.test and 127.0.0.1.
mkcerts() {
	local d=$H_DIR/pki
	mkdir -p "$d"
	for ca in ca other; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj "/CN=shunt test $ca" -keyout "$d/$ca.key" -out "$d/$ca.pem" 2>/dev/null
	done
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=xds.test" \
		-keyout "$d/srv.key" -out "$d/srv.csr" 2>/dev/null
	printf 'subjectAltName=DNS:xds.test,IP:127.0.0.1\n' >"$d/ext"
	openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/ext" -out "$d/srv.pem" 2>/dev/null
}
mkcerts
t_ok $? "openssl made a CA, another CA and a server certificate"

# The bootstrap of tests/lib/xds.sh with a tls transport socket on its "xds" cluster.
tls_bootstrap() { # API PORT CA_FILE SNI
	xds_bootstrap "$1" "$2" | jq --arg ca "$3" --arg sni "$4" '
	.static_resources.clusters[0].transport_socket = {name: "envoy.transport_sockets.tls",
	  typed_config: {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
	    sni: $sni, common_tls_context: {validation_context: {trusted_ca: {filename: $ca}}}}}
	| .static_resources.clusters += [{name: "static_only", type: "STATIC",
	    load_assignment: {cluster_name: "static_only", endpoints: []}}]'
}
CLUSTERS='[{"name":"pushed","type":"STATIC","load_assignment":{"cluster_name":"pushed","endpoints":[{"lb_endpoints":[{"endpoint":{"address":{"socket_address":{"address":"127.0.0.1","port_value":9}}}}]}]}}]'
metric() { curl -s "http://127.0.0.1:$APORT/stats/prometheus" | grep "^shunt_$1 " | awk '{print $2}'; }
clusters() { h_ctl config dump --type clusters | jq -r '[.configs[0] | (.static_clusters // [])[].cluster.name, (.dynamic_active_clusters // [])[].cluster.name] | sort | join(",")'; }

: >"$H_DIR/ports"
XDS_TLS_CERT=$H_DIR/pki/srv.pem XDS_TLS_KEY=$H_DIR/pki/srv.key \
	$PY tests/lib/xds_server.py serve "$DESC" 0 >"$H_DIR/ports" 2>>"$H_DIR/server.err" &
H_PIDS+=("$!")
h_wait_for 5 test -s "$H_DIR/ports"
read -r GPORT CPORT <"$H_DIR/ports"
[ -n "${GPORT:-}" ] || { echo "Bail out! the xDS server did not start: $(cat "$H_DIR/server.err")"; exit 1; }
$PY tests/lib/xds_server.py ctl "$CPORT" set cds 5 "$CLUSTERS" >/dev/null
$PY tests/lib/xds_server.py ctl "$CPORT" set lds 5 "[]" >/dev/null

for MODE in sotw delta; do
	api=GRPC
	[ "$MODE" = delta ] && api=DELTA_GRPC
	tls_bootstrap "$api" "$GPORT" "$H_DIR/pki/ca.pem" xds.test >"$H_DIR/good.json"
	APORT=$((20000 + RANDOM % 20000))
	: >"$H_DIR/shuntd.log"
	h_shuntd --config "$H_DIR/good.json" --admin-port "$APORT" --admin-address 127.0.0.1 ||
		{ echo "Bail out! shuntd did not start"; exit 1; }
	h_wait_for 10 grep -q "xds: initial fetch complete" "$H_DIR/shuntd.log"
	t_ok $? "$MODE: initial fetch over TLS completes" || diag "$(tail -5 "$H_DIR/shuntd.log")"
	is "$(metric xds_connected)" "1" "$MODE: shunt_xds_connected 1 over TLS"
	is "$(clusters)" "pushed,static_only,xds" "$MODE: the pushed cluster is active next to the static ones"
	$PY tests/lib/xds_server.py ctl "$CPORT" requests >"$H_DIR/reqs"
	# SotW ACKs carry the version; delta ACKs the nonce alone.
	ok=$(jq --arg k "$MODE" '[.[] | select(.kind == $k and .type == "cds" and .nonce != "" and
		.error == null and (.kind == "delta" or .version == "5"))] | length' "$H_DIR/reqs")
	[ "${ok:-0}" -ge 1 ] 2>/dev/null
	t_ok $? "$MODE: the CDS push was ACKed (nonce, version 5) over TLS" || diag "$(head -c 600 "$H_DIR/reqs")"
	h_shuntd_stop >/dev/null
done

# Refused: the server's chain is not signed by this CA, or does not name the SNI host.
for CASE in "other.pem xds.test certificate verify failed" "ca.pem wrong.test certificate verify failed"; do
	set -- $CASE
	tls_bootstrap GRPC "$GPORT" "$H_DIR/pki/$1" "$2" >"$H_DIR/bad.json"
	APORT=$((20000 + RANDOM % 20000))
	: >"$H_DIR/shuntd.log"
	h_shuntd --config "$H_DIR/bad.json" --admin-port "$APORT" --admin-address 127.0.0.1 ||
		{ echo "Bail out! shuntd did not start"; exit 1; }
	h_wait_for 10 sh -c "[ \"\$(curl -s http://127.0.0.1:$APORT/stats/prometheus | awk '/^shunt_xds_connect_failures_total/ {print \$2}')\" -ge 2 ]"
	t_ok $? "$1/$2: refused and retried (connect failures counted: $(metric xds_connect_failures_total))"
	is "$(metric xds_connects_total)" "0" "$1/$2: never connected"
	grep -q "ads: stream closed.*TLS.*$3" "$H_DIR/shuntd.log"
	t_ok $? "$1/$2: one log line says why" || diag "$(grep 'ads:' "$H_DIR/shuntd.log" | tail -2)"
	is "$(clusters)" "static_only,xds" "$1/$2: shuntd keeps serving its static config"
	h_shuntd_stop >/dev/null
done

# An unreadable CA file at start: exit 1, naming the field.
tls_bootstrap GRPC "$GPORT" "$H_DIR/pki/missing.pem" xds.test >"$H_DIR/missing.json"
out=$("$H_BIN/shuntd" --cgroup "$H_CG" --bpffs-dir "$H_DIR/bpf" --run-dir "$H_DIR/run2" \
	--admin-port 0 --config "$H_DIR/missing.json" 2>&1)
is "$?" "1" "unreadable CA file: exit 1"
like "$out" "trusted_ca" "unreadable CA file: the error names validation_context.trusted_ca"
done_testing
