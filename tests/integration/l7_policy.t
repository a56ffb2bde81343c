#!/usr/bin/env bash
# Issue 5, resilience and affinity end to end: shuntd --config with
# tests/integration/fixtures/l7-policy.yaml on its own 127.0.0.1 listener, real Python backends
# on 127.0.0.1 (tests/lib/policy_peer.py) and curl. Proved by status codes, bodies, timings, the
# access log's response flags and what each backend saw:
#   circuit breakers (max_connections 1, max_pending_requests 1) answer the overflow 503 UO with
#   x-envoy-overloaded; max_requests and max_retries hold per cluster over both workers; a 0.3 s connect timeout to an endpoint that never answers is 503 UF (and
#   UF,URX once retried); route and per-try timeouts are 504 UT; retries of a backend that always
#   answers 503 stop after num_retries with URX; the previous_hosts predicate keeps a bad
#   endpoint to one try per request; ring hash and Maglev keep every user on one backend.
# The endpoint that never answers is a listener whose accept queue is full (backlog 0 and one
# connection nobody accepts): the kernel drops SYNs to it, so nothing of the host's routing is
# touched.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

PY=/usr/bin/python3
h_init
P=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$PY tests/lib/policy_peer.py "$H_DIR" cb:slow:1.0 cap:slow:1.0 slow:slow:2.0 fail:fail t1:ok t2:ok tbad:fail \
	h1:ok h2:ok h3:ok hole:hole 2>"$H_DIR/peer.err" &
H_PIDS+=($!)
h_wait_for 10 test -s "$H_DIR/ports" ||
	{ echo "Bail out! the backends did not start: $(cat "$H_DIR/peer.err")"; exit 1; }
port() { awk -v n="$1" '$1 == n { print $2 }' "$H_DIR/ports"; }
sed -e "s/@P@/$P/g" -e "s/@CB@/$(port cb)/" -e "s/@CAP@/$(port cap)/" -e "s/@SLOW@/$(port slow)/" \
	-e "s/@FAIL@/$(port fail)/" -e "s/@T1@/$(port t1)/" -e "s/@T2@/$(port t2)/" \
	-e "s/@TBAD@/$(port tbad)/" -e "s/@H1@/$(port h1)/g" -e "s/@H2@/$(port h2)/g" \
	-e "s/@H3@/$(port h3)/g" -e "s/@HOLE@/$(port hole)/" \
	tests/integration/fixtures/l7-policy.yaml >"$H_DIR/policy.yaml"
h_shuntd --config "$H_DIR/policy.yaml" --workers 2 || { echo "Bail out! shuntd did not start"; exit 1; }

URL=http://127.0.0.1:$P
c() { curl --noproxy '*' -s -m 10 "$@"; }
# hits NAME PATH: how many requests backend NAME saw for exactly PATH.
hits() { awk -v n="$1" -v p="$2" '$1 == n && $2 == p { k++ } END { print k + 0 }' "$H_DIR/hits"; }
# logline PATH: the access log's line for a request to PATH (waits for it to be written).
logline() {
	h_wait_for 3 grep -q "\"GET $1 HTTP/1.1\"" "$H_DIR/access.log"
	grep "\"GET $1 HTTP/1.1\"" "$H_DIR/access.log" | tail -1
}
# logcount REGEX N: how many access-log lines match REGEX, once there are N (or 3 s passed).
log_has() { [ "$(grep -Ec "$1" "$H_DIR/access.log")" -ge "$2" ]; }
logcount() {
	h_wait_for 3 log_has "$1" "$2"
	grep -Ec "$1" "$H_DIR/access.log"
}
# timed CURL-ARGS...: "STATUS SECONDS BODY" of one request.
timed() { c -w '\n%{http_code} %{time_total}' "$@" | tr '\n' ' ' | awk '{ print $(NF-1), $NF, $1 }'; }
ms_of() { awk -v s="$1" 'BEGIN { printf "%d", s * 1000 }'; }

# ---- connect timeout: an endpoint that never answers SYNs ----
read -r st secs body < <(timed "$URL/ct/1")
is "$st" "503" "connect timeout: 503"
t=$(ms_of "$secs")
ok "after about the 0.3 s connect timeout ($t ms)" test "$t" -ge 250 -a "$t" -lt 2000
like "$(c "$URL/ct/2")" 'upstream connect error or disconnect/reset before headers\. reset reason: connection timeout$' \
	"with Envoy's body, naming the connection timeout"
like "$(logline /ct/1)" '" 503 UF upstream_reset_before_response_started\{connection_timeout\} ' \
	"the access log says UF, connection_timeout"
