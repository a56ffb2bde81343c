#!/usr/bin/env bash
# Issue 5, TLS termination and origination in shuntd's proxy, with real clients and servers on
# shuntd --config bound listeners. Certificates are made here (a CA, leaves with SPIFFE URI SANs).
# Terminating: curl --cacert over https to a plain backend, two certificates picked by SNI (one
# from a file, one from a static secret named by SDS), HTTP/2 by ALPN (curl --http2 and nghttp),
# mTLS that refuses a client without a certificate and admits one from the CA, and a chain whose
# SDS secret never arrives refusing connections. Originating: HTTP and TCP to openssl s_server
# with the SAN checked, a wrong SAN and an untrusted CA answered 503 UF with a TLS_error reason in
# the access log, h2 by ALPN to nghttpd (HTTP/2 clusters, and auto_config ones that fall back to
# HTTP/1.1 when the server chooses no h2, and use_downstream_protocol_config ones whose
# connections offer the request's own protocol), and a cluster whose secret is missing failing UF.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh
. tests/lib/pki.sh

h_init
PKI=$H_DIR/pki
mkdir -p "$H_DIR/www" "$PKI"
echo "plain backend" >"$H_DIR/www/index.html"
echo "h2 backend" >"$H_DIR/www/h2"
{
	pki_ca "$PKI" ca && pki_ca "$PKI" other-ca &&
		pki_leaves "$PKI" ca <<-EOS
			a DNS:a.test,URI:spiffe://cluster.local/ns/default/sa/a
			b DNS:b.test,URI:spiffe://cluster.local/ns/default/sa/b
			m DNS:m.test,URI:spiffe://cluster.local/ns/default/sa/m
			upstream DNS:upstream.test,URI:spiffe://cluster.local/ns/default/sa/upstream
			client URI:spiffe://cluster.local/ns/default/sa/client
		EOS
} || { echo "Bail out! openssl could not make the certificates"; exit 1; }

read -r P1 P2 P3 PH PT PN PW PA < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(8)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
/usr/bin/python3 -m http.server "$PH" --bind 127.0.0.1 --directory "$H_DIR/www" \
	>"$H_DIR/http.out" 2>&1 &
H_PIDS+=($!)
# s_server asks for (does not require) a client certificate and prints what it got in -www.
openssl s_server -www -accept "127.0.0.1:$PT" -cert "$PKI/upstream.crt" -key "$PKI/upstream.key" \
	-CAfile "$PKI/ca.crt" -verify 1 >"$H_DIR/s_server.out" 2>&1 &
H_PIDS+=($!)
# This one would choose h2 if offered it (its -www still answers HTTP/1).
openssl s_server -www -accept "127.0.0.1:$PA" -cert "$PKI/upstream.crt" -key "$PKI/upstream.key" \
	-alpn h2,http/1.1 >"$H_DIR/s_server_alpn.out" 2>&1 &
H_PIDS+=($!)
nghttpd -a 127.0.0.1 -d "$H_DIR/www" "$PN" "$PKI/upstream.key" "$PKI/upstream.crt" \
	>"$H_DIR/nghttpd.out" 2>&1 &
H_PIDS+=($!)
/usr/bin/python3 tests/lib/tunnel_peer.py ws-server "$PW" 127.0.0.1 &
H_PIDS+=($!)
for p in $PH $PT $PN $PW $PA; do
	h_wait_for 5 sh -c "ss -ltn | grep -q '127.0.0.1:$p '"
done
sed -e "s|@D@|$H_DIR|g" -e "s/@P1@/$P1/g" -e "s/@P2@/$P2/g" -e "s/@P3@/$P3/g" \
	-e "s/@PH@/$PH/g" -e "s/@PT@/$PT/g" -e "s/@PN@/$PN/g" -e "s/@PW@/$PW/g" -e "s/@PA@/$PA/g" \
	tests/integration/fixtures/tls_term.yaml >"$H_DIR/tls_term.yaml"
h_shuntd --config "$H_DIR/tls_term.yaml" || { echo "Bail out! shuntd did not start"; exit 1; }

