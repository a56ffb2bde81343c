#!/usr/bin/env bash
# make bench: every data-path case side by side in one run, rounds alternating with the case
# order rotated, raw figures to a TSV; tools/bench/report.py turns it into the table and plots.
#
# Environment: BENCH_FULL=1 (longer), BENCH_SMOKE=1 (seconds, checks the pipeline only),
# BENCH_ROUNDS, BENCH_SECS (per measurement), BENCH_OUT (directory for the results),
# BENCH_CASES (space-separated subset of the TCP and HTTP cases below), BENCH_TAG (appended to
# the results' file names, for runs of something other than this tree's build, with H_BIN).
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/pods.sh
. tests/lib/xds.sh

[ "$(id -u)" -eq 0 ] || {
	echo "make bench needs root (network namespaces, cgroups, BPF)" >&2
	exit 1
}

LG=$H_BIN/bench/loadgen
NT=$H_BIN/nettest
ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECS:-2}
IDLE_CONNS=10000
LAT_RATE=1000 # the fixed rate of the latency runs, over LAT_CONNS connections
LAT_CONNS=100
RR_SIZE=100 # bytes each way per TCP transaction
TPS_CONNS=16
CPS_CONC=8
WRK_CONNS=32
HTTP_BODY=64
# The xDS scale case: clusters and endpoints per cluster pushed at once (issue 4: 10,000 and 10).
XDS_CLUSTERS=10000
XDS_ENDPOINTS=10
XDS_WAIT=120 # seconds a push may take before the round counts it as failed
if [ -n "${BENCH_FULL:-}" ]; then
	ROUNDS=${BENCH_ROUNDS:-7}
	SECS=${BENCH_SECS:-6}
fi
if [ -n "${BENCH_SMOKE:-}" ]; then
	XDS_CLUSTERS=100
	XDS_WAIT=20
	ROUNDS=${BENCH_ROUNDS:-1}
	SECS=${BENCH_SECS:-0.3}
	IDLE_CONNS=200
	LAT_RATE=500
	LAT_CONNS=10
fi
# Everything the load loops do is bounded by count as well as by time.
MAX_REQ=$(awk -v r="$LAT_RATE" -v s="$SECS" 'BEGIN { printf "%d", r * s + 1 }')
MAX_TX=2000000
WRK_SECS=$(awk -v s="$SECS" 'BEGIN { d = int(s + 0.5); print d < 1 ? 1 : d }')

TCP_CASES="direct iptables ebpf ebpf_sockmap l4_fastpath"
HTTP_CASES="haproxy nginx shunt_l7 shunt_capture_http"
XDS_CASES="xds_sotw xds_delta"
CASES=${BENCH_CASES:-$TCP_CASES $HTTP_CASES $XDS_CASES}

