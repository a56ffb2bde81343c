#!/usr/bin/env bash
# Issue 5, test 1: real clients and servers through shunt's L7 proxy (shuntd --config with
# tests/integration/fixtures/l7-real.yaml; pod a's connections are captured, pod b's servers
# reached through the inbound passthrough): curl, nghttp, h2load and wrk against nginx over
# HTTP/1.1 and h2c, a Python HTTP/1.1 server for chunked bodies both ways, and a Python grpcio
# server for unary and streaming calls. Bodies are compared by SHA-256, statuses, trailers and
# gRPC statuses exactly; the load tools must see no error at all.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

PY=/usr/bin/python3
h_init
h_pod a
h_pod b
B=$(h_ip b)
VIP=10.96.0.30 # exists nowhere: only the config's port listeners know where it goes

# ---- servers in pod b ----
mkdir -p "$H_DIR/www" "$H_DIR/nginx"
head -c 1048576 /dev/urandom >"$H_DIR/www/blob"
echo "hello" >"$H_DIR/www/index.html"
BLOB_SUM=$(sha256sum <"$H_DIR/www/blob" | cut -d' ' -f1)
# nginx's workers run as www-data: let them read the harness's (private) temp directory.
chmod 755 "$H_DIR" "$H_DIR/www"
chmod 644 "$H_DIR/www/"*
cat >"$H_DIR/nginx/nginx.conf" <<EOF2
worker_processes 1;
daemon off;
pid $H_DIR/nginx/nginx.pid;
error_log $H_DIR/nginx/error.log;
events { worker_connections 512; }
http {
	access_log off;
	client_body_temp_path $H_DIR/nginx/body;
	proxy_temp_path $H_DIR/nginx/proxy;
	fastcgi_temp_path $H_DIR/nginx/fastcgi;
	uwsgi_temp_path $H_DIR/nginx/uwsgi;
	scgi_temp_path $H_DIR/nginx/scgi;
	keepalive_requests 100000;
	server {
		listen 8080;
		listen 8081 http2;
		root $H_DIR/www;
	}
}
EOF2
h_bg b nginx -p "$H_DIR/nginx" -e "$H_DIR/nginx/error.log" -c "$H_DIR/nginx/nginx.conf"
h_bg b $PY tests/lib/http_peer.py 8090
h_bg b $PY tests/lib/grpc_peer.py 50051 0.0.0.0
h_wait_for 10 h_exec b sh -c "ss -ltn | grep -q ':8080 ' && ss -ltn | grep -q ':8081 ' &&
	ss -ltn | grep -q ':8090 ' && ss -ltn | grep -q ':50051 '" ||
	{ echo "Bail out! the servers in pod b did not start: $(cat "$H_DIR/nginx/error.log")"; exit 1; }

sed -e "s/@B@/$B/" tests/integration/fixtures/l7-real.yaml >"$H_DIR/l7.yaml"
h_shuntd --config "$H_DIR/l7.yaml" || { echo "Bail out! shuntd did not start"; exit 1; }

sum() { sha256sum | cut -d' ' -f1; }

# ---- HTTP/1.1 to nginx ----
is "$(h_exec a curl -s -m 20 "http://$VIP/blob" | sum)" "$BLOB_SUM" \
	"curl -> nginx (HTTP/1.1): a 1 MB download arrives intact"
is "$(h_exec a curl -s -m 5 -o /dev/null -w '%{http_code}' "http://$VIP/missing")" "404" \
	"nginx's 404 is relayed"
like "$(h_exec a curl -s -m 5 -D - -o /dev/null "http://$VIP/index.html")" \
	'x-envoy-upstream-service-time: [0-9]+' "the response carries x-envoy-upstream-service-time"
is "$(h_exec a curl -s -m 20 "http://$VIP/blob" "http://$VIP/index.html" "http://$VIP/blob" |
	sum)" "$( (cat "$H_DIR/www/blob" "$H_DIR/www/index.html" "$H_DIR/www/blob") | sum)" \
	"three requests on one keep-alive connection, in order"

# ---- chunked both ways, to the Python server ----
head -c 1048576 /dev/urandom >"$H_DIR/upload"
UP_SUM=$(sum <"$H_DIR/upload")
is "$(h_exec a curl -s -m 20 -H 'Transfer-Encoding: chunked' --data-binary "@$H_DIR/upload" \
	"http://$VIP:90/hash")" "1048576 $UP_SUM" "a 1 MB chunked upload arrives whole (size and SHA-256)"
