#!/usr/bin/env bash
# Issue 7, items 2-4: shuntd --mode iptables captures pods with Istio's rules and the same proxy
# (127.0.0.6 at the server, excluded ports bypass, DNS to 15053), takes the rules back out on
# unenroll and at exit, adopts its own rules after a crash, never touches the host's tables; and
# --mode auto falls back to iptables per path when the kernel lacks a program type (simulated).
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

pstat() { h_ctl -o json stats | jq -r ".proxy.$1"; }
kstat() { h_ctl -o json stats | jq -r ".kernel.pods[\"$1\"].$2"; }
status() { h_ctl -o json status | jq -r ".shuntd.status.$1"; }
rules() { ip netns exec "$(h_ns "$1")" iptables-save 2>/dev/null; }
rules6() { ip netns exec "$(h_ns "$1")" ip6tables-save 2>/dev/null; }
# The host's tables, without the packet counters that traffic changes. Read only.
host_rules() { { iptables-save; ip6tables-save; } 2>/dev/null | grep -v '^[#:]'; }

h_init
host_before=$(host_rules | md5sum)
h_pod a
h_pod b
A=$(h_ip a)
B=$(h_ip b)
B6=$(h_ip6 b)

mkdir -p "$H_DIR/www"
head -c 1048576 /dev/urandom >"$H_DIR/www/blob"
want=$(sha256sum <"$H_DIR/www/blob" | cut -d' ' -f1)
h_bg b /usr/bin/python3 -m http.server 8000 --bind :: --directory "$H_DIR/www"
h_bg b "$H_BIN/nettest" serve 8080
h_bg b "$H_BIN/nettest" serve 8081 peer
h_bg b "$H_BIN/nettest" serve 15020 peer
h_bg b "$H_BIN/nettest" serve 7000 peer
# A stand-in for istio-agent's DNS proxy on 15053 in pod A, as uid 1337 like the real one (Istio's
# raw-table rules put its replies in the conntrack zone of the redirected query by that uid).
h_bg a setpriv --reuid 1337 --regid 1337 --clear-groups socat UDP4-RECVFROM:15053,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo answered-by-15053'
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8000 '" || diag "http server slow to start"
h_wait_for 5 h_exec a sh -c "ss -lun | grep -q '127.0.0.1:15053 '" || diag "DNS stand-in slow to start"

# ---- 1. --mode iptables -----------------------------------------------------------------------
h_shuntd --mode iptables --exclude-inbound-ports 7000 --exclude-outbound-ports 7000 \
	--redirect-dns --dns-servers-v4 10.77.0.53 ||
	{ echo "Bail out! shuntd --mode iptables did not start"; exit 1; }
h_wait_for 5 sh -c "$(declare -f rules h_ns); rules b | grep -q ISTIO_INBOUND" ||
	diag "rules slow to appear in pod b"

is "$(status capture.outbound)/$(status capture.inbound)" "iptables/iptables" \
	"status: both paths captured by iptables"
is "$(status capture.outbound_why)" "--mode iptables" "status: says why"
is "$(h_ctl -o json status | jq '.links | length')" "0" "no eBPF program is attached"
like "$(rules a)" "-A ISTIO_OUTPUT -m mark --mark 0x534e -j RETURN" \
	"pod A has Istio's chains, with the proxy's mark exempted first"
like "$(rules a)" "-A ISTIO_INBOUND -p tcp -m tcp --dport 7000 -j RETURN" \
	"--exclude-inbound-ports becomes an ISTIO_INBOUND exemption"
like "$(rules6 b)" "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" \
	"pod B has the ip6tables rules too"

like "$(h_exec a "$H_BIN/nettest" peer "$B" 8080)" "^peer=$B:8080 " \
	"the app in A still sees the address it connected to"
like "$(h_exec a socat -t2 - "TCP:$B:8081" </dev/null)" '^peer=127\.0\.0\.6:[0-9]+$' \
	"raw TCP A -> B: the server sees 127.0.0.6 (both proxies in the path)"
