#!/usr/bin/env bash
# Bound listeners follow LDS: a listener with bind_to_port pushed over ADS is listened on, one
# removed stops accepting while its connections in flight finish, and one whose port is taken
# is NACKed with the reason and changes nothing. State of the world, then delta.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh
. tests/lib/xds.sh

PY=/usr/bin/python3
DESC=build/xds/closure.pb
[ -f "$DESC" ] || { echo "Bail out! run make (needs $DESC)"; exit 1; }
h_init

# The plain HTTP server behind the listeners ("hello" at /, 2 MB at /blob).
h_www_local
WPORT=$H_WWW_PORT

TCP='"@type":"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"'
bound() { # NAME PORT
	printf '{"name":"%s","address":{"socket_address":{"address":"127.0.0.1","port_value":%s}},"filter_chains":[{"filters":[{"name":"envoy.filters.network.tcp_proxy","typed_config":{%s,"stat_prefix":"%s","cluster":"web"}}]}]}' "$1" "$2" "$TCP" "$1"
}
CLUSTERS="[{\"name\":\"web\",\"type\":\"STATIC\",\"connect_timeout\":\"1s\",\"load_assignment\":{\"cluster_name\":\"web\",\"endpoints\":[{\"lb_endpoints\":[{\"endpoint\":{\"address\":{\"socket_address\":{\"address\":\"127.0.0.1\",\"port_value\":$WPORT}}}}]}]}}]"
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
get() { curl -sf -m 3 "http://127.0.0.1:$1/"; }
listeners() { h_ctl config dump --type listeners | jq -r '[.configs[0].dynamic_listeners // [] | .[] | select(.active_state) | "\(.name)@\(.active_state.version_info)"] | sort | join(",")'; }

for MODE in sotw delta; do
	api=GRPC
	[ "$MODE" = delta ] && api=DELTA_GRPC
	xds_server_start "$H_DIR" || { echo "Bail out! the xDS server did not start"; exit 1; }
	SERVER=$XDS_PID
	ctl() { xds_ctl "$@"; }
	P1=$(free_port) P2=$(free_port) P3=$(free_port)
	ctl set cds 1 "$CLUSTERS" >/dev/null
	ctl set lds 1 "[$(bound l1 "$P1")]" >/dev/null
	xds_bootstrap "$api" "$GPORT" >"$H_DIR/boot.json"
	: >"$H_DIR/shuntd.log"
	h_shuntd --config "$H_DIR/boot.json" || { echo "Bail out! shuntd did not start"; exit 1; }
	h_wait_for 10 grep -q "xds: initial fetch complete" "$H_DIR/shuntd.log" ||
		diag "$(tail -5 "$H_DIR/shuntd.log")"
	h_wait_for 5 get "$P1" >/dev/null
	is "$(get "$P1")" "hello" "$MODE: a bound listener pushed by LDS is listened on"

	ctl set lds 2 "[$(bound l1 "$P1"),$(bound l2 "$P2")]" >/dev/null
	h_wait_for 5 get "$P2" >/dev/null
	is "$(get "$P2")" "hello" "$MODE: a second one added by an update is listened on"
	is "$(get "$P1")" "hello" "$MODE: the first still serves"

	# A download in flight on l1 while l1 is removed.
	curl -sf -m 20 --limit-rate 1M -o "$H_DIR/inflight" "http://127.0.0.1:$P1/blob" &
	inflight=$!
	sleep 0.5
	ctl set lds 3 "[$(bound l2 "$P2")]" >/dev/null
	h_wait_for 5 sh -c "! curl -sf -m 1 http://127.0.0.1:$P1/ >/dev/null 2>&1"
	t_ok $? "$MODE: the removed listener's port no longer accepts"
	wait "$inflight"
	is "$?/$(stat -c %s "$H_DIR/inflight")" "0/2097152" "$MODE: the download in flight on it finished"
	is "$(get "$P2")" "hello" "$MODE: the remaining listener serves"

	# A port already in use: NACKed with the reason, nothing else changes.
	$PY -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(60)' "$P3" &
	BUSY=$!
	H_PIDS+=("$BUSY")
	sleep 0.3
	P4=$(free_port)
	before=$(listeners)
	like "$before" "^l2@[0-9]+$" "$MODE: l2 alone is active before the refused update"
	ctl set lds 4 "[$(bound l2 "$P2"),$(bound l3 "$P3"),$(bound l4 "$P4")]" >/dev/null
	h_wait_for 5 grep -q "cannot listen on 127.0.0.1:$P3" "$H_DIR/shuntd.log"
	t_ok $? "$MODE: a port in use is refused with the reason" || diag "$(tail -3 "$H_DIR/shuntd.log")"
	ctl requests >"$H_DIR/reqs"
	like "$(jq -r '[.[] | select(.type == "lds" and .error != null)] | last | .error' "$H_DIR/reqs")" \
		"l3: cannot listen on 127.0.0.1:$P3" "$MODE: the NACK's error_detail names the listener and port"
	is "$(listeners)" "$before" "$MODE: the listeners stay at the last good version" ||
		diag "$(h_ctl config dump --type listeners | jq -c ".configs[0].dynamic_listeners" | head -c 800)"
	curl -sf -m 1 "http://127.0.0.1:$P4/" >/dev/null 2>&1
	is "$?" "7" "$MODE: the other new listener of the refused update was not opened"
	is "$(get "$P2")" "hello" "$MODE: traffic keeps flowing on the previous config"
	kill "$BUSY" 2>/dev/null
	wait "$BUSY" 2>/dev/null
	h_shuntd_stop >/dev/null
	kill "$SERVER" 2>/dev/null
	wait "$SERVER" 2>/dev/null
done
done_testing