is "$(h_exec a curl -s -m 20 --data-binary "@$H_DIR/upload" "http://$VIP:90/hash")" \
	"1048576 $UP_SUM" "the same with content-length"
h_exec a curl -s -m 20 -D "$H_DIR/chunked.h" -o "$H_DIR/chunked.b" "http://$VIP:90/chunked/1000000"
is "$(sum <"$H_DIR/chunked.b")" \
	"$($PY -c 'import sys; sys.path.insert(0, "tests/lib"); import hashlib, http_peer; print(hashlib.sha256(http_peer.body_bytes(1000000)).hexdigest())')" \
	"a 1,000,000-byte chunked response arrives intact"
like "$(tr -d '\r' <"$H_DIR/chunked.h")" 'transfer-encoding: chunked' "and is relayed chunked"

# ---- h2c: to shunt (prior knowledge) and from shunt to nginx ----
is "$(h_exec a curl -s -m 20 --http2-prior-knowledge "http://$VIP:81/blob" | sum)" "$BLOB_SUM" \
	"curl h2c -> shunt -> nginx h2c: a 1 MB download arrives intact"
like "$(h_exec a curl -s -m 5 --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' \
	"http://$VIP:81/index.html")" '^2 200$' "the client spoke HTTP/2 to shunt and got 200"
is "$(h_exec a curl -s -m 20 --http2-prior-knowledge "http://$VIP/blob" | sum)" "$BLOB_SUM" \
	"h2c downstream, HTTP/1.1 upstream: intact"
is "$(h_exec a curl -s -m 20 --http2-prior-knowledge -H 'Transfer-Encoding: chunked' \
	--data-binary "@$H_DIR/upload" "http://$VIP:90/hash" 2>/dev/null || h_exec a curl -s -m 20 \
	--http2-prior-knowledge --data-binary "@$H_DIR/upload" "http://$VIP:90/hash")" \
	"1048576 $UP_SUM" "a 1 MB upload over h2c to an HTTP/1.1 server arrives whole"
like "$(h_exec a nghttp -v "http://$VIP:90/chunked/1000" 2>&1 | grep -a 'x-sum')" \
	"x-sum: $($PY -c 'import sys; sys.path.insert(0, "tests/lib"); import hashlib, http_peer; print(hashlib.sha256(http_peer.body_bytes(1000)).hexdigest())')" \
	"an HTTP/1.1 server's chunked trailer reaches an h2c client as a trailer"
out=$(h_exec a nghttp -n -s "http://$VIP:81/blob" "http://$VIP:81/index.html" 2>&1)
like "$out" ' 200 +1M /blob' "nghttp: two streams on one h2c connection, the 1 MB one complete"
like "$out" ' 200 +6 /index.html' "and the small one"

# ---- load tools: correctness under load, no speed claim ----
out=$(h_exec a timeout 30 h2load -n 2000 -c 4 -m 8 "http://$VIP:81/index.html" 2>&1)
like "$out" 'requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored' \
	"h2load h2c: 2000 requests over 4 connections, 8 streams each, all succeeded"
like "$out" 'status codes: 2000 2xx' "h2load: all 2xx"
out=$(h_exec a timeout 30 wrk -t1 -c8 -d2s "http://$VIP/index.html" 2>&1)
ok "wrk HTTP/1.1: no socket errors, no non-2xx: $(grep -E 'requests in|Socket|Non-2xx' <<<"$out" | tr '\n' ' ')" \
	sh -c "grep -Eq '^ +[1-9][0-9]* requests in' <<'EOW'
$out
EOW
! grep -Eq 'Socket errors|Non-2xx' <<'EOW'
$out
EOW"

# ---- gRPC (h2c both sides) ----
call() { h_exec a timeout 30 $PY tests/lib/grpc_caller.py "$VIP:50051" "$@" 2>&1; }
is "$(call unary hello)" "olleh OK x-trailer=t1" "gRPC unary: the answer and the trailing metadata"
is "$(call server 500)" "500 s0,s1,s2" "gRPC server streaming: 500 messages"
like "$(call client 200 10000)" '^200 [0-9a-f]{64} match$' \
	"gRPC client streaming: 200 messages of 10 KB, hashed the same on both sides"
is "$(call bidi 300)" "300 299" "gRPC bidirectional: 300 echoes in order"
is "$(call abort 7 'no, thanks')" "PERMISSION_DENIED no, thanks" \
	"a gRPC error status and message arrive as sent"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
