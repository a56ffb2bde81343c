#!/usr/bin/env bash
# Issue 5, listener filters: tls_inspector and http_inspector on bound listeners of shuntd
# --config. TLS is passed through by SNI (exact and wildcard) and by any offered ALPN to two TLS
# servers whose certificates tell which chain was taken; plaintext on the same port goes to its
# raw_buffer chain. On another port h2c and HTTP/1.1 clients reach different chains; other
# bytes match nothing and are closed, and a client that never finishes its request line is
# closed by listener_filters_timeout.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

h_init
mkdir -p "$H_DIR/www" "$H_DIR/pki"
echo "plain backend" >"$H_DIR/www/index.html"
for n in a b; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
		-subj "/CN=$n.test" -addext "subjectAltName=DNS:$n.test" -keyout "$H_DIR/pki/$n.key" -out "$H_DIR/pki/$n.crt" 2>/dev/null
done
# Free ports on the host's loopback (shuntd's own netns reaches no pod address without the
# sandbox's proxy in between), so parallel runs do not collide: listeners P1 and P2, backends
# PA and PB (TLS, certificates a.test and b.test) and PH (plain HTTP).
read -r P1 P2 PA PB PH P3 PS < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(7)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
/usr/bin/python3 -m http.server "$PH" --bind 127.0.0.1 --directory "$H_DIR/www" \
	>"$H_DIR/http.out" 2>&1 &
H_PIDS+=($!)
for n in a b; do
	port=$PA
	[ "$n" = b ] && port=$PB
	openssl s_server -quiet -www -accept "127.0.0.1:$port" -alpn h2,http/1.1 \
		-cert "$H_DIR/pki/$n.crt" -key "$H_DIR/pki/$n.key" >/dev/null 2>&1 &
	H_PIDS+=($!)
done
# A server-first backend: it greets every client before reading anything (at most 50).
/usr/bin/python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
for _ in range(50):
    c, _ = s.accept(); c.sendall(b"220 banner\r\n"); c.close()' "$PS" &
H_PIDS+=($!)
for p in $PA $PB $PH $PS; do
	h_wait_for 5 sh -c "ss -ltn | grep -q '127.0.0.1:$p '"
done
sed -e "s/@PA@/$PA/" -e "s/@PB@/$PB/" -e "s/@PH@/$PH/" -e "s/@P1@/$P1/g" -e "s/@P2@/$P2/g" \
	-e "s/@P3@/$P3/g" -e "s/@P3E@/$((P3 + 1))/" -e "s/@PS@/$PS/" \
	tests/integration/fixtures/inspectors.yaml >"$H_DIR/inspectors.yaml"
h_shuntd --config "$H_DIR/inspectors.yaml" || { echo "Bail out! shuntd did not start"; exit 1; }

# The subject of the certificate a TLS client sees through port P1.
subject() {
	timeout 5 openssl s_client -connect "127.0.0.1:$P1" "$@" </dev/null 2>/dev/null |
		sed -n 's/^subject=.*CN *= *\([^ ,]*\).*/\1/p'
}
is "$(subject -servername a.test)" "a.test" "SNI a.test: the exact server_names chain (tls-a)"
is "$(subject -servername x.b.test)" "b.test" "SNI x.b.test: the wildcard chain (tls-b)"
is "$(subject -servername c.test -alpn http/1.1,h2)" "b.test" \
	"SNI c.test offering http/1.1,h2: the h2 chain matches any offered protocol"
is "$(subject -servername c.test -alpn http/1.1)" "a.test" "SNI c.test without h2: the other chain"
is "$(subject -servername nobody.test)" "" "an unknown SNI matches no chain: no handshake"
is "$(subject -noservername)" "" "no SNI at all: no chain either"
is "$(curl --noproxy "*" -s -m 5 --http1.1 --resolve "a.test:$P1:127.0.0.1" --cacert "$H_DIR/pki/a.crt" \
	-o /dev/null -w '%{http_code}' "https://a.test:$P1/")" "200" \
	"curl --cacert through the passthrough: verified handshake, 200 from s_server"
is "$(curl --noproxy "*" -s -m 5 "http://127.0.0.1:$P1/")" "plain backend" \
	"plaintext on the TLS port: the raw_buffer chain"

is "$(curl --noproxy "*" -s -m 5 --http2-prior-knowledge "http://127.0.0.1:$P2/")" "h2c chain" \
	"http_inspector: an h2c client reaches the h2c chain"
is "$(curl --noproxy "*" -s -m 5 --http1.1 "http://127.0.0.1:$P2/")" "plain backend" \
	"http_inspector: an HTTP/1.1 client reaches the http/1.1 chain"
is "$(curl --noproxy "*" -s -m 5 --http1.0 "http://127.0.0.1:$P2/")" "plain backend" "and HTTP/1.0 too"
out=$(printf 'SSH-2.0-test\r\n' | timeout 5 nc 127.0.0.1 "$P2" 2>/dev/null | wc -c)
is "$out" "0" "bytes that are not HTTP match no chain: closed without a reply"
# Sends "GE" and waits (at most 5 s) for the close: prints the bytes received and the ms taken.
read -r got ms < <(/usr/bin/python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
t = time.monotonic(); s.sendall(b"GE"); n = 0
try:
    while True:
        d = s.recv(4096)
        if not d: break
        n += len(d)
except OSError: pass
print(n, int((time.monotonic() - t) * 1000))' "$P2")
is "$got" "0" "a request line that never finishes gets nothing"
ok "and is closed by listener_filters_timeout (1 s) (${ms} ms)" \
	test "$ms" -ge 900 -a "$ms" -lt 3500

greeting=$(/usr/bin/python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
print(s.recv(100).decode().strip())' "$P3" 2>&1)
is "$greeting" "220 banner" \
	"filter_disabled on the port: no inspection, a server-first backend greets at once"

stats=$(h_ctl stats 2>/dev/null || true)
diag "$(grep -E 'inspector|listener_filters' <<<"$stats" | tr '\n' ' ')"
cmp_ok "$(sed -n 's/.*tls_inspector_tls_found[^0-9]*\([0-9]*\).*/\1/p' <<<"$stats" | head -1)" -ge 7 \
	"stats: tls_inspector_tls_found counts the TLS handshakes"
cmp_ok "$(sed -n 's/.*listener_filters_timeout[^0-9]*\([0-9]*\).*/\1/p' <<<"$stats" | head -1)" -ge 1 \
	"stats: listener_filters_timeout counted"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
