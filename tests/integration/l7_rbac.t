#!/usr/bin/env bash
# Envoy's RBAC end to end: shuntd --config with tests/integration/fixtures/l7-rbac.yaml, one
# Python backend on 127.0.0.1 (tests/lib/policy_peer.py) and curl. Proved by status codes, the
# body, what the backend saw, the access log's flag and details, and the counters:
#   HTTP: ALLOW by path (regex) and by a header principal, DENY by method and by path (the
#   policy named in the details), the ALLOW filter switched off on one route by an empty
#   RBACPerRoute while the DENY filter still applies, shadow rules counted but not enforced;
#   network: a tcp_proxy chain allowing one source address closes the others, and an HCM chain
#   denying its destination port closes every connection before any request is read;
#   mTLS: principal_name against the client certificate's SPIFFE URI SAN (or its DNS SAN when
#   it has no URI SAN), by the HTTP filter (403) and by the network filter (closed).
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh
. tests/lib/pki.sh

PY=/usr/bin/python3
h_init
free_port() { $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P=$(free_port) T=$(free_port) U=$(free_port) S=$(free_port) M=$(free_port)
PKI=$H_DIR/pki
mkdir -p "$PKI"
{
	pki_ca "$PKI" ca &&
		pki_leaves "$PKI" ca <<-EOS
			server DNS:server.test
			allowed DNS:allowed.test,URI:spiffe://cluster.local/ns/t/sa/allowed
			other DNS:dns.client.test,URI:spiffe://cluster.local/ns/t/sa/other
			dnsonly DNS:dns.client.test
		EOS
} || { echo "Bail out! openssl could not make the certificates"; exit 1; }
$PY tests/lib/policy_peer.py "$H_DIR" be:ok 2>"$H_DIR/peer.err" &
H_PIDS+=($!)
h_wait_for 10 test -s "$H_DIR/ports" ||
	{ echo "Bail out! the backend did not start: $(cat "$H_DIR/peer.err")"; exit 1; }
B=$(awk '$1 == "be" { print $2 }' "$H_DIR/ports")
sed -e "s/@P@/$P/g" -e "s/@T@/$T/g" -e "s/@U@/$U/g" -e "s/@B@/$B/g" -e "s/@S@/$S/g" \
	-e "s/@M@/$M/g" -e "s|@D@|$H_DIR|g" \
	tests/integration/fixtures/l7-rbac.yaml >"$H_DIR/rbac.yaml"
h_shuntd --config "$H_DIR/rbac.yaml" --workers 2 || { echo "Bail out! shuntd did not start"; exit 1; }

URL=http://127.0.0.1:$P
c() { curl --noproxy '*' -s -m 10 "$@"; }
# st CURL-ARGS...: "STATUS BODY" of one request (the body's first line).
st() { c -w '\n%{http_code}' "$@" | awk 'NR == 1 { b = $0 } { s = $0 } END { print s, b }'; }
hits() { awk -v p="$1" '$2 == p { k++ } END { print k + 0 }' "$H_DIR/hits"; }
# logline METHOD PATH: the access log's line for that request (waits for it).
logline() {
	h_wait_for 3 grep -q "\"$1 $2 HTTP/1.1\"" "$H_DIR/access.log"
	grep -F "\"$1 $2 HTTP/1.1\"" "$H_DIR/access.log" | tail -1
}
# closed RC: curl's exit code says the proxy closed an accepted connection: it saw the reset while
# connecting (7: the decision comes before the client's first bytes), sending (55) or receiving
# (52 empty reply, 56 reset). Which one is a race; the access log and counters say why.
closed() { case $1 in 7 | 52 | 55 | 56) return 0 ;; esac; return 1; }
stat() { h_ctl stats 2>/dev/null | awk -v n="proxy.$1:" '$1 == n { print $2 }'; }

# ---- HTTP: ALLOW by path and by header, everything else 403 ----
is "$(st "$URL/api/items")" "200 be" "ALLOW: a path the regex /api/.* matches is served"
is "$(st -H 'x-token: letmein' "$URL/other-token")" "200 be" "ALLOW: the header principal x-token: letmein is served"
is "$(st "$URL/other")" "403 RBAC: access denied" "ALLOW, no policy matches: 403 with Envoy's body"
is "$(st -H 'x-token: wrong' "$URL/other2")" "403 RBAC: access denied" "ALLOW: another token is denied"
is "$(hits /other)$(hits /other2)" "00" "denied requests never reached the backend"
like "$(logline GET /other)" '" 403 RBAC rbac_access_denied_matched_policy\[none\] ' \
	"the access log says RBAC, rbac_access_denied_matched_policy[none]"

# ---- HTTP: DENY by method and by path ----
is "$(st -X DELETE "$URL/api/items")" "403 RBAC: access denied" "DENY: DELETE is denied even on an allowed path"
like "$(logline DELETE /api/items)" \
	'" 403 RBAC rbac_access_denied_matched_policy\[ns\[t\]-policy\[no-delete\]-rule\[0\]\] ' \
	"the details name the DENY policy that matched"
is "$(st -H 'x-token: letmein' "$URL/secret/key")" "403 RBAC: access denied" \
	"DENY: /secret/ is denied, though the ALLOW filter would let the token through"
like "$(logline GET /secret/key)" 'rbac_access_denied_matched_policy\[ns\[t\]-policy\[no-secret\]-rule\[0\]\]' \
	"named as the no-secret policy"
is "$(hits /secret/key)" "0" "the backend never saw it"

