#!/usr/bin/env bash
# Issue 5, the tunnels: through shuntd --config from a captured pod, a WebSocket upgrade the
# config allows reaches pod b's echo server on a fresh connection and becomes a byte tunnel
# (messages and a 1 MiB binary message echoed intact); CONNECT ended by shuntd (connect_config)
# and CONNECT forwarded to an upstream proxy carry 1 MiB both ways with half-close; a tunnel
# idle for its route's idle_timeout is closed; each tunnel is logged as its HTTP stream. Over
# HTTP/2, CONNECT and extended CONNECT (websocket, to an HTTP/1.1 server) streams carry the same,
# and a client that stops granting window stops the upstream instead of filling shuntd.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

PEER=tests/lib/tunnel_peer.py
h_init
h_pod a
h_pod b
B=$(h_ip b)
mkdir -p "$H_DIR/www"
echo "web" >"$H_DIR/www/index.html"
h_bg b /usr/bin/python3 "$PEER" ws-server 8002
h_bg b /usr/bin/python3 "$PEER" echo-server 7000
h_bg b /usr/bin/python3 "$PEER" connect-server 7001
h_bg b /usr/bin/python3 "$PEER" half-server 7002 "$H_DIR/half.out"
# Outside pod a's cgroup, on its loopback: no capture hop whose kernel queues hide backpressure.
# (nsenter itself, not a shell function, so that $! is the server's pid for the cleanup.)
nsenter --net="/run/netns/$(h_ns a)" /usr/bin/python3 "$PEER" echo-server 7100 &
H_PIDS+=($!)
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8002 ' && ss -ltn | grep -q ':7002 '"
h_wait_for 5 h_exec_netns a sh -c "ss -ltn | grep -q ':7100 '"
sed -e "s/@B@/$B/" tests/integration/fixtures/tunnel-io.yaml >"$H_DIR/tunnel.yaml"
h_shuntd --config "$H_DIR/tunnel.yaml" || { echo "Bail out! shuntd did not start"; exit 1; }
VIP=10.96.0.10
MB=1048576

# WebSocket: handshake relayed, 20 text messages and 1 MiB of binary echoed through the tunnel.
out=$(h_exec a /usr/bin/python3 "$PEER" ws-client "$VIP" 9080 "$VIP:9080" 20 "$MB" 2>&1)
is "$(sed -n 1p <<<"$out")" "101" "WebSocket upgrade: the upstream's 101 is relayed"
is "$(sed -n 2p <<<"$out")" "text 20/20" "20 text messages echoed through the tunnel"
is "$(sed -n 3p <<<"$out")" "binary $MB ok" "a 1 MiB binary message echoed intact (SHA-256)"
is "$(sed -n 4p <<<"$out")" "close 8" "the close handshake goes through"
h_wait_for 3 grep -q '"GET / HTTP/1.1" 101 ' "$H_DIR/access.log"
line=$(grep '"GET / HTTP/1.1" 101 ' "$H_DIR/access.log" | head -1)
like "$line" '" 101 - via_upstream ' "the tunnel is logged as its stream: 101 via_upstream"
rx=$(awk '{print $10}' <<<"$line")
tx=$(awk '{print $11}' <<<"$line")
cmp_ok "${rx:-0}" -gt "$MB" "with the bytes that went in through it ($rx)"
cmp_ok "${tx:-0}" -gt "$MB" "and out ($tx)"
like "$line" "\"$B:8002\" ws " "and the upstream host and cluster"

# A route that disables websocket: 403, and nothing reaches the upstream.
out=$(h_exec a curl -s -m 5 -w ' %{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
	-H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
	"http://$VIP:9080/nows")
is "$out" " 403" "a route with websocket disabled: 403 upgrade_failed"

# An upgrade the server refuses is an ordinary exchange (the server's 400, no tunnel).
out=$(h_exec a curl -s -m 5 -w ' %{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
	"http://$VIP:9080/no-key")
is "$out" " 400" "an upgrade answered 400 (no Sec-WebSocket-Key): the 400 is relayed as it is"