like "$(h_exec a socat -t2 - "TCP6:[$B6]:8081" </dev/null)" '^peer=\[::6\]:[0-9]+$' \
	"raw TCP over IPv6: the server sees ::6"
got=$(h_exec a curl -sf --max-time 10 "http://$B:8000/blob" | sha256sum | cut -d' ' -f1)
is "$got" "$want" "HTTP A -> B over IPv4: 1 MB body intact"
got=$(h_exec a curl -sf --max-time 10 "http://[$B6]:8000/blob" | sha256sum | cut -d' ' -f1)
is "$got" "$want" "HTTP A -> B over IPv6: 1 MB body intact"
like "$(h_exec a "$H_BIN/nettest" bulk "$B" 8080 10M)" '^ok bytes=10485760 ' \
	"10 MB echoed A -> B -> A, byte for byte"
h_wait_for 2 grep -q "\"$B:8081\" InboundPassthroughCluster 127.0.0.6:" "$H_DIR/access.log"
like "$(grep "\"$B:8081\" PassthroughCluster" "$H_DIR/access.log" | head -1)" \
	" PassthroughCluster $A:[0-9]+ $B:8081 $A:[0-9]+ - -$" \
	"access log: the outbound leg, original destination from SO_ORIGINAL_DST"
cmp_ok "$(pstat outbound_cx_total)" -ge 5 "the proxy counted the outbound legs"
cmp_ok "$(pstat inbound_cx_total)" -ge 5 "the proxy counted the inbound legs"

out_before=$(pstat outbound_cx_total)
like "$(h_exec a socat -t2 - "TCP:$B:15020" </dev/null)" "^peer=$A:[0-9]+$" \
	"port 15020 (Istio's default exclusion) goes direct: the server sees A"
like "$(h_exec a socat -t2 - "TCP:$B:7000" </dev/null)" "^peer=$A:[0-9]+$" \
	"an excluded port goes direct both ways"
is "$(pstat outbound_cx_total)" "$out_before" "the proxy saw neither connection"

# Each reply forks a shell (socat SYSTEM): on a loaded machine that took over 2 s once.
like "$(echo q | h_exec a socat -T8 - UDP4:10.77.0.53:53)" '^answered-by-15053$' \
	"DNS to a listed server is redirected to 15053"
is "$(echo q | h_exec a socat -T1 - UDP4:10.77.0.54:53)" "" \
	"DNS to another server is not"

h_ctl unenroll --pid "$(h_pause a)" >/dev/null
unlike_rules=$(rules a | grep -c ISTIO)
is "$unlike_rules" "0" "unenroll takes every ISTIO rule and chain out of pod A"
like "$(h_exec a socat -t2 - "TCP:$B:8081" </dev/null)" '^peer=127\.0\.0\.6:[0-9]+$' \
	"A, no longer captured, still reaches B, whose inbound proxy serves it"
h_ctl enroll --pid "$(h_pause a)" >/dev/null
like "$(rules a)" "ISTIO_OUTPUT" "enroll by hand loads them again"

# A crash leaves the rules behind; the next shuntd takes its own rules over.
kill -KILL "$H_SHUNTD_PID"
wait "$H_SHUNTD_PID" 2>/dev/null
H_SHUNTD_PID=
like "$(rules b)" "ISTIO_INBOUND" "after a crash the rules are still in place"
h_shuntd --mode iptables || { echo "Bail out! shuntd did not restart"; exit 1; }
h_wait_for 5 sh -c "[ \$(grep -c 'taking over the iptables rules' '$H_DIR/shuntd.log') = 2 ]" ||
	diag "$(grep -v '^\[' "$H_DIR/shuntd.log" | tail -8)"
like "$(grep -c 'taking over the iptables rules' "$H_DIR/shuntd.log")" '^2$' \
	"the restarted shuntd takes over the rules of both pods"
