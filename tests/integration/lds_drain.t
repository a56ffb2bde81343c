#!/usr/bin/env bash
# Listener drain on LDS updates, as Envoy does it: the connections of a listener that an update
# removes or changes drain (HTTP/1.1: idle ones close at once, busy ones after a response marked
# connection: close; HTTP/2: GOAWAY, the streams in flight finish), and tcp_proxy ones, which
# cannot be drained politely, are closed when the drain time (--drain-time-s) ends. An identical
# re-push under a new version, which istiod sends all the time, drains nothing; neither does a
# change to another listener. State of the world, then delta. Then in pods: a connection that
# virtualOutbound handed to a service listener belongs to that listener, and one served by
# virtualOutbound's own chain to virtualOutbound.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh
. tests/lib/xds.sh

PY=/usr/bin/python3
DESC=build/xds/closure.pb
[ -f "$DESC" ] || { echo "Bail out! run make (needs $DESC)"; exit 1; }
DRAIN_S=3
h_init

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PB=$(free_port)
# The backend: /sleep/MS answers "slept MS" after MS milliseconds, over HTTP/1.1 keep-alive.
BACKEND=$PWD/tests/lib/sleep_backend.py
$PY "$BACKEND" "$PB" 127.0.0.1 &
H_PIDS+=($!)
h_wait_for 5 sh -c "ss -ltn | grep -q '127.0.0.1:$PB '"

# Clients that report when (wall clock) shuntd closed their connection (to 127.0.0.1, or to
# $HOST).
#   idle PORT READY GO: one keep-alive exchange, READY written, then either the close
#     ("eof TIME") or, once the file GO exists, a second request on the same connection
#     ("reused" or "closed").
#   tcp PORT READY: a raw connection through a tcp_proxy listener that sends nothing; "eof TIME".
cat >"$H_DIR/client.py" <<'EOF'
import os, select, socket, sys, time
mode, port, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((os.environ.get("HOST", "127.0.0.1"), port), timeout=10)
if mode == "idle":
    s.sendall(b"GET /sleep/0 HTTP/1.1\r\nHost: x\r\n\r\n")
    d = b""
    while b"slept 0" not in d:
        d += s.recv(4096)
open(ready, "w").write("ready\n")
end = time.monotonic() + 40
while time.monotonic() < end:
    if select.select([s], [], [], 0.05)[0]:
        x = s.recv(4096)
        print("eof %.3f" % time.time() if x == b"" else "data")
        sys.exit(0)
    if mode == "idle" and os.path.exists(sys.argv[4]):
        s.sendall(b"GET /sleep/0 HTTP/1.1\r\nHost: x\r\n\r\n")
        d = b""
        while b"slept 0" not in d:
            x = s.recv(4096)
            if not x:
                break
            d += x
        print("reused" if b"slept 0" in d else "closed")
        sys.exit(0)
