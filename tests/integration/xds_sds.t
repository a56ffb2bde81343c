#!/usr/bin/env bash
# Issue 4, test 1 for Secrets, end to end through shuntd: a TLS listener pushed over LDS names its
# certificate by SDS; until the secret exists its chain refuses connections and the log names
# the secret; the secret arrives over ADS and is served; a rotated secret is served to
# new connections while a download in flight on the old one finishes; a secret whose key does
# not match its certificate is NACKed with the reason and the last good one keeps serving; the
# config dump shows the secret's version with its key redacted, and the rejection; a listener
# without TLS unsubscribes the secret. State of the world, then delta.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh
. tests/lib/xds.sh

PY=/usr/bin/python3
[ -f build/xds/closure.pb ] || { echo "Bail out! run make (needs build/xds/closure.pb)"; exit 1; }
h_init

# A CA and two server certificates for web.test, each with its own key.
C=$H_DIR/pki
mkdir -p "$C"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
	-keyout "$C/ca.key" -out "$C/ca.crt" 2>/dev/null
for n in a b; do
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=web-$n" \
		-keyout "$C/$n.key" -out "$C/$n.csr" 2>/dev/null
	openssl x509 -req -in "$C/$n.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial -days 2 \
		-extfile <(printf 'subjectAltName=DNS:web.test\n') -out "$C/$n.crt" 2>/dev/null
done
[ -s "$C/b.crt" ] || { echo "Bail out! openssl could not make the test certificates"; exit 1; }
fpr() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
FA=$(fpr "$C/a.crt") FB=$(fpr "$C/b.crt")

# The plain HTTP server behind the listeners ("hello" at /, 2 MB at /blob).
h_www_local
WPORT=$H_WWW_PORT

TCP='"@type":"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"'
TLS='"@type":"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"'
listener() { # PORT [SECRET]: a bound TCP listener, terminating TLS with SECRET when given
	local ts=''
	[ -n "${2:-}" ] && ts=$(printf '"transport_socket":{"name":"envoy.transport_sockets.tls","typed_config":{%s,"common_tls_context":{"tls_certificate_sds_secret_configs":[{"name":"%s","sds_config":{"ads":{},"resource_api_version":"V3"}}]}}},' "$TLS" "$2")
	printf '{"name":"web_tls","address":{"socket_address":{"address":"127.0.0.1","port_value":%s}},"filter_chains":[{%s"filters":[{"name":"envoy.filters.network.tcp_proxy","typed_config":{%s,"stat_prefix":"web","cluster":"web"}}]}]}' "$1" "$ts" "$TCP"
}
secret() { # NAME CERT KEY
	jq -nc --arg n "$1" --rawfile c "$2" --rawfile k "$3" \
		'{name: $n, tls_certificate: {certificate_chain: {inline_string: $c}, private_key: {inline_string: $k}}}'
}
CLUSTERS="[{\"name\":\"web\",\"type\":\"STATIC\",\"connect_timeout\":\"1s\",\"load_assignment\":{\"cluster_name\":\"web\",\"endpoints\":[{\"lb_endpoints\":[{\"endpoint\":{\"address\":{\"socket_address\":{\"address\":\"127.0.0.1\",\"port_value\":$WPORT}}}}]}]}}]"
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# get PATH [CURL ARGS]: over TLS, checking the certificate against the test CA for web.test.
get() { curl -sf -m 5 --cacert "$C/ca.crt" --resolve "web.test:$P:127.0.0.1" "https://web.test:$P$1" "${@:2}"; }
served() { openssl s_client -connect "127.0.0.1:$P" -servername web.test </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2; }
last_sds() { xds_ctl requests | jq -c '[.[] | select(.type == "sds")] | last'; }
secrets() { h_ctl config dump --type secrets; }

