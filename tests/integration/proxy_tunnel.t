#!/usr/bin/env bash
# Issue 5, upgrades and CONNECT (policy half): through shuntd --config from a captured pod, a
# WebSocket upgrade the HCM's upgrade_configs do not list gets Envoy's empty 403 (upgrade_failed),
# an h2c offer and plain requests are served, CONNECT reaches only connect_matcher routes (none:
# 404 NR) and a route can disable CONNECT (403). The tunnels themselves: proxy_tunnel_io.t.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

h_init
h_pod a
h_pod b
B=$(h_ip b)
mkdir -p "$H_DIR/www"
echo "web" >"$H_DIR/www/index.html"
h_bg b /usr/bin/python3 -m http.server 8001 --directory "$H_DIR/www"
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8001 '"
sed -e "s/@B@/$B/" tests/integration/fixtures/tunnel-static.yaml >"$H_DIR/tunnel.yaml"
h_shuntd --config "$H_DIR/tunnel.yaml" || { echo "Bail out! shuntd did not start"; exit 1; }
VIP=http://10.96.0.10:9080

is "$(h_exec a curl -sf -m 5 "$VIP/")" "web" "pod A -> service VIP: a plain request is routed"
ws=(-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13'
	-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==')
out=$(h_exec a curl -s -m 5 -w ' %{http_code} %{size_download}' "${ws[@]}" "$VIP/")
is "$out" " 403 0" "a WebSocket upgrade the HCM does not list: 403, empty body"
is "$(h_exec a curl -s -m 5 --http2 -w '%{http_code}' -o /dev/null "$VIP/")" "200" \
	"an h2c upgrade offer (curl --http2) is served as HTTP/1.1"
h_wait_for 2 grep -q ' 403 .*upgrade_failed' "$H_DIR/access.log"
like "$(grep '"GET / HTTP/1.1" 403' "$H_DIR/access.log" | head -1)" 'upgrade_failed' \
	"the access log says upgrade_failed"
code=$(h_exec a curl -s -m 5 -o /dev/null -w '%{http_connect}' -p -x "$VIP" http://web.local:80/)
is "$code" "404" "CONNECT with no connect_matcher route: 404 (NR)"
code=$(h_exec a curl -s -m 5 -o /dev/null -w '%{http_connect}' -p -x "$VIP" http://closed.local:80/)
is "$code" "403" "CONNECT on a route whose upgrade_configs disable it: 403"
h_wait_for 2 grep -q 'CONNECT .* 404 NR ' "$H_DIR/access.log"
like "$(grep 'CONNECT' "$H_DIR/access.log" | grep ' 404 ' | head -1)" ' NR .*route_not_found' \
	"the 404 is logged NR route_not_found"
is "$(h_exec a curl -sf -m 5 "$VIP/")" "web" "and the proxy still serves plain requests"
out=$(h_exec a /usr/bin/python3 tests/lib/tunnel_peer.py h2-ws 10.96.0.10 9080 web.local 1 1 2>&1)
is "$(head -2 <<<"$out" | tr '\n' ' ')" "enable_connect_protocol 0 reset " \
	"without allow_connect, HTTP/2 extended CONNECT is not offered and a try is refused"
stats=$(h_ctl stats 2>/dev/null || true)
like "$stats" 'http_rq_upgrade_refused[^0-9]*[1-9]' "refused upgrades are counted"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