# CONNECT ended by shuntd: 200 from shuntd, then 1 MiB each way to the TCP echo server.
out=$(h_exec a /usr/bin/python3 "$PEER" connect "$VIP" 9080 echo.local:443 "$MB" 2>&1)
is "$(sed -n 1p <<<"$out")" "200" "CONNECT with connect_config: shuntd answers 200"
is "$(sed -n 2p <<<"$out")" "echo $MB ok" "1 MiB through the tunnel and back, half-close both ways"
code=$(h_exec a curl -s -m 5 -o /dev/null -w '%{http_connect} %{http_code}' -p \
	-x "http://$VIP:9080" http://web.local/)
is "$code" "200 400" "curl --proxytunnel: 200, then its GET through the tunnel (the server's 400)"
h_wait_for 3 grep -q '"CONNECT .* 200 .* echo ' "$H_DIR/access.log"
line=$(grep '"CONNECT .* 200 ' "$H_DIR/access.log" | grep " $MB " | head -1)
like "$line" "\"$B:7000\" echo " "the CONNECT tunnel is logged with its cluster and $MB bytes"

# CONNECT without connect_config: forwarded to the upstream proxy, tunnelled after its 200.
out=$(h_exec a /usr/bin/python3 "$PEER" connect "$VIP" 9080 fwd.local:443 "$MB" 2>&1)
is "$(sed -n 1p <<<"$out")" "200" "CONNECT forwarded upstream: the upstream proxy's 200 is relayed"
is "$(sed -n 2p <<<"$out")" "echo $MB ok" "1 MiB through the upstream proxy's tunnel and back"

# The route's idle_timeout (1 s) closes a tunnel nobody talks on.
out=$(h_exec a /usr/bin/python3 "$PEER" idle "$VIP" 9080 idle.local:443 2>&1)
secs=$(sed -n 2p <<<"$out" | awk '{print $3}')
ok "an idle tunnel is closed by the route's idle_timeout (after ${secs:-?} s)" \
	awk -v s="${secs:-99}" 'BEGIN { exit !(s >= 0.9 && s < 4) }'
h_wait_for 3 grep -q 'CONNECT .* 200 SI ' "$H_DIR/access.log"
like "$(grep 'idle.local' "$H_DIR/access.log" | head -1)" ' 200 SI stream_idle_timeout ' \
	"logged SI stream_idle_timeout"

# HTTP/2 (h2c): CONNECT and RFC 8441 extended CONNECT streams are the tunnels.
out=$(h_exec a /usr/bin/python3 "$PEER" h2-connect "$VIP" 9080 echo.local:443 "$MB" 2>&1)
is "$(sed -n 1p <<<"$out")" "200" "HTTP/2 CONNECT with connect_config: 200"
is "$(sed -n 2p <<<"$out")" "echo $MB ok" \
	"1 MiB as DATA frames and back, within the windows, END_STREAM as half-close"
out=$(h_exec a /usr/bin/python3 "$PEER" h2-stall "$VIP" 9080 local.local:443 $((64 * MB)) 2>&1)
stalled=$(sed -n 2p <<<"$out" | awk '{print $2}')
diag "a client granting no window could send ${stalled:-?} of 64 MiB"
cmp_ok "${stalled:-0}" -lt $((32 * MB)) \
	"HTTP/2 flow control end to end: a client that grants no window cannot push 64 MiB in"
is "$(sed -n 3p <<<"$out")" "echo $((64 * MB)) ok" "and once it does, all 64 MiB come back intact"
out=$(h_exec a /usr/bin/python3 "$PEER" h2-half "$VIP" 9080 half.local:443 "$MB" 2>&1)
is "$(sed -n 1p <<<"$out")" "bye ended" "HTTP/2 tunnel: the server's FIN is the stream's END_STREAM"
h_wait_for 3 test -s "$H_DIR/half.out"
is "$(cat "$H_DIR/half.out" 2>/dev/null)" "$(sed -n 2p <<<"$out" | cut -d' ' -f2-)" \
	"and the client's 1 MiB sent after it still reaches the server, then its FIN (half-close)"
out=$(h_exec a /usr/bin/python3 "$PEER" h2-connect "$VIP" 9080 fwd.local:443 "$MB" 2>&1)
is "$out" $'200\necho 1048576 ok' "HTTP/2 CONNECT forwarded to the upstream proxy: 1 MiB both ways"
out=$(h_exec a /usr/bin/python3 "$PEER" h2-ws "$VIP" 9080 "$VIP:9080" 10 "$MB" 2>&1)
is "$(sed -n 1p <<<"$out")" "enable_connect_protocol 1" \
	"SETTINGS_ENABLE_CONNECT_PROTOCOL is advertised (allow_connect)"
is "$(sed -n 2p <<<"$out")" "200" "extended CONNECT websocket: the upstream's 101 becomes 200"
is "$(sed -n 3p <<<"$out")" "text 10/10" "10 WebSocket messages echoed over the HTTP/2 stream"
is "$(sed -n 4p <<<"$out")" "binary $MB ok" "and a 1 MiB binary message"
h_wait_for 3 grep -q '"GET / HTTP/2" 200 ' "$H_DIR/access.log"
like "$(grep '"GET / HTTP/2" 200 ' "$H_DIR/access.log" | head -1)" "\"$B:8002\" ws " \
	"logged as an HTTP/2 stream to the websocket cluster"
out=$(h_exec a /usr/bin/python3 "$PEER" h2-idle "$VIP" 9080 idle.local:443 2>&1)
like "$(sed -n 2p <<<"$out")" '^reset after (0\.9|1\.|2\.)' \
	"an idle HTTP/2 tunnel is reset after the route's idle_timeout ($(sed -n 2p <<<"$out"))"

stats=$(h_ctl stats 2>/dev/null || true)
like "$stats" 'http_tunnel_total[^0-9]*[4-9]' "tunnels are counted"
like "$stats" 'http_tunnel_active[^0-9]*0' "and none is left open"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