read -r st secs body < <(timed "$URL/ctr/1")
t=$(ms_of "$secs")
ok "retried once on connect-failure: 503 after two connect timeouts ($st, $t ms)" \
	test "$st" = 503 -a "$t" -ge 550 -a "$t" -lt 2500
like "$(logline /ctr/1)" '" 503 UF,URX ' "and the access log says UF,URX"

# ---- route timeout and per-try timeout ----
read -r st secs body < <(timed "$URL/rt/1")
t=$(ms_of "$secs")
is "$st $body" "504 upstream" "a 0.4 s route timeout before a 2 s backend: 504 upstream request timeout"
ok "after about 0.4 s ($t ms)" test "$t" -ge 350 -a "$t" -lt 1900
like "$(logline /rt/1)" '" 504 UT upstream_response_timeout ' "the access log says UT"
is "$(hits slow /rt/1)" "1" "no retry policy: the backend saw the request once"
read -r st secs body < <(timed "$URL/pt/1")
t=$(ms_of "$secs")
is "$st" "504" "a 0.3 s per-try timeout, retried once: 504"
ok "after about two tries ($t ms)" test "$t" -ge 550 -a "$t" -lt 2000
like "$(logline /pt/1)" '" 504 UT,URX upstream_per_try_timeout ' \
	"the access log says UT,URX (timed out, retries exhausted)"
is "$(hits slow /pt/1)" "2" "the backend saw both tries"

# ---- retries exhausted on a backend that always answers 503 ----
read -r st secs body < <(timed "$URL/rx/1")
is "$st $body" "503 fail" "retry_on 5xx, num_retries 2, always 503: the backend's 503 comes through"
is "$(hits fail /rx/1)" "3" "the backend saw exactly 3 requests (1 + 2 retries)"
like "$(logline /rx/1)" '" 503 URX via_upstream ' "the access log says URX"

# ---- previous_hosts: 3 endpoints at random, one always 503. Without the predicate a retry
# would draw the bad one again 1 time in 3, so about 1 request in 9 would see it twice: 40
# requests without any such pass by luck about 1% of the time. ----
args=()
for i in $(seq 1 40); do args+=(-o /dev/null "$URL/ph/$i"); done
codes=$(c -w '%{http_code}\n' "${args[@]}" | sort | uniq -c | awk '{ print $2 "x" $1 }')
is "$codes" "200x40" "previous_hosts: 40 requests, all 200"
# Per request: how often the bad endpoint and the good ones saw it.
read -r bad_twice good_once bad_total < <(awk '$2 ~ /^\/ph\// {
	if ($1 == "tbad") bad[$2]++; else good[$2]++; seen[$2] = 1 }
	END { for (p in seen) { if (bad[p] > 1) b2++; if (good[p] == 1) g1++; bt += bad[p] }
	      print b2 + 0, g1 + 0, bt + 0 }' "$H_DIR/hits")
is "$bad_twice" "0" "the bad endpoint was tried at most once per request"
is "$good_once" "40" "each request reached exactly one good endpoint"
cmp_ok "$bad_total" -ge 1 "the bad endpoint was drawn (and retried away from) $bad_total times"
is "$(logcount '"GET /ph/[0-9]+ HTTP/1.1" 200 - via_upstream ' 40)" "40" \
	"the access log has the 40 requests as 200 without flags"

# ---- hash-policy affinity: 10 users x 20 requests, in 4 curl runs each (4 connections that
# the 2 workers share between them) ----
# affinity PREFIX CURL-ARGS-FN: prints "USERS_ON_ONE_BACKEND DISTINCT_BACKENDS".
affinity() {
	local prefix=$1 argfn=$2 u k i one=0 all=""
	for u in $(seq 1 10); do
		local got=""
		for k in 1 2 3 4; do
			local us=()
			for i in 1 2 3 4 5; do us+=("$URL/$prefix/$u-$k-$i"); done
			# shellcheck disable=SC2046 # the helper's words are curl arguments
			got+=$(c $("$argfn" "$u") "${us[@]}")$'\n'
		done
		local n
		n=$(grep -c . <<<"$got")
		[ "$n" -eq 20 ] && [ "$(sort -u <<<"$got" | grep -c .)" -eq 1 ] && one=$((one + 1))
		all+=$(head -1 <<<"$got")$'\n'
	done
	echo "$one $(sort -u <<<"$all" | grep -c .)"
}
by_header() { echo "-H x-user:user$1"; }
by_cookie() { echo "-H Cookie:user=u$1"; }
by_source() { echo "--interface 127.0.0.$((10 + $1))"; }
for lb in ring maglev; do
	read -r one distinct < <(affinity "$lb" by_header)
	is "$one" "10" "$lb, hash on x-user: each of 10 users got all 20 answers from one backend"
	cmp_ok "$distinct" -ge 2 "and the users were spread over $distinct backends"
