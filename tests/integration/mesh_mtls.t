#!/usr/bin/env bash
# Mutual TLS between two captured pods, the way an Istio mesh runs it (deploy/examples/
# demo-mtls.yaml, which make run shows): pod a's request to a service VIP leaves shuntd as mTLS
# with a SPIFFE certificate, arrives at pod b's inbound listener through sk_lookup, is
# terminated there (client certificate required) and reaches the app in the clear from
# 127.0.0.6. Pod b refuses plaintext and TLS without a mesh certificate on that port.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

pstat() { h_ctl -o json stats | jq -r ".proxy.$1"; }

h_init
h_pod a
h_pod b
B=$(h_ip b)
# A mesh CA and a workload certificate (a SPIFFE identity), as istio-agent would provide; and a
# certificate from another CA for the negative case.
P=$H_DIR/pki
tools/mesh-certs.sh "$P" || { echo "Bail out! openssl could not make the certificates"; exit 1; }
mkdir -p "$H_DIR/www"
echo "reviews v1" >"$H_DIR/www/index.html"
chmod 755 "$H_DIR" "$H_DIR/www"
chmod 644 "$H_DIR/www/index.html"

h_bg b sh -c 'exec /usr/bin/python3 -m http.server 8001 --directory "$1" 2>>"$2"' _ "$H_DIR/www" \
	"$H_DIR/app.log"
h_wait_for 10 h_exec b sh -c "ss -ltn | grep -q ':8001 '" || { echo "Bail out! no server in b"; exit 1; }
sed -e "s/@B@/$B/" -e "s|@D@|$P|g" deploy/examples/demo-mtls.yaml >"$H_DIR/cfg.yaml"
h_shuntd --config "$H_DIR/cfg.yaml" || { echo "Bail out! shuntd did not start"; exit 1; }

hs0=$(pstat ssl_handshake)
is "$(h_exec a curl -s -m 5 http://10.96.0.10:9080/)" "reviews v1" \
	"pod a -> VIP -> mTLS -> pod b's inbound -> the app: the response arrives"
hs1=$(pstat ssl_handshake)
is "$((hs1 - hs0))" 2 "two handshakes completed: pod a's client side and pod b's server side"
h_wait_for 3 grep -q 'outbound|9080||reviews' "$H_DIR/access.log"
like "$(grep 'GET / ' "$H_DIR/access.log" | tail -1)" '" 200 .*outbound\|9080\|\|reviews' \
	"the access log has the request, to the mTLS cluster"
# The app saw its caller as 127.0.0.6: the inbound proxy handed it on after terminating TLS.
h_wait_for 3 grep -q 'GET / ' "$H_DIR/app.log"
like "$(grep 'GET / ' "$H_DIR/app.log" | tail -1)" '^127\.0\.0\.6 ' \
	"the app in b was called from 127.0.0.6, in the clear, after the inbound proxy"

# Straight to pod b's port from pod a's netns, outside the mesh (not captured at a; b's
# inbound capture still applies).
is "$(h_exec_netns a curl -s -m 5 "http://$B:8001/")" "" "plaintext to b's port 8001 is refused (STRICT)"
code=$(h_exec_netns a curl -s -m 5 -k -o /dev/null -w '%{http_code}' "https://$B:8001/")
is "$code" "000" "TLS without a client certificate: the handshake fails"
code=$(h_exec_netns a curl -s -m 5 -k --cert "$P/stranger.crt" --key "$P/stranger.key" \
	-o /dev/null -w '%{http_code}' "https://$B:8001/")
is "$code" "000" "a client certificate from another CA: refused"
# With the mesh certificate the client is admitted (-k: the server's certificate names a SPIFFE
# URI, which curl cannot check; HTTP/1.1: the chain offers h2 by ALPN and the app speaks 1.1).
is "$(h_exec_netns a curl -s -m 5 -k --http1.1 --cert "$P/workload.crt" --key "$P/workload.key" \
	"https://$B:8001/")" "reviews v1" "a mesh client certificate is admitted, and the app answers"
cmp_ok "$(pstat ssl_fail_verify_error)" -ge 1 "the refused certificate is counted"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
