#!/usr/bin/env bash
# Issue 3, items 5-6: a pod created while shuntd runs is enrolled within 1 s and a removed pod
# is cleaned up; after shuntd stops nothing of it is left and pods talk directly. No iptables
# rule exists in any pod at any time.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

enrolled() { h_ctl -o json workloads 2>/dev/null | jq -r '.[].name' | sort | tr '\n' ' '; }
has_pod() { h_ctl -o json workloads | jq -e ".[] | select(.name == \"$1\")"; }
lacks_pod() { ! has_pod "$1"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
no_iptables_rules() {
	local p out
	for p in "$@"; do
		out=$(ip netns exec "$(h_ns "$p")" iptables-save 2>/dev/null
			ip netns exec "$(h_ns "$p")" ip6tables-save 2>/dev/null)
		if printf '%s\n' "$out" | grep -q '^-A'; then
			echo "# pod $p has rules: $out"
			return 1
		fi
	done
}

h_init
h_pod a
h_pod b
h_shuntd || { echo "Bail out! shuntd did not start"; exit 1; }
B=$(h_ip b)
h_bg b "$H_BIN/nettest" serve 8080 peer
h_wait_for 5 h_exec b sh -c "ss -ltn | grep -q ':8080 '"
is "$(enrolled)" "a b " "the pods that exist at start are enrolled"

# 5. A new pod, then its removal.
t0=$(now_ms)
h_pod c
h_wait_for 2 has_pod c
elapsed=$(($(now_ms) - t0))
cmp_ok "$elapsed" -le 1000 "a pod created while shuntd runs is enrolled within 1 s (${elapsed} ms)"
like "$(h_exec c socat -t2 - "TCP:$B:8080" </dev/null)" '^peer=127\.0\.0\.6:' \
	"the new pod's traffic goes through the mesh"
links_with_c=$(h_ctl -o json status | jq '.links | length')
t0=$(now_ms)
h_pod_rm c
h_wait_for 2 lacks_pod c
elapsed=$(($(now_ms) - t0))
cmp_ok "$elapsed" -le 1000 "a removed pod is un-enrolled within 1 s (${elapsed} ms)"
is "$(h_ctl -o json status | jq '.links | length')" "$((links_with_c - 1))" \
	"its sk_lookup link is gone"
is "$(h_ctl -o json status | jq '.maps.mesh_netns, .maps.pod_by_addr, .maps.stats' | tr '\n' ' ')" \
	"2 4 3 " "its map entries are gone (2 pods, 4 addresses, 2+1 counter sets)"
# Kubernetes nests container cgroups (kubepods/burstable/pod<uid>/<ctr>) and a pod has several;
# the pod stays enrolled while any of them holds a process in its netns.
h_pod d
h_wait_for 2 has_pod d
mkdir -p "$H_CG/burstable/pod-d/ctr1" "$H_CG/burstable/pod-d/ctr2"
echo "$(h_pause d)" >"$H_CG/burstable/pod-d/ctr1/cgroup.procs"
h_bg_raw d sleep 1000000
sleep 0.3
echo "$!" >"$H_CG/burstable/pod-d/ctr2/cgroup.procs"
rmdir "$H_CG/d"
sleep 0.5
ok "a pod whose processes moved into nested container cgroups stays enrolled" has_pod d
like "$(h_exec_netns d socat -t2 - "TCP:$B:8080" </dev/null)" '^peer=' \
	"and its netns still reaches B"
cookie=$(h_ctl -o json workloads | jq -r '.[] | select(.name == "d") | .netns_cookie')
h_kill_cgroup "$H_CG/burstable/pod-d/ctr1"
rmdir "$H_CG/burstable/pod-d/ctr1"
sleep 0.5
ok "one container leaving keeps it enrolled" has_pod d
h_kill_cgroup "$H_CG/burstable/pod-d/ctr2"
rmdir "$H_CG/burstable/pod-d/ctr2" "$H_CG/burstable/pod-d" "$H_CG/burstable"
h_wait_for 2 lacks_pod d
ok "the last container leaving unenrolls it" lacks_pod d
is "$(h_ctl -o json workloads | jq -r ".[] | select(.netns_cookie == ${cookie:-0}) | .name")" "" \
	"nothing is left under its netns cookie"

ok "no iptables rule in any pod while shuntd runs" no_iptables_rules a b

# 6. Stop: everything goes, pods talk directly.
link_ids=$(h_ctl -o json status | jq -r '.links[].id' | tr '\n' ' ')
prog_ids=$(h_ctl -o json status | jq -r '.links[].prog_id' | sort -u | tr '\n' ' ')
h_shuntd_stop
is "$?" "0" "shuntd exits 0 on SIGTERM"
ok "the bpffs it mounted is unmounted and removed" sh -c "! grep -q ' $H_DIR/bpf ' /proc/mounts && [ ! -e '$H_DIR/bpf' ]"
left=0
for id in $link_ids; do bpftool link show id "$id" >/dev/null 2>&1 && left=$((left + 1)); done
is "$left" "0" "none of its links exists any more ($(echo "$link_ids" | wc -w) checked)"
left=0
for id in $prog_ids; do bpftool prog show id "$id" >/dev/null 2>&1 && left=$((left + 1)); done
is "$left" "0" "none of its programs is loaded any more"
is "$(bpftool cgroup show "$H_CG" 2>/dev/null | grep -c .)" "0" \
	"nothing is attached to the pods' parent cgroup"
ok "no proxy listener is left in the pods" \
	sh -c "! ip netns exec $(h_ns a) ss -ltn | grep -qE ':1500[16] ' && ! ip netns exec $(h_ns b) ss -ltn | grep -qE ':1500[16] '"
ok "::6 is removed from B's loopback" sh -c "! ip -n $(h_ns b) -6 addr show dev lo | grep -q '::6/128'"
ok "the admin socket and pid file are removed" \
	sh -c "[ ! -e '$H_DIR/run/admin.sock' ] && [ ! -e '$H_DIR/run/shuntd.pid' ]"
like "$(h_exec a socat -t2 - "TCP:$B:8080" </dev/null)" "^peer=$(h_ip a):[0-9]+$" \
	"pods still talk, directly: B sees A's own address"
like "$(h_exec a "$H_BIN/nettest" peer "$B" 8080)" "^peer=$B:8080 local=$(h_ip a):" \
	"and A's connect is not rewritten"
ok "no iptables rule in any pod after shuntd stopped" no_iptables_rules a b
done_testing
