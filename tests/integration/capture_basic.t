#!/usr/bin/env bash
# Issue 3, items 1-2: pod A -> pod B through eBPF capture and the proxy, over HTTP and raw TCP,
# IPv4 and IPv6; getpeername, the 127.0.0.6 source, access log, counters, sk_msg, 100 MB intact.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

kstat() { h_ctl -o json stats | jq -r ".kernel.pods[\"$1\"].$2"; }
pstat() { h_ctl -o json stats | jq -r ".proxy.$1"; }

h_init
h_pod a
h_pod b
h_shuntd || { echo "Bail out! shuntd did not start"; exit 1; }
B=$(h_ip b)
B6=$(h_ip6 b)

mkdir -p "$H_DIR/www"
head -c 1048576 /dev/urandom >"$H_DIR/www/blob"
h_bg b /usr/bin/python3 -m http.server 8000 --bind :: --directory "$H_DIR/www"
h_bg b "$H_BIN/nettest" serve 8080
h_bg b "$H_BIN/nettest" serve 8081 peer
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8000 '" || diag "http server slow to start"

# 1. HTTP with curl, v4 and v6, body intact.
want=$(sha256sum <"$H_DIR/www/blob" | cut -d' ' -f1)
got=$(h_exec a curl -sf --max-time 10 "http://$B:8000/blob" | sha256sum | cut -d' ' -f1)
is "$got" "$want" "curl A -> B over IPv4: 1 MB body arrives intact"
got=$(h_exec a curl -sf --max-time 10 "http://[$B6]:8000/blob" | sha256sum | cut -d' ' -f1)
is "$got" "$want" "curl A -> B over IPv6: 1 MB body arrives intact"

# The app in A sees the original peer; the server in B sees the proxy's 127.0.0.6 / ::6.
like "$(h_exec a "$H_BIN/nettest" peer "$B" 8080)" "^peer=$B:8080 local=127\.0\.0\.1:" \
	"getpeername in A returns the original destination (v4)"
like "$(h_exec a "$H_BIN/nettest" peer "$B6" 8080)" "^peer=\[$B6\]:8080 " \
	"getpeername in A returns the original destination (v6)"
like "$(h_exec a socat -t2 - "TCP:$B:8081" </dev/null)" '^peer=127\.0\.0\.6:[0-9]+$' \
	"raw TCP: the server in B sees the connection from 127.0.0.6"
like "$(h_exec a socat -t2 - "TCP6:[$B6]:8081" </dev/null)" '^peer=\[::6\]:[0-9]+$' \
	"raw TCP over IPv6: the server in B sees the connection from ::6"

# Access log: both legs of the raw request, Istio's format.
h_wait_for 2 grep -q "\"$B:8081\" InboundPassthroughCluster 127.0.0.6:" "$H_DIR/access.log"
like "$(grep "\"$B:8081\" PassthroughCluster" "$H_DIR/access.log" | head -1)" \
	"^\[[0-9T:.-]+Z\] \"- - -\" 0 - - - \"-\" [0-9]+ [0-9]+ [0-9]+ - \"-\" \"-\" \"-\" \"-\" \"$B:8081\" PassthroughCluster $(h_ip a):[0-9]+ $B:8081 127\.0\.0\.1:[0-9]+ - -$" \
	"access log: the outbound leg (A's proxy to B, from A's pod address)"
like "$(grep "\"$B:8081\" InboundPassthroughCluster" "$H_DIR/access.log" | head -1)" \
	"\"$B:8081\" InboundPassthroughCluster 127\.0\.0\.6:[0-9]+ $B:8081 $(h_ip a):[0-9]+ - -$" \
	"access log: the inbound leg (B's proxy to the app, from 127.0.0.6)"

# Counters: both legs, both pods.
cmp_ok "$(kstat a connect_redirected)" -ge 6 "A's outbound connects were redirected"
cmp_ok "$(kstat b inbound_steered)" -ge 6 "B's inbound SYNs were steered to 15006"
cmp_ok "$(pstat outbound_cx_total)" -ge 6 "the proxy counted the outbound legs"
cmp_ok "$(pstat inbound_cx_total)" -ge 6 "the proxy counted the inbound legs"

# 2. sk_msg short-circuits the app<->proxy hops; 100 MB both ways, v4 and v6.
bytes_a=$(kstat a msg_bytes)
bytes_b=$(kstat b msg_bytes)
like "$(h_exec a "$H_BIN/nettest" bulk "$B" 8080 100M)" '^ok bytes=104857600 ' \
	"100 MB echoed A -> B -> A over IPv4, byte for byte"
like "$(h_exec a "$H_BIN/nettest" bulk "$B6" 8080 100M)" '^ok bytes=104857600 ' \
	"100 MB echoed A -> B -> A over IPv6, byte for byte"
# Each 100 MB crosses A's hop twice (out and back) and B's hop twice.
cmp_ok $(($(kstat a msg_bytes) - bytes_a)) -ge $((4 * 104857600)) \
	"sk_msg redirected A's app<->proxy hop (both directions, v4 and v6)"
cmp_ok $(($(kstat b msg_bytes) - bytes_b)) -ge $((4 * 104857600)) \
	"sk_msg redirected B's proxy<->app hop (both directions, v4 and v6)"
is "$(kstat a err_redirect)$(kstat b err_redirect)" "00" "no sk_msg redirect errors"

# An idle agent sleeps in epoll_wait: its thread (the main one) must not spin. Generous bound: a
# busy loop burns the whole 2 s, a sleeping agent a few ticks.
cpu() { awk '{print $14 + $15}' "/proc/$H_SHUNTD_PID/task/$H_SHUNTD_PID/stat"; }
c0=$(cpu)
sleep 2
cmp_ok $(($(cpu) - c0)) -lt 50 "the idle agent thread used under 0.5 s of CPU in 2 s"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly on SIGTERM"
done_testing