c() { curl --noproxy "*" -s -m 5 "$@"; }
res() { echo "--resolve $1:$P1:127.0.0.1"; }

# ---- termination
# shellcheck disable=SC2046
is "$(c $(res a.test) --cacert "$PKI/ca.crt" --http1.1 "https://a.test:$P1/")" "plain backend" \
	"https through shuntd's TLS listener to a plain backend (HCM, HTTP/1.1)"
# shellcheck disable=SC2046
is "$(c $(res a.test) --cacert "$PKI/ca.crt" --http2 -o /dev/null -w '%{http_version}' \
	"https://a.test:$P1/")" "2" "curl --http2: ALPN h2, the HTTP/2 codec answers"
# shellcheck disable=SC2046
is "$(c $(res a.test) --cacert "$PKI/ca.crt" --http1.1 -o /dev/null -w '%{http_version}' \
	"https://a.test:$P1/")" "1.1" "curl --http1.1: ALPN http/1.1, the HTTP/1 codec answers"
out=$(timeout 5 nghttp -v "https://127.0.0.1:$P1/" 2>&1 </dev/null)
like "$out" "negotiated protocol: h2" "nghttp negotiates h2 with the TLS listener"
like "$out" "plain backend" "and gets the backend's page over HTTP/2"
out=$(/usr/bin/python3 tests/lib/tunnel_peer.py ws-client 127.0.0.1 "$P1" a.test 5 1048576 \
	path=/ws "tls=a.test:$PKI/ca.crt" 2>&1)
is "$(tr '\n' ' ' <<<"$out")" "101 text 5/5 binary 1048576 ok close 8 " \
	"WebSocket over the terminated TLS: the tunnel keeps the session (5 messages and 1 MiB echoed)"

subject() {
	timeout 5 openssl s_client -connect "127.0.0.1:$P1" -CAfile "$PKI/ca.crt" "$@" </dev/null \
		2>/dev/null | sed -n 's/^subject=.*CN *= *\([^ ,]*\).*/\1/p'
}
is "$(subject -servername a.test)" "a" "SNI a.test: the certificate from a file"
is "$(subject -servername b.test)" "b" "SNI b.test: the certificate from a static secret by SDS name"
# shellcheck disable=SC2046
is "$(c --resolve "b.test:$P1:127.0.0.1" --cacert "$PKI/ca.crt" "https://b.test:$P1/")" \
	"plain backend" "tcp_proxy behind TLS termination: the backend sees plaintext"

# shellcheck disable=SC2046
code=$(c --resolve "m.test:$P1:127.0.0.1" --cacert "$PKI/ca.crt" -o /dev/null -w '%{http_code}' \
	"https://m.test:$P1/")
ok "mTLS: without a client certificate the handshake fails (curl got $code)" test "$code" != 200
# shellcheck disable=SC2046
is "$(c --resolve "m.test:$P1:127.0.0.1" --cacert "$PKI/ca.crt" --cert "$PKI/client.crt" \
	--key "$PKI/client.key" -o /dev/null -w '%{http_code}' "https://m.test:$P1/")" "200" \
	"mTLS: a client certificate from the CA with a matching SAN gets 200"
# shellcheck disable=SC2046
code=$(c --resolve "m.test:$P1:127.0.0.1" --cacert "$PKI/ca.crt" --cert "$PKI/a.crt" \
	--key "$PKI/a.key" -o /dev/null -w '%{http_code}' "https://m.test:$P1/")
is "$code" "200" "mTLS: any SAN under spiffe://cluster.local/ns/default/ is accepted"
code=$(c --resolve "missing.test:$P1:127.0.0.1" -k -o /dev/null -w '%{http_code}' \
	"https://missing.test:$P1/")
is "$code" "000" "a chain whose SDS secret has not arrived refuses the connection"

# ---- origination
is "$(c "http://127.0.0.1:$P2/good" | grep -c 'Client certificate')" "1" \
	"HTTP to a TLS upstream: SAN checked, and s_server saw our client certificate"
is "$(c -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/bad")" "503" \
	"an upstream whose SAN does not match: 503"
