# shellcheck shell=bash
# Pod harness for tests, the demo and the benchmark: a "node" network namespace holding a
# bridge, pods (netns + veth + IPv4/IPv6 address + cgroup) attached to it, and shuntd runs,
# all removed on exit, even on failure. Nothing touches the host's netns, routes, iptables or
# root cgroup: every netns and cgroup here is created by the harness and named after it.
#
#   . tests/lib/pods.sh
#   h_init                    # once; installs the cleanup trap
#   h_pod a; h_pod b          # pods: h_ip a -> 10.77.0.2, h_ip6 a -> fd77::2
#   h_exec a curl ...         # run a command inside pod a (its netns and cgroup)
#   h_bg a CMD...             # the same in the background; killed at cleanup
#   h_shuntd [FLAGS...]       # start shuntd for this node; waits until it is ready
#                             # (H_SHUNTD_WRAP=(CMD...): a command that execs its arguments,
#                             # run between the harness and shuntd, e.g. unshare)

H_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
H_BIN=${H_BIN:-$H_ROOT/build/bin}
H_SUBNET4=${H_SUBNET4:-10.77.0}
H_SUBNET6=${H_SUBNET6:-fd77:}
H_PIDS=()
H_PODS=()
H_NS=()
H_SHUNTD_PID=
H_NEXT_IDX=2

h_die() {
	echo "harness: $*" >&2
	exit 1
}

h_cgroup2_mount() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts
}

h_init() {
	H_ID=${H_ID:-$$}
	H_NAME=shunt-t$H_ID
	H_DIR=$(mktemp -d "/tmp/$H_NAME.XXXXXX")
	local cgmnt
	cgmnt=$(h_cgroup2_mount)
	[ -n "$cgmnt" ] || h_die "cgroup2 is not mounted"
	H_CG=$cgmnt/$H_NAME
	trap h_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir "$H_CG" || h_die "cannot create cgroup $H_CG"
	H_NODE=$H_NAME-node
	ip netns add "$H_NODE" || h_die "cannot create netns $H_NODE"
	H_NS+=("$H_NODE")
	ip -n "$H_NODE" link set lo up
	ip -n "$H_NODE" link add br0 type bridge
	ip netns exec "$H_NODE" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0
	ip -n "$H_NODE" addr add "$H_SUBNET4.1/24" dev br0
	ip -n "$H_NODE" addr add "${H_SUBNET6}:1/64" dev br0 nodad
	ip -n "$H_NODE" link set br0 up
}

# h_pod NAME: a pod netns on the node's bridge, with a cgroup whose pause process lives in it.
h_pod() {
	local name=$1 idx=$H_NEXT_IDX ns=$H_NAME-$1
	H_NEXT_IDX=$((H_NEXT_IDX + 1))
	ip netns add "$ns" || h_die "cannot create netns $ns"
	H_NS+=("$ns")
	H_PODS+=("$name")
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0
	ip -n "$ns" link set lo up
	ip -n "$H_NODE" link add "v-$name" type veth peer name eth0 netns "$ns"
	ip -n "$H_NODE" link set "v-$name" master br0 up
	ip -n "$ns" addr add "$H_SUBNET4.$idx/24" dev eth0
	ip -n "$ns" addr add "${H_SUBNET6}:$idx/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "$H_SUBNET4.1"
	ip -n "$ns" -6 route add default via "${H_SUBNET6}:1"
	eval "H_IP_$name=$H_SUBNET4.$idx"
	eval "H_IP6_$name=${H_SUBNET6}:$idx"
	mkdir "$H_CG/$name"
	# The pause process enters the netns first and the cgroup second, as a runtime does.
	h_bg_raw "$name" sleep 1000000
	eval "H_PAUSE_$name=$!"
}

h_ip() { eval "echo \$H_IP_$1"; }
h_pause() { eval "echo \$H_PAUSE_$1"; }
h_ip6() { eval "echo \$H_IP6_$1"; }
h_ns() { echo "$H_NAME-$1"; }

# h_pod_rm NAME: removes a pod (its processes, cgroup and netns) while the harness runs.
h_pod_rm() {
	local name=$1 ns=$H_NAME-$1
	h_kill_cgroup "$H_CG/$name" || return 1
	rmdir "$H_CG/$name" || return 1
	ip netns del "$ns"
}

h_bg_raw() {
	local name=$1
	shift
	nsenter --net="/run/netns/$H_NAME-$name" sh -c \
		'echo $$ > "$0/cgroup.procs" && exec "$@"' "$H_CG/$name" "$@" &
	H_PIDS+=($!)
}

# h_exec POD CMD...: runs CMD in the pod's netns and cgroup, in the foreground.
h_exec() {
	local name=$1
	shift
	nsenter --net="/run/netns/$H_NAME-$name" sh -c \
		'echo $$ > "$0/cgroup.procs" && exec "$@"' "$H_CG/$name" "$@"
}

# h_bg POD CMD...: the same in the background; the pid is in $H_LAST_PID.
h_bg() {
	h_bg_raw "$@"
	# shellcheck disable=SC2034 # read by the scripts that source this file
	H_LAST_PID=$!
}