done
read -r one distinct < <(affinity cookie by_cookie)
is "$one" "10" "ring hash on the cookie 'user': each of 10 users stays on one backend"
cmp_ok "$distinct" -ge 2 "over $distinct backends"
read -r one distinct < <(affinity srcip by_source)
is "$one" "10" "Maglev on the source address: each of 10 client addresses stays on one backend"
cmp_ok "$distinct" -ge 2 "over $distinct backends"

# ---- max_requests and max_retries count per cluster, over both workers ----
pids=()
for i in 0 1 2 3 4 5 6 7 8 9; do
	c -o /dev/null -w '%{http_code}' "$URL/cap/$i" >"$H_DIR/cap.$i.code" &
	pids+=($!)
done
wait "${pids[@]}"
codes=$(for i in 0 1 2 3 4 5 6 7 8 9; do cat "$H_DIR/cap.$i.code"; echo; done)
n200=$(grep -c '^200$' <<<"$codes")
n503=$(grep -c '^503$' <<<"$codes")
is "$n200 $n503" "2 8" "10 requests at once to a cluster allowing 2 active requests: 2 served, 8 refused"
is "$(cat "$H_DIR/cap.peak")" "2" "the backend saw at most 2 at a time"
is "$(logcount '"GET /cap/[0-9] HTTP/1.1" 503 UO upstream_overflow ' 8)" "8" \
	"the refusals are flagged UO"
is "$(c -w '%{http_code}' -o /dev/null "$URL/nr/1")" "503" \
	"a cluster with max_retries 0: the 503 comes back"
is "$(hits fail /nr/1)" "1" "unretried, though the route allows 2 retries"
line=$(logline /nr/1)
like "$line" '" 503 - via_upstream ' "and not flagged URX (a retry overflow, not exhaustion): $line"
like "$(h_ctl stats 2>/dev/null)" "http_rq_retry_overflow: [1-9]" "counted as a retry overflow"

# ---- circuit breakers on connections. A worker's pool with no connection still opens one (as
# in Envoy, whose pools are per worker too), so this part runs with one worker, where the
# numbers are exact. ----
h_shuntd_stop
h_shuntd --config "$H_DIR/policy.yaml" --workers 1 || { echo "Bail out! shuntd did not restart"; exit 1; }
# One request takes the only connection (the backend holds it 1 s), then 5 at once: one may
# wait for that connection, the other 4 overflow at once.
c -o /dev/null -D "$H_DIR/cb.0" -w '%{http_code}' "$URL/cb/0" >"$H_DIR/cb.0.code" &
first=$!
h_wait_for 3 sh -c "grep -q '^cb /cb/0\$' '$H_DIR/hits'"
pids=()
for i in 1 2 3 4 5; do
	c -o "$H_DIR/cb.$i.body" -D "$H_DIR/cb.$i" -w '%{http_code} %{time_total}' "$URL/cb/$i" \
		>"$H_DIR/cb.$i.code" &
	pids+=($!)
done
wait "$first" "${pids[@]}"
n200=0 n503=0 over=0 fast=0
for i in 0 1 2 3 4 5; do
	read -r code secs <"$H_DIR/cb.$i.code"
	case $code in
	200) n200=$((n200 + 1)) ;;
	503)
		n503=$((n503 + 1))
		grep -qi '^x-envoy-overloaded: true' "$H_DIR/cb.$i" &&
			grep -q 'reset reason: overflow' "$H_DIR/cb.$i.body" && over=$((over + 1))
		[ "$(ms_of "$secs")" -lt 800 ] && fast=$((fast + 1))
		;;
	esac
done
is "$n200 $n503" "2 4" "6 requests to a 1-connection, 1-pending cluster: 2 served, 4 refused with 503"
is "$over" "4" "each 503 carries x-envoy-overloaded: true and the overflow body"
is "$fast" "4" "and came at once, without waiting for the backend"
is "$(logcount '"GET /cb/[0-9] HTTP/1.1" 503 UO upstream_overflow ' 4)" "4" \
	"the access log has 4 overflows flagged UO"
is "$(cat "$H_DIR/cb.peak")" "1" "the backend never had more than 1 connection open"
is "$(c -w ' %{http_code}' "$URL/cb/after" | tr -d '\n')" "cb 200" "once the load is gone, the cluster serves again"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
