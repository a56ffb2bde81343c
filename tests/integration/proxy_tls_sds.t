#!/usr/bin/env bash
# TLS termination whose certificate comes over ADS (SDS): the listener arrives first and its
# chain is not ready (connections refused, the log names the secret), the secret arrives and the
# same listener completes handshakes with it, a rotated secret is what new handshakes present,
# and a secret that is not a PEM certificate is NACKed and changes nothing.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh
. tests/lib/xds.sh

PY=/usr/bin/python3
[ -f build/xds/closure.pb ] || { echo "Bail out! run make (needs build/xds/closure.pb)"; exit 1; }
h_init
PKI=$H_DIR/pki
mkdir -p "$H_DIR/www" "$PKI"
echo hello >"$H_DIR/www/index.html"
(
	cd "$PKI" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
		-subj /CN=ca -keyout ca.key -out ca.crt 2>/dev/null || exit 1
	for n in one two; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$n" \
			-keyout "$n.key" -out "$n.csr" 2>/dev/null &&
			echo "subjectAltName=DNS:web.test,URI:spiffe://cluster.local/ns/default/sa/$n" >"$n.ext" &&
			openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
				-extfile "$n.ext" -out "$n.crt" 2>/dev/null || exit 1
	done
) || { echo "Bail out! openssl could not make the certificates"; exit 1; }

read -r P WPORT < <($PY -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
$PY -m http.server "$WPORT" --bind 127.0.0.1 --directory "$H_DIR/www" >/dev/null 2>&1 &
H_PIDS+=($!)
h_wait_for 5 sh -c "ss -ltn | grep -q '127.0.0.1:$WPORT '"

CLUSTERS="[{\"name\":\"web\",\"type\":\"STATIC\",\"connect_timeout\":\"1s\",\"load_assignment\":{\"cluster_name\":\"web\",\"endpoints\":[{\"lb_endpoints\":[{\"endpoint\":{\"address\":{\"socket_address\":{\"address\":\"127.0.0.1\",\"port_value\":$WPORT}}}}]}]}}]"
LISTENERS="[{\"name\":\"tls\",\"address\":{\"socket_address\":{\"address\":\"127.0.0.1\",\"port_value\":$P}},\"filter_chains\":[{\"transport_socket\":{\"name\":\"envoy.transport_sockets.tls\",\"typed_config\":{\"@type\":\"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\",\"common_tls_context\":{\"tls_certificate_sds_secret_configs\":[{\"name\":\"web-cert\",\"sds_config\":{\"ads\":{},\"resource_api_version\":\"V3\"}}]}}},\"filters\":[{\"name\":\"envoy.filters.network.tcp_proxy\",\"typed_config\":{\"@type\":\"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\",\"stat_prefix\":\"tls\",\"cluster\":\"web\"}}]}]}]"
secret() { # NAME CERT KEY: a tls_certificate secret with inline PEM
	$PY -c 'import json, sys
print(json.dumps([{"name": sys.argv[1], "tls_certificate": {
    "certificate_chain": {"inline_string": open(sys.argv[2]).read()},
    "private_key": {"inline_string": open(sys.argv[3]).read()}}}]))' "$@"
}
get() { curl --noproxy "*" -s -m 3 --resolve "web.test:$P:127.0.0.1" --cacert "$PKI/ca.crt" "https://web.test:$P/"; }
subject() {
	timeout 5 openssl s_client -connect "127.0.0.1:$P" -servername web.test -CAfile "$PKI/ca.crt" \
		</dev/null 2>/dev/null | sed -n 's/^subject=.*CN *= *\([^ ,]*\).*/\1/p'
}

xds_server_start "$H_DIR" || { echo "Bail out! the xDS server did not start"; exit 1; }
xds_ctl set cds 1 "$CLUSTERS" >/dev/null
xds_ctl set lds 1 "$LISTENERS" >/dev/null
xds_bootstrap GRPC "$GPORT" >"$H_DIR/boot.json"
h_shuntd --config "$H_DIR/boot.json" || { echo "Bail out! shuntd did not start"; exit 1; }
h_wait_for 10 sh -c "ss -ltn | grep -q '127.0.0.1:$P '"

h_wait_for 5 grep -q 'SDS secret "web-cert" has not arrived' "$H_DIR/shuntd.log"
t_ok $? "the listener is there before its secret, and the log names the secret it waits for"
is "$(get)" "" "until the secret arrives the chain refuses connections"

xds_ctl set sds 1 "$(secret web-cert "$PKI/one.crt" "$PKI/one.key")" >/dev/null
h_wait_for 10 sh -c "curl --noproxy '*' -sf -m 2 --resolve web.test:$P:127.0.0.1 --cacert '$PKI/ca.crt' https://web.test:$P/ >/dev/null"
is "$(get)" "hello" "the secret arrives over SDS: the same listener terminates TLS with it"
is "$(subject)" "one" "and presents its certificate"

xds_ctl set sds 2 "$(secret web-cert "$PKI/two.crt" "$PKI/two.key")" >/dev/null
h_wait_for 10 sh -c "[ \"\$(timeout 5 openssl s_client -connect 127.0.0.1:$P -servername web.test </dev/null 2>/dev/null | sed -n 's/^subject=.*CN *= *\\([^ ,]*\\).*/\\1/p')\" = two ]"
is "$(subject)" "two" "a rotated secret is what new handshakes present"
is "$(get)" "hello" "and traffic goes on"

xds_ctl set sds 3 "[{\"name\":\"web-cert\",\"tls_certificate\":{\"certificate_chain\":{\"inline_string\":\"not a certificate\"},\"private_key\":{\"inline_string\":\"nor a key\"}}}]" >/dev/null
h_wait_for 10 grep -q 'certificate_chain: not a PEM certificate' "$H_DIR/shuntd.log"
like "$(grep 'not a PEM certificate' "$H_DIR/shuntd.log" | head -1)" \
	'tls_certificate_sds_secret_configs\[0\]\.\(secret "web-cert"\)\.tls_certificate\.certificate_chain' \
	"a secret that is not PEM is NACKed naming the secret and the field"
is "$(subject)" "two" "and the certificate in force stays"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