DATE=$(date -u +%Y-%m-%d)
HOST=$(hostname -s)
OUT=${BENCH_OUT:-bench/results}
STEM=$DATE-$HOST${BENCH_TAG:+-$BENCH_TAG}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RAW=$OUT/$STEM.raw.tsv
CDF_DIR=$OUT/$STEM.cdf
rm -rf "$CDF_DIR"
mkdir -p "$CDF_DIR"
printf 'round\tcase\tmeasure\tvalue\n' >"$RAW"

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
rec() { printf '%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" >>"$RAW"; }
# A case that cannot run is in the table with its reason, never silently missing.
not_run() { printf '%s\t%s\t%s\t%s\n' "-" "$1" "status" "$2" >>"$RAW"; }

# CPU seconds (utime + stime, all threads) of a process, from /proc/PID/stat.
cpu_ticks() {
	[ -r "/proc/$1/stat" ] || {
		echo 0
		return
	}
	# Field 2 (comm) may hold spaces; count from the closing parenthesis.
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
TICK=$(getconf CLK_TCK)
cpu_us_of() { echo $(($(cpu_ticks "$1") * 1000000 / TICK)); }
# The same for shuntd's threads other than the main (agent) one: the proxy workers.
worker_cpu_us_of() {
	local t sum=0
	for t in /proc/"$1"/task/*; do
		[ "${t##*/}" = "$1" ] && continue
		[ -r "$t/stat" ] || continue
		sum=$((sum + $(sed 's/^.*) //' "$t/stat" | awk '{ print $12 + $13 }')))
	done
	echo $((sum * 1000000 / TICK))
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
kv() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $2"; }

# Holding IDLE_CONNS connections through the mesh takes four fds each in shuntd: lift this
# shell's (and so its children's) limit, within what the kernel allows.
ulimit -Hn 262144 2>/dev/null && ulimit -Sn 262144 2>/dev/null

# ---- the pods -----------------------------------------------------------------------------
h_init
h_pod a # the client
h_pod b # the servers
h_pod p # the L7 reverse proxies (HAProxy, nginx)
B=$(h_ip b)
P=$(h_ip p)
# Connection-rate runs leave many TIME_WAITs; inside the harness's own pods only.
for pod in a b p; do
	ip netns exec "$(h_ns $pod)" sysctl -qw net.ipv4.tcp_tw_reuse=1 \
		net.ipv4.ip_local_port_range="1024 65000" net.core.somaxconn=8192
done
h_bg b "$NT" serve 8080
SERVER_TCP=$H_LAST_PID
h_bg b "$LG" httpd 8000 -s "$HTTP_BODY"
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8080 ' && ss -ltn | grep -q ':8000 '" ||
	h_die "servers in pod b did not start"

# Every shuntd in the benchmark: one worker (as HAProxy and nginx get), no access log.
SHUNTD_FLAGS=(--workers 1 --access-log none)
start_shuntd() {
	local before
	before=0
	[ -f "$H_DIR/shuntd.log" ] && before=$(wc -l <"$H_DIR/shuntd.log")
	if ! h_shuntd "${SHUNTD_FLAGS[@]}" "$@" 2>/dev/null; then
		START_ERR=$(tail -n +"$((before + 1))" "$H_DIR/shuntd.log" | grep -v '^$' | tail -1)
		return 1
	fi
	# Settle (BPF loading, pod enrollment) before the idle RSS and the first measure.
	sleep 1
}

# ---- cases: start_CASE sets up the path (returns 1 with START_ERR when it cannot), and
# stop_CASE takes it down. Each TCP case is measured from pod a to B:8080.
start_direct() { :; }
stop_direct() { :; }
start_ebpf() { start_shuntd --no-sockmap; }
stop_ebpf() { h_shuntd_stop >/dev/null; }
start_ebpf_sockmap() { start_shuntd; }
stop_ebpf_sockmap() { h_shuntd_stop >/dev/null; }
# The Istio-style REDIRECT capture: shuntd's iptables mode (being added on main).
start_iptables() {
	start_shuntd --mode iptables && return 0
	case $START_ERR in
	*"not available"* | *"must be auto"*) START_ERR="needs shuntd --mode iptables" ;;
	esac
	return 1
}
stop_iptables() { h_shuntd_stop >/dev/null; }
# The same-node L4 fast path (kernel LB / direct sockmap between pods) does not exist yet.
start_l4_fastpath() {
	START_ERR="not implemented"
	return 1
}
stop_l4_fastpath() { :; }

# HTTP cases: the client in pod a asks HTTP_HOST:HTTP_PORT; the backend is B:8000.
write_haproxy_cfg() {
	cat >"$H_DIR/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 8000
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
	http-reuse always
frontend fe
	bind :8001
	default_backend be
backend be
	server b $B:8000 maxconn 1000
EOF
}
write_nginx_cfg() {
	mkdir -p "$H_DIR/nginx"
	cat >"$H_DIR/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $H_DIR/nginx/nginx.pid;
error_log $H_DIR/nginx/error.log warn;
events { worker_connections 20000; }
http {
	access_log off;
	client_body_temp_path $H_DIR/nginx/body;
	proxy_temp_path $H_DIR/nginx/proxy;
	fastcgi_temp_path $H_DIR/nginx/fastcgi;
	uwsgi_temp_path $H_DIR/nginx/uwsgi;
	scgi_temp_path $H_DIR/nginx/scgi;
	keepalive_requests 1000000;
	upstream be {
		server $B:8000;
		keepalive 128;
		keepalive_requests 1000000;
	}
	server {
		listen 8002;
		location / {
			proxy_pass http://be;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF
}
wait_port() { h_wait_for 5 h_exec "$1" sh -c "ss -ltn | grep -q ':$2 '"; }
start_haproxy() {
	write_haproxy_cfg
	h_bg p haproxy -db -f "$H_DIR/haproxy.cfg"
	PROXY_PID=$H_LAST_PID
	HTTP_HOST=$P HTTP_PORT=8001
	wait_port p 8001 || {
		START_ERR="haproxy did not start"
		return 1
	}
}
stop_haproxy() { kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null; }
start_nginx() {
	write_nginx_cfg
	h_bg p nginx -p "$H_DIR/nginx" -e "$H_DIR/nginx/error.log" -c "$H_DIR/nginx/nginx.conf"
	PROXY_PID=$H_LAST_PID
	HTTP_HOST=$P HTTP_PORT=8002
	wait_port p 8002 || {
		START_ERR="nginx did not start"
		return 1
	}
}
stop_nginx() { kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null; }
# shunt as a configured L7 reverse proxy (tools/bench/shunt-l7.yaml through --config), in pod p
# like HAProxy and nginx. Its --cgroup is an empty harness cgroup, so it captures nothing. It
# counts as available once the static listener answers; until --config is wired, it does not.
start_shunt_l7() {
	local cg=$H_CG/l7-none
	mkdir -p "$cg" "$H_DIR/run"
	sed -e "s/@PORT@/8003/" -e "s/@BACKEND@/$B/" tools/bench/shunt-l7.yaml >"$H_DIR/shunt-l7.yaml"
	h_bg p "$H_BIN/shuntd" --cgroup "$cg" --bpffs-dir "$H_DIR/bpf" --run-dir "$H_DIR/run" \
		--admin-port 0 --config "$H_DIR/shunt-l7.yaml" "${SHUNTD_FLAGS[@]}" \
		>>"$H_DIR/shuntd-l7.log" 2>&1
	PROXY_PID=$H_LAST_PID
	HTTP_HOST=$P HTTP_PORT=8003
	if ! wait_port p 8003 || ! h_exec a curl -sf --max-time 2 -o /dev/null "http://$P:8003/"; then
		START_ERR="needs shuntd --config with static HTTP listeners"
		return 1
	fi
	sleep 1
}
stop_shunt_l7() {
	kill -TERM "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
}
# Not a reverse proxy: the same HTTP job from a captured pod a straight to B:8000, through
# shuntd's passthrough (outbound and inbound legs, sk_msg on). Labelled as such in the table.
start_shunt_capture_http() {
	start_shuntd || return 1
	PROXY_PID=$H_SHUNTD_PID
	HTTP_HOST=$B HTTP_PORT=8000
}
stop_shunt_capture_http() { h_shuntd_stop >/dev/null; }

# shunt driven over ADS by the Python management server (tests/lib/xds_server.py), both in pod
# p: shuntd starts with no resources, then the server pushes XDS_CLUSTERS EDS clusters with
# XDS_ENDPOINTS endpoints each, and as many listeners, one service VIP per cluster that the
# kernel service LB takes (tcp_proxy, cluster marked kernel_lb), so the push ends in the maps. Fresh server and shuntd every round, so every round measures the
# same thing: one push of everything to a connected, idle shuntd.
XDS_DESC=$H_ROOT/build/xds/closure.pb
start_xds() { # API_TYPE
	local cg=$H_CG/xds-none
	mkdir -p "$cg" "$H_DIR/xrun"
	: >"$H_DIR/xds.ports"
	: >"$H_DIR/shuntd-xds.log"
	h_bg p /usr/bin/python3 "$H_ROOT/tests/lib/xds_server.py" serve "$XDS_DESC" 0 \
		>"$H_DIR/xds.ports" 2>>"$H_DIR/xds.err"
	XDS_SERVER=$H_LAST_PID
	h_wait_for 10 test -s "$H_DIR/xds.ports" || {
		START_ERR="the xDS server did not start: $(tail -1 "$H_DIR/xds.err")"
		return 1
	}
	read -r XDS_GPORT XDS_CPORT <"$H_DIR/xds.ports"
	xds_bootstrap "$1" "$XDS_GPORT" bench~scale bench >"$H_DIR/xds-boot.json"
	h_bg p "$H_BIN/shuntd" --cgroup "$cg" --bpffs-dir "$H_DIR/xbpf" --run-dir "$H_DIR/xrun" \
		--admin-port 0 --config "$H_DIR/xds-boot.json" "${SHUNTD_FLAGS[@]}" \
		>>"$H_DIR/shuntd-xds.log" 2>&1
	PROXY_PID=$H_LAST_PID
	h_wait_for 10 grep -q "xds: initial fetch complete" "$H_DIR/shuntd-xds.log" || {
		START_ERR="shuntd did not sync with the xDS server: $(tail -1 "$H_DIR/shuntd-xds.log")"
		return 1
	}
}
stop_xds() {
	kill -TERM "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	kill "$XDS_SERVER" 2>/dev/null
	wait "$XDS_SERVER" 2>/dev/null
}
start_xds_sotw() { start_xds GRPC; }
stop_xds_sotw() { stop_xds; }
start_xds_delta() { start_xds DELTA_GRPC; }
stop_xds_delta() { stop_xds; }

# ---- measures ---------------------------------------------------------------------------------
# measure CASE NAME PIDS... -- CMD...: runs CMD in pod a, records its key=value output and
# the CPU the listed processes used meanwhile.
run_client() {
	local c=$1 name=$2 out rc
	shift 2
	out=$(h_exec a timeout $((${SECS%.*} + 20)) "$@" 2>"$H_DIR/client.err")
	rc=$?
	if [ $rc -ne 0 ]; then
		log "$c $name: client failed (rc $rc): $(head -c 300 "$H_DIR/client.err") $out"
		rec "$c" "$name.failed" 1
	fi
	CLIENT_OUT=$out
}

measure_tcp() {
	local c=$1 sd=${H_SHUNTD_PID:-} s0 c0 w0 out ndone cpu
	# Latency at a fixed rate; the same run gives CPU per request and shuntd's RSS under load.
	s0=$(cpu_us_of "$SERVER_TCP")
	[ -n "$sd" ] && c0=$(cpu_us_of "$sd") && w0=$(worker_cpu_us_of "$sd")
	h_exec a timeout $((${SECS%.*} + 20)) "$LG" rr "$B" 8080 -c "$LAT_CONNS" -r "$LAT_RATE" \
		-n "$MAX_REQ" -d "$SECS" -s "$RR_SIZE" -o "$CDF_DIR/$c.$ROUND.cdf" \
		>"$H_DIR/lat.out" 2>"$H_DIR/client.err" &
	local lp=$!
	if [ -n "$sd" ]; then
		sleep "$(awk -v s="$SECS" 'BEGIN { print s * 0.7 }')"
		rec "$c" rss_load_kb "$(rss_kb "$sd")"
	fi
	if ! wait "$lp"; then
		log "$c lat: client failed: $(head -c 300 "$H_DIR/client.err") $(cat "$H_DIR/lat.out")"
		rec "$c" lat_p99.failed 1
	fi
	out=$(cat "$H_DIR/lat.out")
	ndone=$(kv "done" "$out")
	for q in p50 p90 p99 p999; do rec "$c" "lat_$q" "$(kv $q "$out")"; done
	if [ -n "$ndone" ] && [ "$ndone" -gt 0 ]; then
		cpu=$(($(cpu_us_of "$SERVER_TCP") - s0 + $(kv client_cpu_us "$out")))
		[ -n "$sd" ] && cpu=$((cpu + $(cpu_us_of "$sd") - c0))
		rec "$c" cpu_us_per_req "$(awk -v c="$cpu" -v n="$ndone" 'BEGIN { printf "%.1f", c / n }')"
		[ -n "$sd" ] && rec "$c" shuntd_cpu_us_per_req \
			"$(awk -v c="$(($(cpu_us_of "$sd") - c0))" -v n="$ndone" 'BEGIN { printf "%.1f", c / n }')"
		[ -n "$sd" ] && rec "$c" shuntd_worker_cpu_us_per_req \
			"$(awk -v c="$(($(worker_cpu_us_of "$sd") - w0))" -v n="$ndone" 'BEGIN { printf "%.1f", c / n }')"
	fi
	run_client "$c" tps "$LG" rr "$B" 8080 -c "$TPS_CONNS" -r 0 -n "$MAX_TX" -d "$SECS" -s "$RR_SIZE"
	rec "$c" tps "$(kv tps "$CLIENT_OUT")"
	run_client "$c" cps "$LG" connect "$B" 8080 -c "$CPS_CONC" -n "$MAX_TX" -d "$SECS" -s "$RR_SIZE"
	rec "$c" cps "$(kv cps "$CLIENT_OUT")"
	run_client "$c" bulk_1k "$LG" bulk "$B" 8080 -d "$SECS" -s 1024
	rec "$c" bulk_1k_mbps "$(kv mbps "$CLIENT_OUT")"
	run_client "$c" bulk_64k "$LG" bulk "$B" 8080 -d "$SECS" -s 65536
	rec "$c" bulk_64k_mbps "$(kv mbps "$CLIENT_OUT")"
	[ -n "$sd" ] && measure_idle "$c" "$sd"
	return 0
}

# shuntd's RSS with IDLE_CONNS idle connections held open through it, scaled per 10,000.
measure_idle() {
	local c=$1 sd=$2 r0 r1 ip opened fifo=$H_DIR/idle.fifo
	r0=$(rss_kb "$sd")
	rm -f "$fifo" "$H_DIR/idle.out"
	mkfifo "$fifo"
	h_exec a timeout 120 "$LG" idle "$B" 8080 -c "$IDLE_CONNS" -d 60 <"$fifo" \
		>"$H_DIR/idle.out" 2>"$H_DIR/idle.err" &
	ip=$!
	exec 9>"$fifo"
	h_wait_for 60 grep -q ready "$H_DIR/idle.out"
	sleep 0.3
	r1=$(rss_kb "$sd")
	exec 9>&-
	wait "$ip"
	opened=$(kv conns "$(cat "$H_DIR/idle.out")")
	if [ -n "$opened" ] && [ "$opened" -gt 0 ]; then
		rec "$c" idle_conns_opened "$opened"
		rec "$c" rss_per_10k_idle_kb "$(awk -v d="$((r1 - r0))" -v n="$opened" \
			'BEGIN { printf "%.0f", d * 10000 / n }')"
	fi
	[ -s "$H_DIR/idle.err" ] && log "$c idle: $(head -c 200 "$H_DIR/idle.err")"
	# The held connections are gone before the next measure starts.
	h_wait_for 10 sh -c "[ \$(ip netns exec $(h_ns a) ss -tn state established | wc -l) -lt 50 ]"
}

measure_http() {
	local c=$1 p0 w0 out req
	# Maximum requests/s (wrk, closed loop) and the proxy's CPU for them: rps per core.
	p0=$(cpu_us_of "$PROXY_PID")
	w0=$(worker_cpu_us_of "$PROXY_PID")
	out=$(h_exec a timeout $((${SECS%.*} + 20)) wrk -t1 -c"$WRK_CONNS" -d"${WRK_SECS}s" \
		"http://$HTTP_HOST:$HTTP_PORT/" 2>&1)
	local pcpu=$(($(cpu_us_of "$PROXY_PID") - p0)) wcpu=$(($(worker_cpu_us_of "$PROXY_PID") - w0))
	req=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$out")
	if [ -z "$req" ] || grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
		log "$c wrk: $(tr '\n' ' ' <<<"$out" | head -c 400)"
		rec "$c" rps.failed 1
	fi
	rec "$c" rps "$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")"
	if [ -n "$req" ] && [ "$pcpu" -gt 0 ]; then
		rec "$c" rps_per_core "$(awk -v n="$req" -v c="$pcpu" 'BEGIN { printf "%.0f", n / (c / 1e6) }')"
		rec "$c" proxy_cpu_us_per_req "$(awk -v n="$req" -v c="$pcpu" 'BEGIN { printf "%.2f", c / n }')"
	fi
	# shuntd only: its proxy worker threads alone (the agent thread is not on the data path).
	if [ "$PROXY_PID" = "${H_SHUNTD_PID:-}" ] && [ -n "$req" ] && [ "$wcpu" -gt 0 ]; then
		rec "$c" rps_per_core_workers "$(awk -v n="$req" -v c="$wcpu" 'BEGIN { printf "%.0f", n / (c / 1e6) }')"
	fi
	# Latency at a fixed rate, the same open-loop client as the TCP cases, in HTTP mode; the
	# proxy's RSS (VmRSS: the whole process, every thread) is sampled in the middle of it, for
	# each proxy alike.
	h_exec a timeout $((${SECS%.*} + 20)) "$LG" rr "$HTTP_HOST" "$HTTP_PORT" -c "$LAT_CONNS" \
		-r "$LAT_RATE" -n "$MAX_REQ" -d "$SECS" -H / -o "$CDF_DIR/$c.$ROUND.cdf" \
		>"$H_DIR/lat.out" 2>"$H_DIR/client.err" &
	local lp=$!
	sleep "$(awk -v s="$SECS" 'BEGIN { print s * 0.7 }')"
	rec "$c" rss_load_kb "$(rss_kb "$PROXY_PID")"
	if ! wait "$lp"; then
		log "$c http lat: client failed: $(head -c 300 "$H_DIR/client.err")"
		rec "$c" lat_p99.failed 1
	fi
	out=$(cat "$H_DIR/lat.out")
	for q in p50 p90 p99 p999; do rec "$c" "lat_$q" "$(kv $q "$out")"; done
	return 0
}

# The push (the server's clock when its CDS response was queued) to the log lines of the snapshot
# holding every listener, cluster and endpoint set (shuntd's clock when it was published) and of
# the kernel service maps written for it (logged just before that swap); the same machine's wall
# clock, in milliseconds. And shuntd's RSS before and after.
msecs_of() { date -u -d "${1%% *}" +%s%3N; }
measure_xds() {
	local c=$1 out pushed want line sline n
	rec "$c" xds_rss_before_kb "$(rss_kb "$PROXY_PID")"
	out=$(h_exec p /usr/bin/python3 "$H_ROOT/tests/lib/xds_server.py" ctl "$XDS_CPORT" \
		scale "$XDS_CLUSTERS" "$XDS_ENDPOINTS" "v$ROUND" vips)
	pushed=$(jq -r '.pushed_at // empty' <<<"$out")
	want="active: $XDS_CLUSTERS listeners, 0 routes, $((XDS_CLUSTERS + 1)) clusters, $XDS_CLUSTERS endpoint sets"
	if [ -z "$pushed" ] || ! h_wait_for "$XDS_WAIT" grep -q "snapshot [0-9]* $want" \
		"$H_DIR/shuntd-xds.log"; then
		log "$c: no snapshot $want: $(tail -c 300 "$H_DIR/shuntd-xds.log") $out"
		rec "$c" xds_apply_ms.failed 1
		rec "$c" xds_maps_ms.failed 1
		return 0
	fi
	line=$(grep "snapshot [0-9]* $want" "$H_DIR/shuntd-xds.log" | head -1)
	rec "$c" xds_apply_ms "$(awk -v a="$(msecs_of "$line")" -v b="$pushed" 'BEGIN { printf "%.0f", a - b * 1000 }')"
	# shuntd's own share: translation, the swap and the datapath's writes (its log line).
	[[ $line =~ applied\ in\ ([0-9.]+)\ ms ]] && rec "$c" xds_shuntd_apply_ms "${BASH_REMATCH[1]}"
	rec "$c" xds_rss_kb "$(rss_kb "$PROXY_PID")"
	# The service map write of that snapshot: the last "services:" line before it. Then the
	# maps themselves must hold every VIP with all its backends, for the kernel LB.
	sline=$(awk -v want="$want" '/ services: [0-9]+ in the kernel maps/ { s = $0 }
		index($0, want) { print s; exit }' "$H_DIR/shuntd-xds.log")
	n=$("$H_BIN/shuntctl" --run-dir "$H_DIR/xrun" \
		--bpffs-dir "$H_DIR/xbpf" services -o json 2>>"$H_DIR/xds.err" |
		jq --argjson m "$XDS_ENDPOINTS" '[.[] | select(.kernel_lb and .slots == $m)] | length')
	if [[ $sline != *" services: $XDS_CLUSTERS in the kernel maps "* ]] ||
		[ "${n:-0}" -ne "$XDS_CLUSTERS" ]; then
		log "$c: the kernel maps do not hold $XDS_CLUSTERS services (log: ${sline:-none}; maps: ${n:-?})"
		rec "$c" xds_maps_ms.failed 1
		return 0
	fi
	rec "$c" xds_maps_ms "$(awk -v a="$(msecs_of "$sline")" -v b="$pushed" 'BEGIN { printf "%.0f", a - b * 1000 }')"
}

# ---- rounds -----------------------------------------------------------------------------------
declare -A SKIP
read -ra LIST <<<"$CASES"
N=${#LIST[@]}
log "cases: ${LIST[*]}; $ROUNDS rounds of ${SECS}s measures; results in $OUT/$STEM.md"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for ((ci = 0; ci < N; ci++)); do
		# Rotate the order each round so no case always follows the same neighbour.
		c=${LIST[$(((ci + ROUND - 1) % N))]}
		[ -n "${SKIP[$c]:-}" ] && continue
		START_ERR=
		if ! "start_$c"; then
			log "$c: not run: $START_ERR"
			not_run "$c" "not run: $START_ERR"
			SKIP[$c]=1
			"stop_$c" 2>/dev/null
			continue
		fi
		log "round $ROUND/$ROUNDS: $c"
		[ -n "$H_SHUNTD_PID" ] && rec "$c" rss_idle_kb "$(rss_kb "$H_SHUNTD_PID")"
		case " $HTTP_CASES " in
		*" $c "*) measure_http "$c" ;;
		*)
			case " $XDS_CASES " in
			*" $c "*) measure_xds "$c" ;;
			*) measure_tcp "$c" ;;
			esac
			;;
		esac
		"stop_$c"
	done
done

# ---- the report -------------------------------------------------------------------------------
CMD="make bench${BENCH_FULL:+ BENCH_FULL=1}${BENCH_SMOKE:+ (bench-smoke)}"
[ -n "${BENCH_TAG:-}" ] && CMD="BENCH_TAG=$BENCH_TAG H_BIN=$H_BIN $CMD"
{
	echo "kernel	$(uname -r)"
	echo "cpu	$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "cores	$(nproc)"
	echo "shunt	$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
	echo "haproxy	$(haproxy -v 2>&1 | head -1)"
	echo "nginx	$(nginx -v 2>&1)"
	echo "wrk	$(wrk -v 2>&1 | head -1)"
	echo "command	$CMD"
	echo "settings	rounds=$ROUNDS secs=$SECS lat_rate=$LAT_RATE lat_conns=$LAT_CONNS rr_size=$RR_SIZE tps_conns=$TPS_CONNS cps_concurrency=$CPS_CONC wrk_conns=$WRK_CONNS http_body=$HTTP_BODY idle_conns=$IDLE_CONNS shuntd_flags=${SHUNTD_FLAGS[*]}"
	echo "date	$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$OUT/$STEM.env.tsv"
python3 tools/bench/report.py "$OUT" "$STEM"
