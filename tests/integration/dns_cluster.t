#!/usr/bin/env bash
# Issue 5: STRICT_DNS and LOGICAL_DNS clusters. shuntd runs in its own mount namespace with the
# test's hosts file over /etc/hosts (the machine's is never touched), so the test decides what
# the names resolve to: a request follows the name to pod b, then to pod c after the file
# changes; a name that stops resolving keeps its last answer; lookup families pick IPv4 or IPv6
# as Envoy does; a name never resolved answers 503 UH while the other clusters keep serving.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

h_init
h_pod a
h_pod b
h_pod c
B=$(h_ip b)
C=$(h_ip c)
B6=$(h_ip6 b)
for p in b c; do
	mkdir -p "$H_DIR/www-$p"
	echo "$p" >"$H_DIR/www-$p/index.html"
	h_bg "$p" /usr/bin/python3 -m http.server 8001 --bind :: --directory "$H_DIR/www-$p"
	h_bg "$p" /usr/bin/python3 tests/lib/http_peer.py 8002
done
h_wait_for 5 h_exec c sh -c "ss -ltn | grep -q ':8001 '"
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8002 '"
SLOW_SUM=$(/usr/bin/python3 -c 'import hashlib,sys; sys.path.insert(0,"tests/lib"); import http_peer; print(hashlib.sha256(http_peer.body_bytes(3000000)).hexdigest())')

HOSTS=$H_DIR/hosts
# Rewritten in place (same inode), so that the bind mount sees every version.
hosts() { printf '%s\n' "$@" >"$HOSTS"; }
hosts "127.0.0.1 localhost" "$B svc.test" "$B dual.test" "$B6 dual.test"
# And a resolv.conf with no server: names outside the hosts file fail at once, with no query
# leaving the test.
echo "nameserver 127.0.0.1" >"$H_DIR/resolv.conf"
H_SHUNTD_WRAP=(unshare -m --propagation private sh -c
	'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
	"$HOSTS" "$H_DIR/resolv.conf")
APORT=$((20000 + RANDOM % 20000))
h_shuntd --config tests/integration/fixtures/dns-clusters.yaml --admin-port "$APORT" \
	--admin-address 127.0.0.1 || { echo "Bail out! shuntd did not start"; exit 1; }
H_SHUNTD_WRAP=()

get() { h_exec a curl -s -m 3 "http://10.96.0.40:$1/"; }
metric() { curl -s "http://127.0.0.1:$APORT/stats/prometheus" | awk -v m="shunt_$1" '$1 == m { print $2 }'; }

answers() { [ "$(get "$1")" = "$2" ]; }
clusters() { curl -s "http://127.0.0.1:$APORT/clusters"; }
has_host() { clusters | grep -qxF "$1::health_flags::healthy"; }
nhosts() { clusters | grep -c "^$1::.*::health_flags::"; }
h_wait_for 5 answers 80 b
is "$(get 80)" "b" "STRICT_DNS svc.test -> pod b"
ok "admin /clusters lists svc's endpoint" has_host "svc::$B:8001"
like "$(clusters)" "svc::dns::svc.test:8001::dns_lookup_family::V4_ONLY" "and its name"
# A slow response (3 s) from pod b is under way on svc-slow while the name moves to pod c.
h_exec a curl -s -m 30 -o "$H_DIR/slow.out" -w '%{http_code}' "http://10.96.0.40:85/slow/3000000" \
	>"$H_DIR/slow.code" &
SLOW=$!
h_wait_for 5 test -s "$H_DIR/slow.out"
hosts "127.0.0.1 localhost" "$C svc.test" "$B dual.test" "$B6 dual.test"
h_wait_for 5 answers 80 c
is "$(get 80)" "c" "after /etc/hosts moves svc.test to pod c, new requests go there"
ok "/clusters lists pod c" has_host "svc::$C:8001"
is "$(nhosts svc)" "1" "and only it"
h_wait_for 5 has_host "svc-slow::$C:8002"
ok "the slow response from pod b was still under way when the name moved" \
	test "$(stat -c %s "$H_DIR/slow.out")" -lt 3000000
wait "$SLOW"
is "$(cat "$H_DIR/slow.code")" "200" "the in-flight response finishes: 200"
is "$(sha256sum <"$H_DIR/slow.out" | cut -d' ' -f1)" "$SLOW_SUM" "with its 3 MB intact"
hosts "127.0.0.1 localhost" "$B dual.test" "$B6 dual.test"
sleep 1
is "$(get 80)" "c" "svc.test stops resolving: the last answer is kept"
ok "/clusters still lists pod c" has_host "svc::$C:8001"
cmp_ok "$(metric dns_lookup_failures_total)" ">" "0" "and the failures are counted"

: >"$H_DIR/access.log.mark"
is "$(get 81)" "b" "LOGICAL_DNS dual.test (AUTO) reaches pod b"
h_wait_for 2 grep -q '"GET / HTTP/1.1" 200 .* dual ' "$H_DIR/access.log"
like "$(grep '"GET / HTTP/1.1" 200 .* dual ' "$H_DIR/access.log" | tail -1)" "\"\\[$B6\\]:8001\" dual " \
	"over IPv6: AUTO prefers the name's IPv6 address"
seen=$(for _ in $(seq 1 20); do get 83 >/dev/null; done
	grep '"GET / HTTP/1.1" 200 .* dual-all ' "$H_DIR/access.log" | grep -o '"[^"]*:8001" dual-all' | sort -u | wc -l)
is "$seen" "2" "STRICT_DNS dual.test (ALL): both addresses are endpoints"
is "$(nhosts dual)" "1" "/clusters: LOGICAL_DNS dual (AUTO) has one endpoint"
ok "the IPv6 one" has_host "dual::[$B6]:8001"
is "$(nhosts dual-v4)" "1" "STRICT_DNS dual.test (V4_ONLY) has one endpoint"
ok "the IPv4 one" has_host "dual-v4::$B:8001"
is "$(get 84)" "b" "V4_ONLY: requests reach pod b"
h_wait_for 2 grep -q '"GET / HTTP/1.1" 200 .* dual-v4 ' "$H_DIR/access.log"
like "$(grep '"GET / HTTP/1.1" 200 .* dual-v4 ' "$H_DIR/access.log" | tail -1)" "\"$B:8001\" dual-v4 " \
	"over IPv4"
is "$(nhosts dual-all)" "2" "/clusters: ALL has both"

is "$(h_exec a curl -s -m 3 -o /dev/null -w '%{http_code}' "http://10.96.0.40:82/")" "503" \
	"a name that never resolved: 503"
like "$(h_exec a curl -s -m 3 "http://10.96.0.40:82/")" "no healthy upstream" "no healthy upstream (UH)"
is "$(nhosts nothere)" "0" "/clusters: no endpoint for it"
like "$(clusters)" "nothere::dns::nothere.test:8001::dns_lookup_family::AUTO" "but its name is listed"
is "$(get 80)" "c" "and the other clusters keep serving"
cmp_ok "$(metric dns_names)" "==" "3" "three names resolved (svc.test, dual.test, nothere.test)"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