# ---- per route: the ALLOW filter is off on /open/, the DENY filter is not ----
is "$(st "$URL/open/page")" "200 be" "an empty RBACPerRoute disables the ALLOW filter on /open/"
is "$(st -X DELETE "$URL/open/page")" "403 RBAC: access denied" "the DENY filter still applies there"

# ---- shadow rules are counted, never enforced ----
is "$(st -H 'x-token: letmein' "$URL/v2/x")" "200 be" "shadow DENY on /v2/ does not deny"

# ---- counters ----
# 9 requests: the DENY filter ran on all and denied 3 (two DELETEs, /secret/key); the ALLOW
# filter ran on the 5 others not on /open/ and denied 2 (/other, /other2). Each filter counts.
is "$(stat http_rbac_denied)" "5" "proxy.http_rbac_denied: 3 by the DENY filter, 2 by ALLOW"
is "$(stat http_rbac_allowed)" "9" "proxy.http_rbac_allowed: 6 by the DENY filter, 3 by ALLOW"
is "$(stat http_rbac_shadow_denied)" "1" "proxy.http_rbac_shadow_denied counts /v2/x"
is "$(stat http_rbac_shadow_allowed)" "8" "and shadow_allowed the other 8"

# ---- remote_ip: without use_remote_address, the client is x-forwarded-for's last entry ----
is "$(st -H 'x-token: letmein' -H 'x-forwarded-for: 198.51.100.7' "$URL/xff/1")" \
	"403 RBAC: access denied" "remote_ip: a client in 198.51.100.0/24 by x-forwarded-for is denied"
like "$(logline GET /xff/1)" 'rbac_access_denied_matched_policy\[ns\[t\]-policy\[no-net\]-rule\[0\]\]' \
	"by the remote_ip policy"
is "$(st -H 'x-token: letmein' -H 'x-forwarded-for: 198.51.100.7, 10.0.0.1' "$URL/xff/2")" "200 be" \
	"remote_ip: only the last entry counts (10.0.0.1 is allowed)"

# ---- network RBAC on a tcp_proxy chain: source address ----
is "$(st "http://127.0.0.1:$T/tcp/1")" "200 be" "network ALLOW: 127.0.0.1 is proxied to the backend"
c -o /dev/null "--interface" 127.0.0.2 "http://127.0.0.1:$T/tcp/2"
rc=$?
ok "network ALLOW: from 127.0.0.2 the connection is closed (curl exit $rc)" closed "$rc"
is "$(hits /tcp/2)" "0" "the backend never saw it"
h_wait_for 3 grep -q '"- - -" 0 - - rbac_access_denied_matched_policy\[none\] .* 127.0.0.2:' "$H_DIR/access.log"
like "$(grep '"- - -" 0 ' "$H_DIR/access.log" | grep 127.0.0.2: | tail -1)" \
	'"- - -" 0 - - rbac_access_denied_matched_policy\[none\] ' \
	"the TCP access log line: no flag, rbac_access_denied_matched_policy[none]"

# ---- network RBAC before an HCM: destination port ----
c -o /dev/null "http://127.0.0.1:$U/port/1"
rc=$?
ok "network DENY of port $U: the connection is closed (curl exit $rc)" closed "$rc"
is "$(hits /port/1)" "0" "no request was read or forwarded"
h_wait_for 3 grep -q "closed-port" "$H_DIR/access.log"
like "$(grep -F "127.0.0.1:$U " "$H_DIR/access.log" | tail -1)" \
	'"- - -" 0 - - rbac_access_denied_matched_policy\[ns\[t\]-policy\[closed-port\]-rule\[0\]\] ' \
	"logged with the DENY policy's name"
is "$(stat tcp_rbac_allowed) $(stat tcp_rbac_denied)" "1 2" "proxy.tcp_rbac_allowed 1, tcp_rbac_denied 2"

# ---- mTLS: principal_name against the client certificate ----
# tls NAME: curl's TLS arguments to present NAME's certificate to server.test.
tls() { echo "--cacert $PKI/ca.crt --cert $PKI/$1.crt --key $PKI/$1.key --resolve server.test:$S:127.0.0.1 --resolve server.test:$M:127.0.0.1"; }
# shellcheck disable=SC2046 # the helper's words are curl arguments
is "$(st $(tls allowed) "https://server.test:$S/mtls/1")" "200 be" \
	"mTLS: URI SAN spiffe://cluster.local/ns/t/sa/allowed is allowed"
# shellcheck disable=SC2046
is "$(st $(tls other) "https://server.test:$S/mtls/2")" "403 RBAC: access denied" \
	"mTLS: URI SAN .../sa/other is denied (its DNS SAN is not looked at: the URI SAN comes first)"
# shellcheck disable=SC2046
is "$(st $(tls dnsonly) "https://server.test:$S/mtls/3")" "200 be" \
	"mTLS: a certificate with only a DNS SAN is matched by that name"
like "$(logline GET /mtls/2)" '" 403 RBAC rbac_access_denied_matched_policy\[none\] ' "logged as RBAC"
# shellcheck disable=SC2046
is "$(st $(tls allowed) "https://server.test:$M/mtls/4")" "200 be" \
	"network RBAC over mTLS: the allowed SPIFFE principal is proxied"
# shellcheck disable=SC2046
c -o /dev/null $(tls other) "https://server.test:$M/mtls/5"
rc=$?
ok "network RBAC over mTLS: another principal's connection is closed after the handshake (curl exit $rc)" \
	closed "$rc"
is "$(hits /mtls/2)$(hits /mtls/5)" "00" "the denied ones never reached the backend"
is "$(stat tcp_rbac_allowed) $(stat tcp_rbac_denied)" "2 3" \
	"the network filter counted the mTLS connections: one more allowed, one more denied"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
