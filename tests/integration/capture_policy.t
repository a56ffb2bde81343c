#!/usr/bin/env bash
# Issue 3, item 4: a pod that is not enrolled and the host netns are never redirected; excluded
# ports pass untouched in their direction.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

kstat() { h_ctl -o json stats | jq -r ".kernel.pods[\"$1\"].$2 // 0"; }
ktotal() { h_ctl -o json stats | jq -r ".kernel.total.$1"; }
enrolled() { h_ctl -o json workloads | jq -r '.[].name' | sort | tr '\n' ' '; }

h_init
h_pod a
h_pod b
h_pod c
h_shuntd --exclude-outbound-ports 9091 --exclude-inbound-ports 9090 ||
	{ echo "Bail out! shuntd did not start"; exit 1; }
A=$(h_ip a)
B=$(h_ip b)
C=$(h_ip c)
for port in 8080 9090 9091; do h_bg b "$H_BIN/nettest" serve "$port" peer; done
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':9091 '"
is "$(enrolled)" "a b c " "pods a, b and c are enrolled"

# A pod taken out of the mesh by hand: its connects are not redirected.
ok "shuntctl unenroll --pid takes c out" h_ctl unenroll --pid "$(h_pause c)"
is "$(enrolled)" "a b " "c is no longer listed"
redirected=$(ktotal connect_redirected)
like "$(h_exec c "$H_BIN/nettest" peer "$B" 8080)" "^peer=$B:8080 local=$C:[0-9]+$" \
	"c connects straight to B from its own address (no 127.0.0.1 hop)"
is "$(ktotal connect_redirected)" "$redirected" "no connect was redirected for c"
like "$(h_exec c socat -t2 - "TCP:$B:8080" </dev/null)" '^peer=127\.0\.0\.6:' \
	"B is still in the mesh: c's connection is captured on B's side"
sleep 0.5
is "$(h_ctl -o json workloads | jq -r '.[].name' | grep -c '^c$')" "0" \
	"a periodic resync does not bring c back"
ok "shuntctl enroll --pid brings c back" h_ctl enroll --pid "$(h_pause c)"
like "$(h_exec c "$H_BIN/nettest" peer "$B" 8080)" "local=127\.0\.0\.1:" \
	"c is captured again once enrolled by hand"

# A process in the host netns (a hostNetwork pod) inside the attach cgroup: never touched.
mkdir "$H_CG/hostnet"
before=$(h_ctl -o json stats | jq -c .kernel.total)
h_exec_hostnet() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$H_CG/hostnet" "$@"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$H_CG/hostnet" \
	socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" SYSTEM:true &
H_PIDS+=($!)
h_wait_for 5 sh -c "ss -ltn | grep -q '127.0.0.1:$port '"
like "$(h_exec_hostnet "$H_BIN/nettest" peer 127.0.0.1 "$port")" "^peer=127\.0\.0\.1:$port " \
	"a host-netns process in the cgroup connects normally"
sleep 0.3
is "$(enrolled)" "a b c " "the host-netns cgroup is not taken for a pod"
is "$(h_ctl -o json stats | jq -c .kernel.total)" "$before" \
	"no kernel counter moved: the host netns is not even looked at"
# The same loopback connect from an enrolled pod is seen, and passed through.
pt=$(kstat a connect_passthrough)
h_exec a "$H_BIN/nettest" peer 127.0.0.1 15001 >/dev/null
cmp_ok "$(kstat a connect_passthrough)" -gt "$pt" \
	"an enrolled pod's loopback connect is counted as passthrough, not redirected"

# Excluded outbound port 9091: A goes direct; B's inbound capture still applies.
pt=$(kstat a connect_passthrough)
like "$(h_exec a "$H_BIN/nettest" peer "$B" 9091)" "^peer=$B:9091 local=$A:" \
	"outbound-excluded port: A connects directly from its pod address"
cmp_ok "$(kstat a connect_passthrough)" -gt "$pt" "and it is counted as passthrough"
# Excluded inbound port 9090: A's proxy carries it, B's inbound does not steer it.
ipt=$(kstat b inbound_passthrough)
like "$(h_exec a socat -t2 - "TCP:$B:9090" </dev/null)" "^peer=$A:[0-9]+$" \
	"inbound-excluded port: B's app sees A's address, not 127.0.0.6"
cmp_ok "$(kstat b inbound_passthrough)" -gt "$ipt" "B counted it as inbound passthrough"
like "$(h_exec a socat -t2 - "TCP:$B:8080" </dev/null)" '^peer=127\.0\.0\.6:' \
	"a port that is not excluded is still captured inbound"

h_shuntd_stop
is "$?" "0" "shuntd stops cleanly"
done_testing
