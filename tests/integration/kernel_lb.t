#!/usr/bin/env bash
# The kernel service LB (DESIGN data path 5): a tcp_proxy service VIP from shuntd --config is
# balanced by connect4 straight to its endpoints in pods B and C (the proxy is not in the path,
# the server sees the client pod as peer, getpeername shows the VIP), evenly; shuntctl services
# lists it with and without shuntd; a service that is not L4-only and a non-enrolled netns are
# left to the proxy / untouched; the ADS half follows EDS changes with no failed connect.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

PY=/usr/bin/python3
h_init
h_pod a
h_pod b
h_pod c
B=$(h_ip b)
C=$(h_ip c)
# Each server answers "<its name> peer=<the address it sees>" and closes.
SRV='
import socket, sys
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1])))
ls.listen(512)
while True:
    s, p = ls.accept()
    s.sendall(("%s peer=%s:%d\n" % (sys.argv[2], p[0], p[1])).encode())
    s.close()
'
h_bg b $PY -c "$SRV" 8080 B
h_bg c $PY -c "$SRV" 8080 C
h_wait_for 5 h_exec c sh -c "ss -ltn | grep -q ':8080 '"
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8080 '"
sed -e "s/@B@/$B/" -e "s/@C@/$C/" tests/integration/fixtures/kernel-lb.yaml >"$H_DIR/lb.yaml"

# N connects to VIP:PORT from pod $1; one line per connect: "<getpeername> <server's answer>",
# or "FAIL <error>". Bounded: a 3 s timeout per connect.
LBC='
import socket, sys
vip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(n):
    try:
        s = socket.create_connection((vip, port), timeout=3)
        p = s.getpeername()
        data = b""
        while not data.endswith(b"\n"):
            d = s.recv(256)
            if not d:
                break
            data += d
        s.close()
        print("%s:%d %s" % (p[0], p[1], data.decode().strip()))
    except OSError as e:
        print("FAIL %s" % e)
'
connects() { h_exec "$1" $PY -c "$LBC" "$2" "$3" "$4"; }
proxy_cx() { h_ctl stats -o json | jq -r '.proxy.downstream_cx_total // .proxy.stats.downstream_cx_total // empty'; }
lb_hits() { h_ctl stats -o json | jq -r "[.kernel.pods[] | .lb_hit] | add"; }

h_shuntd --config "$H_DIR/lb.yaml" || { echo "Bail out! shuntd did not start"; exit 1; }
like "$(grep 'services:' "$H_DIR/shuntd.log")" "services: 2 in the kernel maps \\(2 added" \
	"the snapshot's two VIP services are written to the maps"

svc=$(h_ctl services -o json)
is "$(jq -r '.[] | select(.service=="10.96.0.10:8080") | [.cluster, .kernel_lb, .generation, (.backends | map(.address) | sort | join(","))] | join(" ")' <<<"$svc")" \
	"outbound|8080||echo true 1 $(printf '%s\n' "$B:8080" "$C:8080" | sort | paste -sd,)" \
	"shuntctl services: the L4 service, its cluster, generation 1, both backends, kernel LB"
is "$(jq -r '.[] | select(.service=="10.96.0.11:9090") | .kernel_lb' <<<"$svc")" "false" \
	"a chain that matches on SNI is listed but left to the proxy"
like "$(h_ctl services)" "10\\.96\\.0\\.10:8080 +outbound\\|8080\\|\\|echo +1 +2 +yes" "the table form"

# The backends' pods leave the mesh, so that their inbound proxy does not stand between (and so
# that pod b doubles as the non-enrolled netns).
h_ctl unenroll --pid "$(h_pause b)" >/dev/null
h_ctl unenroll --pid "$(h_pause c)" >/dev/null
cx0=$(proxy_cx)
like "$cx0" "^[0-9]+$" "the proxy's connection counter reads"
out=$(connects a 10.96.0.10 8080 400)
is "$(grep -c FAIL <<<"$out")" "0" "400 connects to the VIP: none fails"
is "$(awk '{print $1}' <<<"$out" | sort -u)" "10.96.0.10:8080" "getpeername in the client shows the VIP"
is "$(sed 's/.* peer=\([0-9.]*\):.*/\1/' <<<"$out" | sort -u)" "$(h_ip a)" \
	"the servers see the client pod's own address as peer (no proxy hop)"
nb=$(grep -c "^[^ ]* B peer=" <<<"$out")
nc=$(grep -c "^[^ ]* C peer=" <<<"$out")
is "$((nb + nc))" "400" "every connect was answered by B or C"
# Chi-square with one degree of freedom against 200/200: below 10.83 (p = 0.001).
chi=$(awk -v b="$nb" -v c="$nc" 'BEGIN { e = (b + c) / 2; printf "%d", ((b - e)^2 + (c - e)^2) / e * 100 }')
cmp_ok "$chi" -lt 1083 "the split B $nb / C $nc is uniform (chi-square x100 = $chi < 1083)"
cx1=$(proxy_cx)
is "$cx1" "$cx0" "the proxy accepted no connection"
is "$(lb_hits)" "400" "lb_hit counts them"


# A non-enrolled netns is untouched: in pod b the VIP is a local address, so its connects reach
# b's own server (which sees the VIP as peer), never C.
h_exec b ip addr add 10.96.0.10/32 dev lo
out=$(connects b 10.96.0.10 8080 20)
is "$(awk '{print $2, $3}' <<<"$out" | sed 's/:[0-9]*$//' | sort -u)" "B peer=10.96.0.10" \
	"a non-enrolled netns: connects to the VIP are not balanced"

h_shuntd_stop
done_testing
