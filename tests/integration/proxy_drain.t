#!/usr/bin/env bash
# Issue 5, graceful drain: at SIGTERM shuntd stops accepting and lets its HTTP connections end
# the way Envoy's do. An idle HTTP/1.1 keep-alive connection is closed at once; one with a
# request in flight gets its response, marked connection: close, then the close; an HTTP/2
# connection gets a shutdown notice (GOAWAY, last stream 2^31-1), the final GOAWAY naming its
# last stream after the HCM's drain_timeout while that stream is still running, the stream's
# whole response, then the close. Nothing is left for the drain deadline to cut, so shuntd exits
# well before it. HTTP/2 clients are also offered the HCM's max_concurrent_streams.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

h_init
read -r P PB < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
# The backend: /sleep/MS answers "slept MS" after MS milliseconds, over HTTP/1.1 keep-alive.
/usr/bin/python3 tests/lib/sleep_backend.py "$PB" &
H_PIDS+=($!)
h_wait_for 5 sh -c "ss -ltn | grep -q '127.0.0.1:$PB '"
sed -e "s/@P@/$P/g" -e "s/@PB@/$PB/g" tests/integration/fixtures/drain.yaml >"$H_DIR/drain.yaml"
h_shuntd --config "$H_DIR/drain.yaml" --drain-timeout 6000 ||
	{ echo "Bail out! shuntd did not start"; exit 1; }
is "$(curl --noproxy '*' -s -m 5 "http://127.0.0.1:$P/sleep/0")" "slept 0" "served before the drain"

# An idle keep-alive connection: how long after its first response until the proxy closes it.
/usr/bin/python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /sleep/0 HTTP/1.1\r\nHost: x\r\n\r\n")
d = b""
while b"slept 0" not in d:
    d += s.recv(4096)
open(sys.argv[2], "w").write("ready\n")
t = time.monotonic()
try:
    x = s.recv(1)
    print("eof" if x == b"" else "data", "%.2f" % (time.monotonic() - t))
except socket.timeout:
    print("timeout")' "$P" "$H_DIR/idle.ready" >"$H_DIR/idle.out" 2>&1 &
idle=$!
# A request in flight over HTTP/1.1 and a long stream over HTTP/2 (prior knowledge).
curl --noproxy '*' -s -m 10 -D "$H_DIR/h1.head" -o "$H_DIR/h1.body" \
	"http://127.0.0.1:$P/sleep/1500" &
h1=$!
timeout 10 nghttp -v "http://127.0.0.1:$P/sleep/2500" >"$H_DIR/h2.out" 2>&1 &
h2=$!
h_wait_for 5 test -s "$H_DIR/idle.ready"
h_wait_for 5 grep -q 'recv SETTINGS' "$H_DIR/h2.out"
sleep 0.3
t0=$(date +%s%N)
kill -TERM "$H_SHUNTD_PID"
wait "$H_SHUNTD_PID"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
H_SHUNTD_PID=
wait "$idle" "$h1" "$h2"

is "$rc" "0" "shuntd exits cleanly at SIGTERM"
ok "and without waiting for the 6 s drain deadline (${ms} ms)" test "$ms" -lt 5000
read -r what secs <"$H_DIR/idle.out"
is "$what" "eof" "the idle keep-alive connection is closed"
ok "at once, not at the deadline ($secs s after it went idle)" \
	/usr/bin/python3 -c "import sys; sys.exit(not float(sys.argv[1]) < 2.0)" "$secs"
is "$(cat "$H_DIR/h1.body")" "slept 1500" "the HTTP/1.1 request in flight gets its whole response"
like "$(tr -d '\r' <"$H_DIR/h1.head")" "connection: close" "marked connection: close"

h2out=$(tr '\n' ' ' <"$H_DIR/h2.out" | sed 's/  */ /g')
like "$h2out" "recv SETTINGS frame <[^>]*> \\(niv=[0-9]\\) \\[SETTINGS_MAX_CONCURRENT_STREAMS\\(0x03\\):7\\]" \
	"HTTP/2 clients are offered the HCM's max_concurrent_streams (7)"
like "$h2out" "recv GOAWAY frame <length=8, flags=0x00, stream_id=0> \\(last_stream_id=2147483647, error_code=NO_ERROR" \
	"HTTP/2: a shutdown notice first (GOAWAY, last stream 2^31-1)"
# nghttp numbers its request after the streams it uses as priority anchors.
sid=$(sed -n 's/.*send HEADERS frame <[^>]*stream_id=\([0-9]*\)>.*/\1/p' "$H_DIR/h2.out" | head -1)
like "$h2out" "last_stream_id=2147483647.*recv GOAWAY frame <[^>]*> \\(last_stream_id=${sid:-none}, error_code=NO_ERROR.*slept 2500" \
	"then, after drain_timeout and while the stream runs, the final GOAWAY naming its stream ($sid)"
like "$h2out" "slept 2500" "and the stream's whole response arrives"
like "$(cat "$H_DIR/shuntd.log")" "0 still open at the drain deadline were closed" \
	"no connection was left for the deadline to cut"
done_testing
