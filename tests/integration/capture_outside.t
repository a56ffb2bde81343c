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

# A transfer in flight when SIGTERM arrives completes: accepted connections are drained.
h_exec a "$H_BIN/nettest" bulk "$B" 8080 400M >"$H_DIR/bulk.out" 2>&1 &
bulk=$!
h_wait_for 5 sh -c "[ \"\$(ss -Htn state established '( dport = :15001 or sport = :15001 )' -N $(h_ns a) | wc -l)\" -gt 0 ]" 2>/dev/null
sleep 0.2
kill -TERM "$H_SHUNTD_PID"
wait "$bulk"
like "$(cat "$H_DIR/bulk.out")" '^ok bytes=419430400 ' \
	"a 400 MB transfer in flight at SIGTERM completes intact (drained, not cut)"
wait "$H_SHUNTD_PID"
is "$?" "0" "shuntd exits 0 after draining"
H_SHUNTD_PID=
like "$(grep 'proxy stopped' "$H_DIR/shuntd.log")" ', 0 still open at the drain deadline were closed$' \
	"no connection was cut at the drain deadline"
done_testing
