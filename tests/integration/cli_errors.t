#!/usr/bin/env bash
# Issue 3, item 7: bad flags print usage and exit 2; missing privileges or kernel features and a
# --cgroup that is not cgroup2 give one clear line and exit 1; nothing is left behind.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
. tests/lib/pods.sh

h_init
mkdir -p "$H_DIR/run"
SHUNTD=$H_BIN/shuntd
args=(--cgroup "$H_CG" --bpffs-dir "$H_DIR/bpf" --run-dir "$H_DIR/run" --admin-port 0)

# run_shuntd NAME CMD...: runs, captures exit status and stderr.
run() {
	"$@" >"$H_DIR/out" 2>"$H_DIR/err" </dev/null
	rc=$?
	err=$(cat "$H_DIR/err")
	nlines=$(grep -c . "$H_DIR/err")
}

run "$SHUNTD" --no-such-flag
is "$rc" "2" "unknown flag: exit 2"
like "$err" "unknown or incomplete option --no-such-flag" "unknown flag: names the flag"
like "$err" "usage: shuntd" "unknown flag: prints usage"

run "$SHUNTD" --workers 0
is "$rc" "2" "--workers 0: exit 2"
like "$err" '^shuntd: --workers: "0" is not a number in 1\.\.64' "--workers 0: says why"
run "$SHUNTD" --service-node ""
is "$rc" "2" "--service-node '': exit 2"
like "$err" "^shuntd: --service-node: must not be empty" "--service-node '': says why"
run "$SHUNTD" --service-cluster "a b"
like "$err" "^shuntd: --service-cluster: must be printable ASCII without spaces" \
	"--service-cluster with a space: says why"
run "$SHUNTD" "${args[@]}" --service-zone z1
is "$rc" "2" "--service-zone without --config: exit 2"
like "$err" "^shuntd: --service-zone: needs --config" "and says what it needs"
run "$SHUNTD" --mode bpf
is "$rc" "2" "--mode bpf: exit 2"
like "$err" "^shuntd: --mode: must be auto, ebpf or iptables" "--mode: lists the choices"
run "$SHUNTD" --log-level loud
is "$rc" "2" "--log-level loud: exit 2"
run "$SHUNTD" --exclude-inbound-ports 80,70000
is "$rc" "2" "a port out of range: exit 2"
like "$err" '"70000" is not a number in 1\.\.65535' "a port out of range: says which"
run "$SHUNTD" --drain-time-s 0
is "$rc" "2" "--drain-time-s 0: exit 2"
like "$err" '^shuntd: --drain-time-s: "0" is not a number in 1\.\.86400' "--drain-time-s 0: says why"
run "$SHUNTD" --drain-time-s 45s
like "$err" '^shuntd: --drain-time-s: "45s" is not a number' "--drain-time-s with a unit: says why"
run "$SHUNTD" extra-argument
is "$rc" "2" "a stray argument: exit 2"

run setpriv --reuid=65534 --regid=65534 --clear-groups "$SHUNTD" "${args[@]}"
is "$rc" "1" "without privileges: exit 1"
like "$err" "^shuntd: missing privileges: CAP_BPF \(or CAP_SYS_ADMIN\), CAP_NET_ADMIN, CAP_SYS_ADMIN" \
	"without privileges: names the capabilities"
is "$nlines" "1" "without privileges: one line"

SHUNT_PROBE_HIDE=prog_sk_lookup,helper_sk_assign run "$SHUNTD" --mode ebpf "${args[@]}"
is "$rc" "1" "--mode ebpf, kernel without sk_lookup: exit 1"
like "$err" "^shuntd: --mode ebpf: the kernel lacks what inbound capture needs: program type sk_lookup \(hidden by SHUNT_PROBE_HIDE\), helper bpf_sk_assign in sk_lookup" \
	"kernel without sk_lookup: names what is missing"
is "$nlines" "1" "kernel without sk_lookup: one line"

run "$SHUNTD" --istio-service-cidr 10.0.0/8 "${args[@]}"
is "$rc" "2" "a bad Istio capture setting: exit 2"
like "$err" '^shuntd: --istio-service-cidr: "10.0.0/8" is not a CIDR' "and names the setting"
run "$SHUNTD" --istio-inbound-interception-mode NAT "${args[@]}"
is "$rc" "2" "an unknown interception mode: exit 2"
like "$err" '^shuntd: --istio-inbound-interception-mode: ' "and names the setting"

run "$SHUNTD" --cgroup "$H_DIR" --bpffs-dir "$H_DIR/bpf" --run-dir "$H_DIR/run" --admin-port 0
is "$rc" "1" "--cgroup on tmpfs: exit 1"
like "$err" "^shuntd: --cgroup $H_DIR: not a cgroup2 directory \(cgroup2 is mounted at " \
	"--cgroup on tmpfs: says it is not cgroup2 and where cgroup2 is"
is "$nlines" "1" "--cgroup on tmpfs: one line"
run "$SHUNTD" --cgroup "$H_CG/missing" --bpffs-dir "$H_DIR/bpf" --run-dir "$H_DIR/run"
is "$rc" "1" "a --cgroup that does not exist: exit 1"
like "$err" "^shuntd: --cgroup $H_CG/missing: No such file or directory" "and says so"

# Twice on one run dir: the second is refused and the first keeps running.
h_shuntd || { echo "Bail out! shuntd did not start"; exit 1; }
run "$SHUNTD" "${args[@]}"
is "$rc" "1" "a second shuntd on the same --run-dir: exit 1"
like "$err" "^shuntd: another shuntd \(pid $H_SHUNTD_PID\) is already running with --run-dir " \
	"and names the one that runs"
ok "the first one still answers" h_ctl status
h_shuntd_stop

run "$H_BIN/shuntctl" frobnicate
is "$rc" "2" "shuntctl: unknown command, exit 2"
run "$H_BIN/shuntctl" enroll
is "$rc" "2" "shuntctl enroll without --pid: exit 2"
run "$H_BIN/shuntctl" enroll --pid abc
is "$rc" "2" "shuntctl enroll --pid abc: exit 2"
run "$H_BIN/shuntctl" -o yaml status
is "$rc" "2" "shuntctl -o yaml: exit 2"
run "$H_BIN/shuntctl" --bpffs-dir "$H_DIR/nothing" workloads
is "$rc" "1" "shuntctl workloads with no pins: exit 1"
like "$err" "^shuntctl: cannot open pinned map mesh_netns under $H_DIR/nothing/maps" \
	"and says which map and where"
run "$H_BIN/shuntctl" --run-dir "$H_DIR/nothing" enroll --pid $$
is "$rc" "1" "shuntctl enroll with no shuntd: exit 1"
like "$err" "^shuntctl: shuntd is not answering on $H_DIR/nothing/admin.sock" "and says so"
ok "nothing was left in the run dir" sh -c "[ -z \"\$(ls -A '$H_DIR/run')\" ]"
done_testing