for MODE in sotw delta; do
	api=GRPC
	[ "$MODE" = delta ] && api=DELTA_GRPC
	xds_server_start "$H_DIR" || { echo "Bail out! the xDS server did not start: $(cat "$H_DIR/xds.err")"; exit 1; }
	P=$(free_port)
	xds_ctl set cds 1 "$CLUSTERS" >/dev/null
	xds_ctl set lds 1 "[$(listener "$P" web-cert)]" >/dev/null
	xds_bootstrap "$api" "$GPORT" >"$H_DIR/boot.json"
	: >"$H_DIR/shuntd.log"
	h_shuntd --config "$H_DIR/boot.json" || { echo "Bail out! shuntd did not start"; exit 1; }
	h_wait_for 10 grep -q 'SDS secret "web-cert" has not arrived' "$H_DIR/shuntd.log"
	t_ok $? "$MODE: the listener is there before its secret, and the log names the secret it waits for"
	h_wait_for 5 sh -c "ss -ltn | grep -q '127.0.0.1:$P '"
	is "$(get / || echo refused)" "refused" "$MODE: until the secret arrives, the chain refuses connections"

	xds_ctl set sds 1 "[$(secret web-cert "$C/a.crt" "$C/a.key")]" >/dev/null
	h_wait_for 5 get / >/dev/null

	is "$(get /)" "hello" "$MODE: HTTPS through the listener whose certificate came over SDS"
	is "$(served)" "$FA" "$MODE: ... serving certificate A"
	is "$(xds_ctl requests | jq -r '[.[] | select(.type == "sds") | (.names // []) + (.subscribe // []) | .[]] | unique | join(",")')" \
		"web-cert" "$MODE: the secret the listener names, and only it, was subscribed"

	# Rotation: a download in flight keeps its connection; new ones get the new certificate.
	get /blob --limit-rate 1M -o "$H_DIR/inflight" &
	inflight=$!
	sleep 0.5
	xds_ctl set sds 2 "[$(secret web-cert "$C/b.crt" "$C/b.key")]" >/dev/null
	h_wait_for 5 sh -c "[ \"\$(openssl s_client -connect 127.0.0.1:$P -servername web.test </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2)\" = '$FB' ]"
	is "$(served)" "$FB" "$MODE: a rotated secret is served to new connections"
	is "$(get /)" "hello" "$MODE: ... which verify against the same CA"
	wait "$inflight"
	is "$?/$(stat -c %s "$H_DIR/inflight")" "0/2097152" "$MODE: the download in flight finished on the old certificate"
	if [ "$MODE" = sotw ]; then
		is "$(last_sds | jq -r '"\(.version) \(.error // "")"')" "2 " "$MODE: SDS version 2 ACKed"
	else
		like "$(last_sds)" '"error":(""|null)' "$MODE: SDS update ACKed"
	fi

	# A certificate with someone else's key: NACKed, the last good secret keeps serving.
	xds_ctl set sds 3 "[$(secret web-cert "$C/b.crt" "$C/a.key")]" >/dev/null
	h_wait_for 5 sh -c "/usr/bin/python3 tests/lib/xds_server.py ctl $CPORT requests | jq -e '[.[] | select(.type == \"sds\")] | last | .error | length > 0' >/dev/null"
	like "$(last_sds | jq -r .error)" 'web-cert.*private.key|private.key.*web-cert' \
		"$MODE: a key that does not match its certificate is NACKed, naming the secret"
	is "$(served)" "$FB" "$MODE: ... and certificate B is still served"
	is "$(get /)" "hello" "$MODE: ... traffic unaffected"
	dump=$(secrets)
	is "$(jq -r '.configs[0].dynamic_active_secrets[] | select(.name == "web-cert") | .version_info' <<<"$dump")" \
		"2" "$MODE: config dump: secret web-cert active at version 2"
	is "$(jq -r '.configs[0].dynamic_active_secrets[] | select(.name == "web-cert") | .secret.tls_certificate.private_key.inline_string' <<<"$dump")" \
		"[redacted]" "$MODE: config dump: its private key redacted"
	like "$(jq -r '.configs[0].dynamic_active_secrets[] | select(.name == "web-cert") | .secret.tls_certificate.certificate_chain.inline_string' <<<"$dump")" \
		'BEGIN CERTIFICATE' "$MODE: config dump: its certificate shown"
	like "$(jq -r '[.configs[0].dynamic_active_secrets[] | select(.name == "web-cert") | .error_state.details] | first' <<<"$dump")" \
		'private.key' "$MODE: config dump: the rejected version with its reason"
	h_ctl config dump >"$H_DIR/full.json"
	ok "$MODE: no private key anywhere in the full dump" sh -c "! grep -q 'PRIVATE KEY' '$H_DIR/full.json'"

	# The listener without TLS: the secret is no longer wanted.
	xds_ctl set lds 2 "[$(listener "$P")]" >/dev/null
	h_wait_for 5 sh -c "curl -sf -m 2 http://127.0.0.1:$P/ >/dev/null"
	is "$(curl -sf -m 5 "http://127.0.0.1:$P/")" "hello" "$MODE: the listener replaced by a plain one"
	sleep 0.3
	if [ "$MODE" = sotw ]; then
		like "$(last_sds)" '"names":\[\]' "$MODE: SDS unsubscribed"
	else
		like "$(last_sds)" '"unsubscribe":\["web-cert"\]' "$MODE: SDS unsubscribed"
	fi
	is "$(secrets | jq -r '[.configs[0].dynamic_active_secrets // [] | .[] | select(.secret) | .name] | join(",")')" "" \
		"$MODE: config dump: no secret active any more"
	h_shuntd_stop
	is "$?" "0" "$MODE: shuntd stops cleanly"
	kill -9 "$XDS_PID" 2>/dev/null
	wait "$XDS_PID" 2>/dev/null
done
done_testing