# h_www_local: a plain HTTP server on 127.0.0.1 in the host netns (behind shuntd's bound
# listeners), serving $H_DIR/www: "hello" at / and 2 MB of zeros at /blob for slow downloads.
# Sets H_WWW_PORT.
h_www_local() {
	mkdir -p "$H_DIR/www"
	echo hello >"$H_DIR/www/index.html"
	head -c 2097152 /dev/zero >"$H_DIR/www/blob"
	: >"$H_DIR/www.port"
	/usr/bin/python3 -c '
import http.server, os, sys
os.chdir(sys.argv[1])
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
open(sys.argv[2], "w").write("%d\n" % s.server_address[1])
s.serve_forever()' "$H_DIR/www" "$H_DIR/www.port" 2>/dev/null &
	H_PIDS+=("$!")
	h_wait_for 5 test -s "$H_DIR/www.port"
	# shellcheck disable=SC2034 # read by the scripts that source this file
	H_WWW_PORT=$(cat "$H_DIR/www.port")
}

# h_exec_netns POD CMD...: in the pod's netns but outside its cgroup (not enrolled).
h_exec_netns() {
	local name=$1
	shift
	nsenter --net="/run/netns/$H_NAME-$name" "$@"
}

# h_shuntd [FLAGS...]: shuntd for this node, in its own cgroup below the harness's (as a
# DaemonSet pod is below kubepods), logging to $H_DIR/shuntd.log; waits for readiness.
# With H_SHUNTD_OUTSIDE=1 its cgroup is a sibling of the pods' parent instead, so that no
# cgroup program sees shuntd's own sockets.
h_shuntd() {
	local cg=$H_CG/shuntd
	if [ -n "${H_SHUNTD_OUTSIDE:-}" ]; then
		cg=$H_CG-agent
		H_EXTRA_CG=$cg
	fi
	mkdir -p "$cg" "$H_DIR/run"
	# Readiness is read from what this run appends, not from an earlier run's lines.
	local from=1
	[ -f "$H_DIR/shuntd.log" ] && from=$(($(wc -c <"$H_DIR/shuntd.log") + 1))
	sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" \
		${H_SHUNTD_WRAP[@]+"${H_SHUNTD_WRAP[@]}"} "$H_BIN/shuntd" --cgroup "$H_CG" --bpffs-dir "$H_DIR/bpf" --run-dir "$H_DIR/run" \
		--admin-port 0 --access-log "$H_DIR/access.log" "$@" \
		>>"$H_DIR/shuntd.log" 2>&1 &
	H_SHUNTD_PID=$!
	for _ in $(seq 1 100); do
		if ! kill -0 "$H_SHUNTD_PID" 2>/dev/null; then
			cat "$H_DIR/shuntd.log" >&2
			wait "$H_SHUNTD_PID" 2>/dev/null
			H_SHUNTD_PID=
			return 1
		fi
		tail -c "+$from" "$H_DIR/shuntd.log" | grep -q 'shuntd ready' && return 0
		sleep 0.05
	done
	h_die "shuntd did not become ready in 5 s"
}

h_ctl() {
	"$H_BIN/shuntctl" --run-dir "$H_DIR/run" --bpffs-dir "$H_DIR/bpf" "$@"
}

# h_shuntd_stop: SIGTERM and wait; returns shuntd's exit status.
h_shuntd_stop() {
	local pid=$H_SHUNTD_PID rc
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	H_SHUNTD_PID=
	return $rc
}

# h_wait_for TIMEOUT_S CMD...: polls CMD every 50 ms until it succeeds or time runs out.
h_wait_for() {
	local deadline=$(($(date +%s%N) + $1 * 1000000000))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# h_kill_cgroup DIR: kills every process in a harness cgroup (all of them started by us) and
# waits until it is empty. cgroupfs files report size 0, so their contents are read.
h_kill_cgroup() {
	local cg=$1 pid pids
	[ -d "$cg" ] || return 0
	for _ in $(seq 1 40); do
		pids=$(cat "$cg/cgroup.procs" 2>/dev/null)
		[ -n "$pids" ] || return 0
		for pid in $pids; do kill -9 "$pid" 2>/dev/null; done
		sleep 0.05
	done
	echo "harness: processes left in $cg: $(cat "$cg/cgroup.procs")" >&2
	return 1
}

h_cleanup() {
	local rc=$? pid ns p
	trap - EXIT
	# Cleanup must run to the end whatever the caller's shell options: a `wait` on a killed
	# process returns 137, which errexit would turn into an abandoned cleanup.
	set +e
	if [ -n "$H_SHUNTD_PID" ]; then
		kill -TERM "$H_SHUNTD_PID" 2>/dev/null
		for _ in $(seq 1 100); do
			kill -0 "$H_SHUNTD_PID" 2>/dev/null || break
			sleep 0.05
		done
		kill -9 "$H_SHUNTD_PID" 2>/dev/null
		wait "$H_SHUNTD_PID" 2>/dev/null
	fi
	for pid in "${H_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
	for pid in "${H_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	if [ -n "${H_EXTRA_CG:-}" ] && [ -d "$H_EXTRA_CG" ]; then
		h_kill_cgroup "$H_EXTRA_CG"
		rmdir "$H_EXTRA_CG" 2>/dev/null
	fi
	if [ -n "${H_CG:-}" ] && [ -d "$H_CG" ]; then
		for p in "$H_CG"/*/; do
			[ -d "$p" ] || continue
			h_kill_cgroup "$p"
			rmdir "$p" 2>/dev/null
		done
		rmdir "$H_CG" 2>/dev/null || echo "harness: cannot remove $H_CG" >&2
	fi
	for ns in "${H_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	if [ -n "${H_DIR:-}" ]; then
		# A shuntd killed hard may leave its private bpffs mounted.
		grep -q " $H_DIR/bpf " /proc/mounts && umount -l "$H_DIR/bpf"
		if [ -n "${H_KEEP:-}" ]; then
			echo "harness: kept $H_DIR" >&2
		else
			rm -rf "$H_DIR"
		fi
	fi
	exit $rc
}