print("timeout")
EOF
client() { # MODE PORT NAME: in the background (in pod $IN to $HOST if set), output in NAME.out
	rm -f "$H_DIR/$3.ready" "$H_DIR/$3.go"
	if [ -n "${IN:-}" ]; then
		h_bg_raw "$IN" env "HOST=$HOST" $PY "$H_DIR/client.py" "$1" "$2" "$H_DIR/$3.ready" \
			"$H_DIR/$3.go" >"$H_DIR/$3.out" 2>&1
	else
		$PY "$H_DIR/client.py" "$1" "$2" "$H_DIR/$3.ready" "$H_DIR/$3.go" \
			>"$H_DIR/$3.out" 2>&1 &
		H_PIDS+=($!)
	fi
	h_wait_for 5 test -s "$H_DIR/$3.ready"
}
# SECONDS between the push at T0 and the close the client NAME reported; "none" without one.
closed_after() { # NAME T0
	h_wait_for 10 grep -q . "$H_DIR/$1.out"
	read -r what when <"$H_DIR/$1.out"
	[ "$what" = eof ] || { echo "none ($what)"; return; }
	$PY -c 'import sys; print("%.1f" % (float(sys.argv[1]) - float(sys.argv[2])))' "$when" "$2"
}
lt() { $PY -c 'import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
pstat() { h_ctl -o json stats | jq -r ".proxy.$1"; }
version_is() { h_ctl config dump --type listeners | jq -e --arg v "$1" \
	'[.configs[0].dynamic_listeners[] | select(.active_state) | .active_state.version_info] | all(. == $v) and length > 0' >/dev/null; }

HCM='"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"'
ROUTER='{"name":"envoy.filters.http.router","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}'
TCP='"@type":"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"'
web() { # PORT TAG: an HTTP listener whose responses carry x-config: TAG
	printf '{"name":"web","address":{"socket_address":{"address":"127.0.0.1","port_value":%s}},"filter_chains":[{"filters":[{"name":"envoy.filters.network.http_connection_manager","typed_config":{%s,"stat_prefix":"web","drain_timeout":"1s","http_filters":[%s],"route_config":{"name":"r","virtual_hosts":[{"name":"all","domains":["*"],"response_headers_to_add":[{"header":{"key":"x-config","value":"%s"}}],"routes":[{"match":{"prefix":"/"},"route":{"cluster":"be","timeout":"10s"}}]}]}}}]}]}' "$1" "$HCM" "$ROUTER" "$2"
}
raw() { # PORT
	printf '{"name":"raw","address":{"socket_address":{"address":"127.0.0.1","port_value":%s}},"filter_chains":[{"filters":[{"name":"envoy.filters.network.tcp_proxy","typed_config":{%s,"stat_prefix":"raw","cluster":"be"}}]}]}' "$1" "$TCP"
}
CLUSTERS="[{\"name\":\"be\",\"type\":\"STATIC\",\"connect_timeout\":\"1s\",\"load_assignment\":{\"cluster_name\":\"be\",\"endpoints\":[{\"lb_endpoints\":[{\"endpoint\":{\"address\":{\"socket_address\":{\"address\":\"127.0.0.1\",\"port_value\":$PB}}}}]}]}}]"
tag_of() { curl --noproxy '*' -s -m 5 -D - -o /dev/null "http://127.0.0.1:$1/sleep/0" | tr -d '\r' | sed -n 's/^x-config: //p'; }

for MODE in sotw delta; do
	api=GRPC
	[ "$MODE" = delta ] && api=DELTA_GRPC
	xds_server_start "$H_DIR" || { echo "Bail out! the xDS server did not start"; exit 1; }
	SERVER=$XDS_PID
	P1=$(free_port) P2=$(free_port)
	xds_ctl set cds 1 "$CLUSTERS" >/dev/null
	xds_ctl set lds 1 "[$(web "$P1" one),$(raw "$P2")]" >/dev/null
	xds_bootstrap "$api" "$GPORT" >"$H_DIR/boot.json"
	: >"$H_DIR/shuntd.log"
	h_shuntd --config "$H_DIR/boot.json" --drain-time-s "$DRAIN_S" ||
		{ echo "Bail out! shuntd did not start"; exit 1; }
	h_wait_for 10 version_is 1
	h_wait_for 5 sh -c "curl --noproxy '*' -sf -m 1 http://127.0.0.1:$P1/sleep/0 >/dev/null"
	is "$(tag_of "$P1")" "one" "$MODE: the HTTP listener pushed by LDS serves"
	# A raw connection on the tcp_proxy listener, open across the next three updates.
	client tcp "$P2" tcp

	# The same listeners again under a new version: nothing drains.
	client idle "$P1" same
	if [ "$MODE" = sotw ]; then
		xds_ctl set lds 2 "[$(web "$P1" one),$(raw "$P2")]" >/dev/null
	else # the server sends only what changed: a new version of the same resources
		xds_ctl touch lds web 2 >/dev/null
		xds_ctl touch lds raw 2 >/dev/null
	fi
	h_wait_for 10 version_is 2
	t_ok $? "$MODE: an identical re-push is applied (version 2)"
	sleep 0.5
	touch "$H_DIR/same.go"
	h_wait_for 5 grep -q . "$H_DIR/same.out"
	is "$(cat "$H_DIR/same.out")" "reused" "$MODE: identical re-push: the idle keep-alive connection stays usable"
	is "$(pstat listener_drain_cx)" "0" "$MODE: identical re-push: nothing drained"

	# The HTTP listener's config changes (its route adds another header): its idle
	# connection closes at once; the tcp_proxy listener, unchanged, keeps its connection.
	client idle "$P1" change
	t0=$(date +%s.%N)
	xds_ctl set lds 3 "[$(web "$P1" two),$(raw "$P2")]" >/dev/null
	secs=$(closed_after change "$t0")
	ok "$MODE: changed listener: its idle keep-alive connection is closed promptly ($secs s)" lt "$secs" 2
	is "$(tag_of "$P1")" "two" "$MODE: changed listener: new connections get the new config"
	is "$(pstat listener_drain_cx)" "1" "$MODE: changed listener: one connection drained (listener_drain_cx)"

	# The HTTP listener is removed, with an idle connection, an HTTP/1.1 request in flight
	# and an HTTP/2 stream in flight on it.
	client idle "$P1" gone
	curl --noproxy '*' -s -m 10 -D "$H_DIR/h1.head" -o "$H_DIR/h1.body" \
		"http://127.0.0.1:$P1/sleep/1500" &
	h1=$!
	timeout 10 nghttp -v "http://127.0.0.1:$P1/sleep/2500" >"$H_DIR/h2.out" 2>&1 &
	h2=$!
	h_wait_for 5 grep -q 'recv SETTINGS' "$H_DIR/h2.out"
	sleep 0.3
	t0=$(date +%s.%N)
	xds_ctl set lds 4 "[$(raw "$P2")]" >/dev/null
	secs=$(closed_after gone "$t0")
	ok "$MODE: removed listener: its idle keep-alive connection is closed promptly ($secs s)" lt "$secs" 2
	wait "$h1" "$h2"
	is "$(cat "$H_DIR/h1.body")" "slept 1500" "$MODE: removed listener: the HTTP/1.1 request in flight gets its whole response"
	like "$(tr -d '\r' <"$H_DIR/h1.head")" "connection: close" "$MODE: removed listener: marked connection: close"
	h2out=$(tr '\n' ' ' <"$H_DIR/h2.out" | sed 's/  */ /g')
	like "$h2out" "recv GOAWAY frame <[^>]*> \\(last_stream_id=2147483647, error_code=NO_ERROR.*slept 2500" \
		"$MODE: removed listener: HTTP/2 gets a GOAWAY, and its stream in flight its whole response"
	is "$(pstat listener_drain_cx)" "4" "$MODE: removed listener: three more connections drained"
	is "$(cat "$H_DIR/tcp.out")" "" "$MODE: the unchanged tcp_proxy listener's connection is still open"

	# The tcp_proxy listener is removed: its connection is closed when the drain time ends.
	t0=$(date +%s.%N)
	xds_ctl set lds 5 "[]" >/dev/null
	secs=$(closed_after tcp "$t0")
	lt $((DRAIN_S - 1)) "$secs" && lt "$secs" $((DRAIN_S + 2))
	t_ok $? "$MODE: removed tcp_proxy listener: its connection is closed at the drain time (${secs} s, --drain-time-s $DRAIN_S)"
	is "$(pstat listener_drain_cx_closed)" "1" "$MODE: counted as closed at the end of the drain time"
	is "$(pstat cx_drained)" "0" "$MODE: nothing was cut by a shutdown"

	h_shuntd_stop >/dev/null
	kill "$SERVER" 2>/dev/null
	wait "$SERVER" 2>/dev/null
done
# ---- virtual listeners ------------------------------------------------------------------------
# Pod a talks to pod b through shuntd: b:9080 is handed by virtualOutbound to the HTTP listener
# 0.0.0.0_9080 (bind_to_port false, as istiod writes it); b:9081 has no listener and goes through
# virtualOutbound's own passthrough chain.
h_pod a
h_pod b
B=$(h_ip b)
h_bg b $PY "$BACKEND" 9080 0.0.0.0
h_bg b $PY "$BACKEND" 9081 0.0.0.0
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':9081 '"
virtual() { # NAME PORT CLUSTER STAT_PREFIX
	printf '{"name":"%s","address":{"socket_address":{"address":"0.0.0.0","port_value":%s}},"use_original_dst":true,"default_filter_chain":{"filters":[{"name":"envoy.filters.network.tcp_proxy","typed_config":{%s,"stat_prefix":"%s","cluster":"%s"}}]}}' "$1" "$2" "$TCP" "$4" "$3"
}
svc() { # PORT TAG
	printf '{"name":"0.0.0.0_%s","address":{"socket_address":{"address":"0.0.0.0","port_value":%s}},"bind_to_port":false,"filter_chains":[{"filters":[{"name":"envoy.filters.network.http_connection_manager","typed_config":{%s,"stat_prefix":"svc","http_filters":[%s],"route_config":{"name":"r%s","virtual_hosts":[{"name":"all","domains":["*"],"response_headers_to_add":[{"header":{"key":"x-config","value":"%s"}}],"routes":[{"match":{"prefix":"/"},"route":{"cluster":"PassthroughCluster","timeout":"10s"}}]}]}}}]}]}' "$1" "$1" "$HCM" "$ROUTER" "$1" "$2"
}
orig_dst() { printf '{"name":"%s","type":"ORIGINAL_DST","lb_policy":"CLUSTER_PROVIDED"%s}' "$1" "$2"; }
VCLUSTERS="[$(orig_dst PassthroughCluster ''),$(orig_dst InboundPassthroughCluster ',"upstream_bind_config":{"source_address":{"address":"127.0.0.6","port_value":0}}')]"
VIN=$(virtual virtualInbound 15006 InboundPassthroughCluster in)
# (b's inbound side, handed to 0.0.0.0_9080 by virtualInbound, adds the header too.)
vtag() { h_exec a curl -s -m 5 -D - -o /dev/null "http://$B:9080/sleep/0" | tr -d '\r' | sed -n 's/^x-config: //p' | sort -u; }

xds_server_start "$H_DIR" || { echo "Bail out! the xDS server did not start"; exit 1; }
SERVER=$XDS_PID
xds_ctl set cds 1 "$VCLUSTERS" >/dev/null
xds_ctl set lds 1 "[$(virtual virtualOutbound 15001 PassthroughCluster out),$VIN,$(svc 9080 one)]" >/dev/null
xds_bootstrap GRPC "$GPORT" >"$H_DIR/boot.json"
: >"$H_DIR/shuntd.log"
h_shuntd --config "$H_DIR/boot.json" --drain-time-s "$DRAIN_S" ||
	{ echo "Bail out! shuntd did not start"; exit 1; }
h_wait_for 10 version_is 1
h_wait_for 10 h_exec a curl -sf -m 2 "http://$B:9080/sleep/0"
is "$(vtag)" "one" "pods: virtualOutbound hands b:9080 to the HTTP listener 0.0.0.0_9080"
IN=a HOST=$B client idle 9080 vsvc
IN=a HOST=$B client tcp 9081 vpass

# Another listener added: the listeners changed, but not these connections'.
xds_ctl set lds 2 "[$(virtual virtualOutbound 15001 PassthroughCluster out),$VIN,$(svc 9080 one),$(svc 7070 x)]" >/dev/null
h_wait_for 10 version_is 2
t_ok $? "pods: a listener added (version 2)"
sleep 0.5
is "$(pstat listener_drain_cx)" "0" "pods: adding a listener drains nothing"

# The service listener removed (virtualOutbound unchanged): the connection it was handed goes.
t0=$(date +%s.%N)
xds_ctl set lds 3 "[$(virtual virtualOutbound 15001 PassthroughCluster out),$VIN,$(svc 7070 x)]" >/dev/null
secs=$(closed_after vsvc "$t0")
ok "pods: the service listener removed: the connection virtualOutbound handed it is closed promptly ($secs s)" lt "$secs" 2
sleep 0.5
is "$(cat "$H_DIR/vpass.out")" "" "pods: virtualOutbound's own passthrough connection stays"

# virtualOutbound itself changes: its passthrough connection is closed at the drain time.
t0=$(date +%s.%N)
xds_ctl set lds 4 "[$(virtual virtualOutbound 15001 PassthroughCluster out2),$VIN,$(svc 7070 x)]" >/dev/null
secs=$(closed_after vpass "$t0")
lt $((DRAIN_S - 1)) "$secs" && lt "$secs" $((DRAIN_S + 2))
t_ok $? "pods: virtualOutbound changed: its passthrough connection is closed at the drain time ($secs s)"
h_shuntd_stop >/dev/null
kill "$SERVER" 2>/dev/null
wait "$SERVER" 2>/dev/null
done_testing
