#!/usr/bin/env bash
# shuntd outside the pods' cgroup (the design's default placement): no cgroup program sees the
# proxy's own sockets, so the proxy puts its ends into the SOCKHASH itself, and sk_msg keeps
# every stream in order by leaving a sender on TCP when its first message could not be
# redirected. Data must arrive intact either way; SIGTERM must not lose an accepted connection.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

kstat() { h_ctl -o json stats | jq -r ".kernel.total.$1"; }
pstat() { h_ctl -o json stats | jq -r ".proxy.$1"; }

h_init
h_pod a
h_pod b
H_SHUNTD_OUTSIDE=1 h_shuntd --drain-timeout 20000 || { echo "Bail out! shuntd did not start"; exit 1; }
B=$(h_ip b)
h_bg b "$H_BIN/nettest" serve 8080
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8080 '"

for fam in v4 v6; do
	dst=$B
	[ "$fam" = v6 ] && dst=$(h_ip6 b)
	like "$(h_exec a "$H_BIN/nettest" bulk "$dst" 8080 64M)" '^ok bytes=67108864 ' \
		"$fam: 64 MB echoed intact with shuntd outside the cgroup"
done
like "$(h_exec a "$H_BIN/nettest" conns "$B" 8080 300 2000)" '^ok=300 failed=0$' \
	"300 concurrent client-first exchanges complete"
cmp_ok "$(pstat sockmap_inserted)" -gt 0 "the proxy inserted its own ends into the SOCKHASH"
is "$(pstat sockmap_present)" "0" "sockops never saw them (shuntd is outside the cgroup)"
cmp_ok "$(kstat msg_redirected)" -gt 0 "sk_msg redirected messages"
diag "sk_msg: $(kstat msg_redirected) redirected, $(kstat msg_fallback_no_peer) first-message" \
	"fallbacks, $(kstat msg_fallback_sticky) sticky fallbacks"

# Transfers in flight when SIGTERM arrives complete: accepted connections are drained, and
# the ::6 source of B's IPv6 inbound leg stays until they are done.
h_exec a "$H_BIN/nettest" bulk "$B" 8080 300M >"$H_DIR/bulk4.out" 2>&1 &
bulk4=$!
h_exec a "$H_BIN/nettest" bulk "$(h_ip6 b)" 8080 300M >"$H_DIR/bulk6.out" 2>&1 &
bulk6=$!
sleep 0.5
kill -TERM "$H_SHUNTD_PID"
wait "$bulk4"
wait "$bulk6"
like "$(cat "$H_DIR/bulk4.out")" '^ok bytes=314572800 ' \
	"a 300 MB IPv4 transfer in flight at SIGTERM completes intact (drained, not cut)"
like "$(cat "$H_DIR/bulk6.out")" '^ok bytes=314572800 ' \
	"and so does an IPv6 one, whose inbound leg comes from ::6"
wait "$H_SHUNTD_PID"
is "$?" "0" "shuntd exits 0 after draining"
H_SHUNTD_PID=
like "$(grep 'proxy stopped' "$H_DIR/shuntd.log")" ', 0 still open at the drain deadline were closed$' \
	"no connection was cut at the drain deadline"
ok "::6 is gone from B's loopback once drained" sh -c "! ip -n $(h_ns b) -6 addr show dev lo | grep -q '::6/128'"
done_testing