like "$(h_exec a socat -t2 - "TCP:$B:8081" </dev/null)" '^peer=127\.0\.0\.6:[0-9]+$' \
	"traffic flows through the restarted proxy"
h_shuntd_stop
is "$?" "0" "shuntd --mode iptables stops cleanly"
is "$(rules a | grep -c ISTIO)$(rules b | grep -c ISTIO)$(rules6 b | grep -c ISTIO)" "000" \
	"at exit every pod's rules are gone, IPv4 and IPv6"
is "$(find "$H_DIR/run/iptables" -type f | wc -l)" "0" "and so are the adoption marks"

# ---- 2. --mode auto, one program type missing -------------------------------------------------
SHUNT_PROBE_HIDE=prog_sk_lookup h_shuntd --mode auto ||
	{ echo "Bail out! shuntd --mode auto did not start"; exit 1; }
h_wait_for 5 sh -c "$(declare -f rules h_ns); rules b | grep -q ISTIO_INBOUND"
is "$(status capture.outbound)/$(status capture.inbound)" "ebpf/iptables" \
	"without sk_lookup: outbound by eBPF, inbound by iptables"
like "$(status capture.inbound_why)" "sk_lookup .*hidden by SHUNT_PROBE_HIDE" \
	"status says which program type was missing"
like "$(cat "$H_DIR/shuntd.log")" "inbound capture by iptables: the kernel lacks program type sk_lookup" \
	"and so does the log"
is "$(rules b | grep -c -- '-j ISTIO_REDIRECT')" "0" "no outbound iptables capture in the pod"
like "$(h_exec a socat -t2 - "TCP:$B:8081" </dev/null)" '^peer=127\.0\.0\.6:[0-9]+$' \
	"A -> B works: eBPF out of A, iptables into B"
cmp_ok "$(kstat a connect_redirected)" -ge 1 "A's connect was redirected by connect4"
h_shuntd_stop
is "$?" "0" "stops cleanly"

SHUNT_PROBE_HIDE=prog_cgroup_sock_addr h_shuntd --mode auto ||
	{ echo "Bail out! shuntd --mode auto did not start"; exit 1; }
h_wait_for 5 sh -c "$(declare -f rules h_ns); rules a | grep -q ISTIO_OUTPUT"
is "$(status capture.outbound)/$(status capture.inbound)" "iptables/ebpf" \
	"without cgroup_sock_addr: outbound by iptables, inbound by eBPF"
like "$(status sockmap_why)" "outbound capture is not eBPF" "the short-circuit is off, and why"
is "$(rules b | grep -c -- '-A PREROUTING -p tcp -j ISTIO_INBOUND')" "0" \
	"no inbound iptables capture in the pod"
like "$(h_exec a socat -t2 - "TCP:$B:8081" </dev/null)" '^peer=127\.0\.0\.6:[0-9]+$' \
	"A -> B works: iptables out of A, sk_lookup into B"
cmp_ok "$(kstat b inbound_steered)" -ge 1 "B's SYN was steered by sk_lookup"
h_shuntd_stop
is "$?" "0" "stops cleanly"

# --mode ebpf refuses to fall back.
SHUNT_PROBE_HIDE=prog_sk_lookup "$H_BIN/shuntd" --mode ebpf --cgroup "$H_CG" \
	--bpffs-dir "$H_DIR/bpf" --run-dir "$H_DIR/run" --admin-port 0 >"$H_DIR/ebpf.out" 2>&1
is "$?" "1" "--mode ebpf without sk_lookup exits 1"
like "$(cat "$H_DIR/ebpf.out")" "--mode ebpf: the kernel lacks what inbound capture needs: program type sk_lookup" \
	"naming what is missing"

is "$(host_rules | md5sum)" "$host_before" "the host's own iptables rules are unchanged"
done_testing
