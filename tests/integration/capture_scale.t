#!/usr/bin/env bash
# Issue 3, item 3: 1,000 concurrent connections A -> B all complete, and afterwards nothing is
# left behind: no open proxy connections, map entries or extra file descriptors.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

map_entries() { h_ctl -o json status | jq -r ".maps.$1"; }
shuntd_fds() { find "/proc/$H_SHUNTD_PID/fd" -mindepth 1 2>/dev/null | wc -l; }
pstat() { h_ctl -o json stats | jq -r ".proxy.$1"; }

h_init
h_pod a
h_pod b
h_shuntd || { echo "Bail out! shuntd did not start"; exit 1; }
B=$(h_ip b)
h_bg b "$H_BIN/nettest" serve 8080
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8080 '"

# Warm up once, so that lazily created state (buffer pools) does not count as a leak.
h_exec a "$H_BIN/nettest" conns "$B" 8080 10 >/dev/null
sleep 0.2
fds_before=$(shuntd_fds)

for round in 1 2; do
	like "$(h_exec a "$H_BIN/nettest" conns "$B" 8080 1000 1000)" '^ok=1000 failed=0$' \
		"round $round: 1000 concurrent connections A -> B each complete an echo exchange"
done

no_active() { [ "$(pstat downstream_cx_active)" = 0 ]; }
map_empty() { [ "$(map_entries "$1")" = 0 ]; }

# Closing is asynchronous (FIN handshakes, TIME_WAIT); give it a moment, bounded.
h_wait_for 5 no_active
is "$(pstat downstream_cx_active)" "0" "the proxy has no connection open afterwards"
cmp_ok "$(pstat downstream_cx_total)" -ge 4000 "the proxy carried 2 x 1000 x 2 legs"
is "$(pstat upstream_cx_connect_fail)" "0" "no upstream connect failed"
for m in orig_dst_by_cookie orig_dst_by_tuple sock_pairs msg_fallback; do
	h_wait_for 3 map_empty "$m"
	is "$(map_entries "$m")" "0" "no $m entries are left"
done
is "$(shuntd_fds)" "$fds_before" "shuntd holds as many fds as before ($fds_before)"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
