#!/usr/bin/env bash
# agent/grpc.c against an independent gRPC implementation (Python grpcio): messages both ways,
# large and many messages, size limits, statuses from trailers, transport failures, keepalive.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh

PROBE=build/bin/grpc_probe
DIR=$(mktemp -d /tmp/shunt-grpc.XXXXXX)
PEER=
cleanup() {
	[ -n "$PEER" ] && kill "$PEER" 2>/dev/null && wait "$PEER" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT

start_peer() {
	/usr/bin/python3 tests/lib/grpc_peer.py >"$DIR/port" 2>"$DIR/peer.err" &
	PEER=$!
	for _ in $(seq 1 100); do
		[ -s "$DIR/port" ] && break
		sleep 0.05
	done
	PORT=$(cat "$DIR/port")
}
probe() { timeout 30 "$PROBE" "$@" 2>&1; }

start_peer
[ -n "$PORT" ] || { echo "Bail out! the Python gRPC peer did not start: $(cat "$DIR/peer.err")"; exit 1; }
S=/test.Echo/Stream

out=$(probe 127.0.0.1 "$PORT" $S echo:hello echo:world)
is "$out" "$(printf 'msg 5 hello\nmsg 5 world\nstatus 0 ')" "two messages echoed, then OK from the trailers"
is "$(probe 127.0.0.1 "$PORT" $S many:2000 | grep -c '^msg ')" "2000" "2000 messages in one stream"
like "$(probe 127.0.0.1 "$PORT" $S big:20000000)" '^msg 20000000 x+
status 0 $' "one 20 MB message (reassembled across many DATA frames)"
like "$(probe --max 1048576 127.0.0.1 "$PORT" $S big:2000000)" \
	'status 8 received message larger than the limit of 1048576 bytes$' \
	"a message over the limit ends the stream with RESOURCE_EXHAUSTED"
is "$(probe 127.0.0.1 "$PORT" $S echo:a abort:14:going-away)" "$(printf 'msg 1 a\nstatus 14 going-away')" \
	"a status and message from the server's trailers arrive"
like "$(probe 127.0.0.1 "$PORT" /test.Echo/Missing x)" '^status 12 ' \
	"an unknown method gives UNIMPLEMENTED"
like "$(probe --keepalive 200 127.0.0.1 "$PORT" $S sleep:1.5 echo:after)" \
	"$(printf 'msg 5 slept\nmsg 5 after\nstatus 0 ')" \
	"keepalive pings every 200 ms are answered while the stream is idle"

# A peer that accepts and then never speaks: the unanswered ping gives the connection up.
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); time.sleep(30)' >"$DIR/silent" &
silent=$!
for _ in $(seq 1 100); do [ -s "$DIR/silent" ] && break; sleep 0.05; done
like "$(probe --keepalive 200 --ping-timeout 500 127.0.0.1 "$(cat "$DIR/silent")" $S x)" \
	'^status 14 keepalive ping not answered in 500 ms$' \
	"a silent peer: the keepalive ping goes unanswered and the stream ends UNAVAILABLE"
kill "$silent" 2>/dev/null
wait "$silent" 2>/dev/null

# Transport failures become UNAVAILABLE with a reason.
free_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
like "$(probe 127.0.0.1 "$free_port" $S x)" '^status 14 connect: Connection refused$' \
	"nobody listening: UNAVAILABLE, connection refused"
probe 127.0.0.1 "$PORT" $S sleep:3 >"$DIR/killed" &
probe_pid=$!
sleep 1
kill -9 "$PEER"
wait "$PEER" 2>/dev/null
PEER=
wait "$probe_pid"
like "$(cat "$DIR/killed")" '^status 14 connection (closed by the server|Connection reset by peer)$' \
	"the server dies mid-stream: UNAVAILABLE"
done_testing
