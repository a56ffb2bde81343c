#!/usr/bin/env bash
# shuntctl iptables apply/clean in throwaway network namespaces, nft and legacy: rules land, clean
# removes exactly them, a failing load changes nothing, bad input exits 2, the host is refused.
set -u
cd "$(dirname "$0")/../.." || exit 1

SHUNTCTL=${SHUNTCTL:-build/bin/shuntctl}
ipt() { "$SHUNTCTL" iptables "$@"; }
NAME=shunt-ipt-$$
TMP=$(mktemp -d "/tmp/$NAME.XXXXXX")
NSS=()
PIDS=()
n=0
failed=0

cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 129' HUP INT TERM

ok() { # ok STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}
check() { # check DESCRIPTION COMMAND...: ok when the command succeeds
	local what=$1
	shift
	"$@"
	ok $? "$what"
}
diag() { sed 's/^/# /'; }
bail() {
	echo "Bail out! $*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || {
	echo "1..0 # SKIP needs root (network namespaces, iptables)"
	exit 0
}
[ -x "$SHUNTCTL" ] || bail "$SHUNTCTL missing (make)"
for t in ip iptables-nft-restore iptables-legacy-restore ip6tables-nft-restore ip6tables-legacy-restore; do
	command -v "$t" >/dev/null || bail "$t not installed (make deps)"
done

# A "pod": a fresh netns with a process living in it, whose pid the CLI is given.
make_pod() { # make_pod NS -> sets POD_PID
	ip netns add "$1" || bail "cannot create netns $1"
	NSS+=("$1")
	ip netns exec "$1" sleep 600 &
	POD_PID=$!
	PIDS+=("$POD_PID")
	for _ in $(seq 100); do
		[ "$(readlink "/proc/$POD_PID/ns/net")" != "$(readlink /proc/$$/ns/net)" ] && return 0
		sleep 0.05
	done
	bail "pod process $POD_PID never entered $1"
}

# Everything a test can observe in a family's tables: rules and non-built-in chains, by table,
# without counters or comments. Empty built-in chains do not count: the legacy back-end keeps a
# table once loaded and nft drops it once empty, and neither is a rule.
state() { # state NS SAVE-TOOL
	ip netns exec "$1" "$2" 2>/dev/null | sed 's/ \[[0-9]*:[0-9]*\]$//' |
		awk '/^\*/ { t = $0 } /^-|^:[^ ]+ (-|DROP)/ { print t, $0 }'
}
rules() { state "$@" | grep -c ' -A '; }

HOST_TABLES=$(cat /proc/net/ip_tables_names /proc/net/ip6_tables_names 2>/dev/null)

# The real binaries, for the fault-injecting wrappers below.
wrap_failing() { # wrap_failing TOOL: a TOOL in $TMP/wrap-TOOL/ whose --noflush loads fail
	local real dir=$TMP/wrap-$1
	real=$(command -v "$1")
	mkdir -p "$dir"
	# The apply's input gets a table that cannot load appended, after the real tables have
	# committed; the rollback (no --noflush) passes through untouched.
	cat >"$dir/$1" <<EOF
#!/usr/bin/env bash
case " \$* " in
*" --noflush "*) { cat; printf '*raw\n-A OUTPUT -j SHUNT_NO_SUCH_CHAIN\nCOMMIT\n'; } | "$real" "\$@" ;;
*) exec "$real" "\$@" ;;
esac
EOF
	chmod +x "$dir/$1"
	echo "$dir"
}