is "$(c -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/untrusted")" "503" \
	"an upstream signed by another CA: 503"
is "$(c "http://127.0.0.1:$P2/h2")" "h2 backend" "an HTTP/2 cluster over TLS: h2 by ALPN to nghttpd"
is "$(c -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/notready")" "503" \
	"a cluster whose SDS secret has not arrived: 503"
is "$(c "http://127.0.0.1:$P2/istio-mtls/")" "plain backend" \
	"Istio's transport_socket_matches: a tlsMode: istio endpoint gets mTLS (SNI, ALPN istio, SANs)"
is "$(c "http://127.0.0.1:$P2/istio-plain/")" "plain backend" \
	"an unlabelled endpoint of the same shape gets plaintext"
is "$(c "http://127.0.0.1:$P2/auto-h2/h2")" "h2 backend" \
	"auto_config: nghttpd chooses h2 by ALPN, the cluster speaks HTTP/2"
is "$(c "http://127.0.0.1:$P2/auto-h2/h2")" "h2 backend" "and the next request goes straight to h2"
like "$(c "http://127.0.0.1:$P2/auto-h1/")" "s_server -www" \
	"auto_config: s_server chooses nothing, the cluster speaks HTTP/1.1"
is "$(c --http2-prior-knowledge "http://127.0.0.1:$P2/down-h2/h2")" "h2 backend" \
	"use_downstream_protocol_config: an HTTP/2 request offers h2 and goes on over HTTP/2"
like "$(c --http1.1 "http://127.0.0.1:$P2/down-h1/")" "s_server -www" \
	"an HTTP/1.1 one offers http/1.1 to a server that prefers h2, and goes on over HTTP/1.1"
out=$(/usr/bin/python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET / HTTP/1.0\r\n\r\n"); d = b""
while len(d) < 1 << 20:
    x = s.recv(65536)
    if not x: break
    d += x
print(d.decode(errors="replace"))' "$P3" 2>&1)
like "$out" "s_server" "tcp_proxy originating TLS: s_server answers through it"

h_wait_for 5 sh -c "grep -c ' /bad ' '$H_DIR/access.log' | grep -q 1"
log_bad=$(grep ' /bad ' "$H_DIR/access.log" | tail -1)
like "$log_bad" " 503 UF " "access log: the wrong SAN is UF"
like "$log_bad" "TLS_error:" "with a TLS_error reason ($log_bad)"
like "$log_bad" 'upstream_reset_before_response_started\{connection_failure,TLS_error:certificate_verify_failed:no_subject_alt_name_matched\}' \
	"Envoy's details: upstream_reset_before_response_started{connection_failure,TLS_error:...}"
like "$(grep ' /untrusted ' "$H_DIR/access.log" | tail -1)" "TLS_error:certificate_verify_failed" \
	"the untrusted CA's reason says the verification failed"
like "$(grep ' /notready ' "$H_DIR/access.log" | tail -1)" "TLS_error:secret_not_ready:ROOTCA" \
	"the missing secret is named"
like "$(cat "$H_DIR/shuntd.log")" 'SDS secret "never-sent" has not arrived' \
	"the log says which secret a chain waits for"

stats=$(h_ctl stats 2>/dev/null || true)
stat() { sed -n "s/.*\\b$1[^0-9]*\\([0-9]*\\).*/\\1/p" <<<"$stats" | head -1; }
diag "$(grep -E 'ssl_' <<<"$stats" | tr '\n' ' ')"
cmp_ok "$(stat ssl_handshake)" -ge 10 "stats: ssl_handshake counts both directions"
cmp_ok "$(stat ssl_fail_verify_san)" -ge 1 "stats: ssl_fail_verify_san"
cmp_ok "$(stat ssl_fail_verify_no_cert)" -ge 1 "stats: ssl_fail_verify_no_cert"
cmp_ok "$(stat ssl_fail_verify_error)" -ge 1 "stats: ssl_fail_verify_error"
cmp_ok "$(stat ssl_secret_not_ready)" -ge 2 "stats: ssl_secret_not_ready"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
