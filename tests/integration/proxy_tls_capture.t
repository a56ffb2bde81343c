#!/usr/bin/env bash
# TLS termination on the captured outbound path: pod a's curl to a service address on 443 is
# captured to shuntd's 15001, its TLS terminated by the 0.0.0.0_443 listener's chain, and the
# request goes on in the clear to pod b. A TLS socket stays out of the SOCKHASH (OpenSSL reads
# and writes it; sk_msg must not carry its records past the proxy): the same request on port 80
# puts one more proxy socket into the map than the TLS one does.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

PY=/usr/bin/python3
pstat() { h_ctl -o json stats | jq -r ".proxy.$1"; }
inserted() { echo $(($(pstat sockmap_inserted) + $(pstat sockmap_present))); }

h_init
h_pod a
h_pod b
B=$(h_ip b)
VIP=10.96.0.44 # exists nowhere: only the config's port listeners know where it goes
mkdir -p "$H_DIR/www"
echo "hello from b" >"$H_DIR/www/index.html"
chmod 755 "$H_DIR" "$H_DIR/www"
chmod 644 "$H_DIR/www/index.html"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj /CN=web.test -addext subjectAltName=DNS:web.test -keyout "$H_DIR/web.key" \
	-out "$H_DIR/web.crt" 2>/dev/null || { echo "Bail out! openssl could not make a certificate"; exit 1; }
chmod 644 "$H_DIR/web.crt"
h_bg b $PY -m http.server 8080 --directory "$H_DIR/www"
h_wait_for 10 h_exec b sh -c "ss -ltn | grep -q ':8080 '" || { echo "Bail out! no server in b"; exit 1; }
sed -e "s/@B@/$B/" -e "s|@D@|$H_DIR|g" tests/integration/fixtures/tls_capture.yaml >"$H_DIR/cfg.yaml"
h_shuntd --config "$H_DIR/cfg.yaml" || { echo "Bail out! shuntd did not start"; exit 1; }

is "$(h_exec a curl -s -m 5 "http://$VIP/")" "hello from b" "port 80: captured, plaintext to b"
before=$(inserted)
is "$(h_exec a curl -s -m 5 "http://$VIP/")" "hello from b" "again, counting SOCKHASH inserts"
plain=$(($(inserted) - before))
before=$(inserted)
is "$(h_exec a curl -s -m 5 --cacert "$H_DIR/web.crt" --resolve "web.test:443:$VIP" \
	"https://web.test/")" "hello from b" \
	"port 443: captured, TLS terminated by shunt with a verified certificate, plaintext to b"
tls=$(($(inserted) - before))
cmp_ok "$plain" -ge 1 "a plaintext connection puts proxy sockets into the SOCKHASH ($plain)"
is "$tls" "$((plain - 1))" "the TLS one puts one fewer: its downstream socket stays out ($tls)"
cmp_ok "$(pstat ssl_handshake)" -ge 1 "ssl_handshake counted"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