for be in nft legacy; do
	ns=$NAME-$be
	make_pod "$ns"
	pid=$POD_PID
	save4=iptables-$be-save
	save6=ip6tables-$be-save

	# Rules that are not shunt's, in every table apply touches, in both families.
	ip netns exec "$ns" "iptables-$be" -t nat -A POSTROUTING -p udp --dport 9 -j RETURN
	ip netns exec "$ns" "iptables-$be" -t mangle -A OUTPUT -p tcp --dport 9 -j RETURN
	ip netns exec "$ns" "iptables-$be" -t raw -A OUTPUT -p udp --dport 9 -j NOTRACK
	ip netns exec "$ns" "iptables-$be" -t filter -A INPUT -p tcp --dport 9 -j ACCEPT
	ip netns exec "$ns" "ip6tables-$be" -t nat -A POSTROUTING -p udp --dport 9 -j RETURN
	before4=$(state "$ns" "$save4")
	before6=$(state "$ns" "$save6")
	[ "$(echo "$before4" | grep -c ' -A ')" -eq 4 ] || bail "$be: pre-existing rules not in place"

	# --- the default sidecar, both families ---------------------------------------------
	want4=$(ipt render --sidecar | grep -c '^-[AI] ')
	want6=$(ipt render --sidecar --ipv6 | grep -c '^-[AI] ')
	want6=$((want6 - want4))
	ipt apply --pid "$pid" --backend "$be" --sidecar --ipv6 >/dev/null 2>"$TMP/err"
	ok $? "$be: apply --sidecar --ipv6 exits 0"
	diag <"$TMP/err"
	check "$be: IPv4 has every rendered rule" [ "$(rules "$ns" "$save4")" -eq $((4 + want4)) ]
	check "$be: IPv6 has every rendered rule" [ "$(rules "$ns" "$save6")" -eq $((1 + want6)) ]
	check "$be: OUTPUT jumps to ISTIO_OUTPUT, PREROUTING to ISTIO_INBOUND" \
		grep -q -- '-A OUTPUT -j ISTIO_OUTPUT' <(state "$ns" "$save4")
	check "$be: the 127.0.0.6 passthrough and the uid 1337 exemption are there" \
		grep -q -- '-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN' <(state "$ns" "$save4")
	check "$be: ::6 passthrough in IPv6" \
		grep -q -- '-A ISTIO_OUTPUT -s ::6/128 -o lo -j RETURN' <(state "$ns" "$save6")
	check "$be: the rules that were there before are untouched" \
		diff <(echo "$before4") <(state "$ns" "$save4" | grep -v ISTIO)

	applied4=$(state "$ns" "$save4")
	ipt apply --pid "$pid" --backend "$be" --sidecar 2>"$TMP/err"
	ok $(($? != 1)) "$be: a second apply fails with exit 1"
	check "$be: ... saying to run clean first" grep -q 'already present.*run clean first' "$TMP/err"
	check "$be: ... and changes nothing" diff <(echo "$applied4") <(state "$ns" "$save4")

	ipt clean --pid "$pid" --backend "$be" --sidecar --ipv6 2>"$TMP/err"
	ok $? "$be: clean exits 0"
	diag <"$TMP/err"
	check "$be: IPv4 back to exactly the rules from before" \
		diff <(echo "$before4") <(state "$ns" "$save4")
	check "$be: IPv6 back to exactly the rules from before" \
		diff <(echo "$before6") <(state "$ns" "$save6")
	ipt clean --pid "$pid" --backend "$be" --sidecar --ipv6 2>"$TMP/err"
	ok $? "$be: clean with nothing left to clean exits 0"
	check "$be: ... and changes nothing" diff <(echo "$before4") <(state "$ns" "$save4")

	# --- every table and every kind of built-in-chain rule: TPROXY, DNS, NIC excludes ----
	full4=(--sidecar -m TPROXY --redirect-dns --capture-all-dns -c eth9 -k veth7
		--drop-invalid --shunt-mark-exempt --istio-outbound-owner-groups-exclude 888)
	full=("${full4[@]}" --ipv6)
	want4=$(ipt render "${full4[@]}" | grep -c '^-[AI] ')
	ipt apply --pid "$pid" --backend "$be" "${full[@]}" 2>"$TMP/err"
	ok $? "$be: apply TPROXY + DNS + excluded NIC + kube-virt + drop-invalid exits 0"
	diag <"$TMP/err"
	check "$be: ... mangle, nat and raw rules all loaded" \
		[ "$(state "$ns" "$save4" | grep -c -E '^\*(mangle|nat|raw) -A')" -eq $((3 + want4)) ]
	check "$be: ... shunt's mark exemption among them" \
		grep -q -- '-A ISTIO_OUTPUT -m mark --mark 0x534e -j RETURN' <(state "$ns" "$save4")
	ipt clean --pid "$pid" --backend "$be" "${full[@]}" 2>"$TMP/err"
	ok $? "$be: clean exits 0"
	diag <"$TMP/err"
	check "$be: IPv4 back to before (RETURN and MARK rules in built-in chains too)" \
		diff <(echo "$before4") <(state "$ns" "$save4")
	check "$be: IPv6 back to before" diff <(echo "$before6") <(state "$ns" "$save6")

	# --- all or nothing --------------------------------------------------------------------
	# A real rule that cannot load: a group name that does not exist. With TPROXY the mangle
	# table commits before nat fails; apply must put mangle back.
	getent group shunt-no-such-group >/dev/null && bail "group shunt-no-such-group exists"
	ipt apply --pid "$pid" --backend "$be" --sidecar -m TPROXY \
		--istio-outbound-owner-groups shunt-no-such-group 2>"$TMP/err"
	ok $(($? != 1)) "$be: apply with a rule iptables rejects exits 1"
	check "$be: ... names the bad value and says nothing changed" \
		grep -q 'shunt-no-such-group.*nothing changed' "$TMP/err"
	diag <"$TMP/err"
	check "$be: ... mangle, committed first, was rolled back: IPv4 as before" \
		diff <(echo "$before4") <(state "$ns" "$save4")

	# The IPv4 restore fails after its nat table committed (injected by a wrapper).
	wrap=$(wrap_failing "iptables-$be-restore")
	PATH=$wrap:$PATH ipt apply --pid "$pid" --backend "$be" --sidecar --ipv6 2>"$TMP/err"
	ok $(($? != 1)) "$be: IPv4 load failing after nat committed: exit 1"
	diag <"$TMP/err"
	check "$be: ... IPv4 as before" diff <(echo "$before4") <(state "$ns" "$save4")
	check "$be: ... IPv6 never loaded" diff <(echo "$before6") <(state "$ns" "$save6")

	# The IPv6 load fails after the whole IPv4 block committed.
	wrap=$(wrap_failing "ip6tables-$be-restore")
	PATH=$wrap:$PATH ipt apply --pid "$pid" --backend "$be" --sidecar --ipv6 2>"$TMP/err"
	ok $(($? != 1)) "$be: IPv6 load failing after IPv4 committed: exit 1"
	check "$be: ... saying nothing changed" grep -q 'nothing changed' "$TMP/err"
	diag <"$TMP/err"
	check "$be: ... IPv4 rolled back to before" diff <(echo "$before4") <(state "$ns" "$save4")
	check "$be: ... IPv6 as before" diff <(echo "$before6") <(state "$ns" "$save6")

	# --- bad input: exit 2, the setting named, nothing applied -----------------------------
	while IFS='|' read -r flag value bad; do
		ipt apply --pid "$pid" --backend "$be" --sidecar "$flag" "$value" 2>"$TMP/err"
		ok $(($? != 2)) "$be: apply $flag $value: exit 2"
		check "$be: ... first line names $flag and \"$bad\"" \
			grep -q -- "^shuntctl iptables: $flag: \"$bad\"" <(head -n 1 "$TMP/err")
		check "$be: ... usage printed" grep -q '^usage: ' "$TMP/err"
		check "$be: ... nothing applied" diff <(echo "$before4") <(state "$ns" "$save4")
	done <<'EOF'
