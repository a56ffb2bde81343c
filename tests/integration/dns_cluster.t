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
done
h_wait_for 5 h_exec c sh -c "ss -ltn | grep -q ':8001 '"

HOSTS=$H_DIR/hosts
# Rewritten in place (same inode), so that the bind mount sees every version.
hosts() { printf '%s\n' "$@" >"$HOSTS"; }
hosts "127.0.0.1 localhost" "$B svc.test" "$B dual.test" "$B6 dual.test"
H_SHUNTD_WRAP=(unshare -m --propagation private sh -c 'mount --bind "$0" /etc/hosts && exec "$@"'
	"$HOSTS")
APORT=$((20000 + RANDOM % 20000))
h_shuntd --config tests/integration/fixtures/dns-clusters.yaml --admin-port "$APORT" \
	--admin-address 127.0.0.1 || { echo "Bail out! shuntd did not start"; exit 1; }
H_SHUNTD_WRAP=()

get() { h_exec a curl -s -m 3 "http://10.96.0.40:$1/"; }
metric() { curl -s "http://127.0.0.1:$APORT/stats/prometheus" | awk -v m="shunt_$1" '$1 == m { print $2 }'; }

answers() { [ "$(get "$1")" = "$2" ]; }
h_wait_for 5 answers 80 b
is "$(get 80)" "b" "STRICT_DNS svc.test -> pod b"
hosts "127.0.0.1 localhost" "$C svc.test" "$B dual.test" "$B6 dual.test"
h_wait_for 5 answers 80 c
is "$(get 80)" "c" "after /etc/hosts moves svc.test to pod c, new requests go there"
hosts "127.0.0.1 localhost" "$B dual.test" "$B6 dual.test"
sleep 1
is "$(get 80)" "c" "svc.test stops resolving: the last answer is kept"
cmp_ok "$(metric dns_lookup_failures_total)" ">" "0" "and the failures are counted"

: >"$H_DIR/access.log.mark"
is "$(get 81)" "b" "LOGICAL_DNS dual.test (AUTO) reaches pod b"
h_wait_for 2 grep -q '"GET / HTTP/1.1" 200 .* dual ' "$H_DIR/access.log"
like "$(grep '"GET / HTTP/1.1" 200 .* dual ' "$H_DIR/access.log" | tail -1)" "\"\\[$B6\\]:8001\" dual " \
	"over IPv6: AUTO prefers the name's IPv6 address"
seen=$(for _ in $(seq 1 20); do get 83 >/dev/null; done
	grep '"GET / HTTP/1.1" 200 .* dual-all ' "$H_DIR/access.log" | grep -o '"[^"]*:8001" dual-all' | sort -u | wc -l)
is "$seen" "2" "STRICT_DNS dual.test (ALL): both addresses are endpoints"

is "$(h_exec a curl -s -m 3 -o /dev/null -w '%{http_code}' "http://10.96.0.40:82/")" "503" \
	"a name that never resolved: 503"
like "$(h_exec a curl -s -m 3 "http://10.96.0.40:82/")" "no healthy upstream" "no healthy upstream (UH)"
is "$(get 80)" "c" "and the other clusters keep serving"
cmp_ok "$(metric dns_names)" "==" "3" "three names resolved (svc.test, dual.test, nothere.test)"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