--istio-service-cidr|10.0.0/8|10.0.0/8
--istio-service-exclude-cidr|10.0.0.0/8,10.0.0.0/33|10.0.0.0/33
--envoy-port|70000|70000
--istio-local-exclude-ports|15020,99999|99999
--istio-inbound-interception-mode|TPROXYY|TPROXYY
EOF
	ipt apply --pid "$pid" --backend "$be" --no-such-flag 2>"$TMP/err"
	ok $(($? != 2)) "$be: unknown flag: exit 2"
	ipt apply --backend "$be" --sidecar 2>"$TMP/err"
	ok $(($? != 2)) "$be: apply without --pid: exit 2"
	check "$be: ... nothing applied" diff <(echo "$before4") <(state "$ns" "$save4")
done

# The default back-end (Debian: nft) in the nft pod, start to end.
ns=$NAME-nft
pid=${PIDS[0]}
before4=$(state "$ns" iptables-nft-save)
ipt apply --pid "$pid" --sidecar 2>"$TMP/err"
ok $? "default back-end: apply exits 0"
check "default back-end: the rules are where iptables-save shows them" \
	grep -q ISTIO_OUTPUT <(ip netns exec "$ns" iptables-save 2>/dev/null)
ipt clean --pid "$pid" --sidecar 2>"$TMP/err"
ok $? "default back-end: clean exits 0"
check "default back-end: back to before" diff <(echo "$before4") <(state "$ns" iptables-nft-save)

ipt apply --pid "$pid" --backend nftables 2>"$TMP/err"
ok $(($? != 2)) "unknown back-end: exit 2"

# The host's tables are never touched: its own netns and init's are refused outright.
ipt apply --pid $$ --sidecar 2>"$TMP/err"
ok $(($? != 1)) "apply in the host's netns (our own pid): exit 1"
check "... refused as the host's" grep -q "refusing to change the host's network namespace" "$TMP/err"
ipt clean --pid 1 2>"$TMP/err"
ok $(($? != 1)) "clean in init's netns: exit 1"
# In a container, init's netns may not even be openable; either way it is left alone.
check "... refused as the host's, or not reachable" \
	grep -q -E "refusing to change the host's network namespace|cannot open /proc/1/ns/net" "$TMP/err"
ipt apply --pid 4194305 --sidecar 2>"$TMP/err"
ok $(($? != 1)) "apply for a pid that does not exist: exit 1"
check "no legacy table was ever loaded in the host netns by these tests" \
	[ "$HOST_TABLES" = "$(cat /proc/net/ip_tables_names /proc/net/ip6_tables_names 2>/dev/null)" ]

echo "1..$n"
[ "$failed" -eq 0 ]
