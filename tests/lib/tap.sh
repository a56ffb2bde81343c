# shellcheck shell=bash
# TAP for bash tests: ok/is/like/diag and a plan printed at the end (done_testing).

T_N=0
T_FAILED=0

t_ok() {
	local cond=$1
	shift
	T_N=$((T_N + 1))
	if [ "$cond" -eq 0 ]; then
		echo "ok $T_N - $*"
	else
		T_FAILED=$((T_FAILED + 1))
		echo "not ok $T_N - $*"
		# Report the test file's line, not this helper's.
		local i=1
		while [ "${BASH_SOURCE[$i]:-}" = "${BASH_SOURCE[0]}" ]; do i=$((i + 1)); done
		# Failure diagnostics go to stderr, where prove shows them without -v.
		echo "#   failed at ${BASH_SOURCE[$i]:-?}:${BASH_LINENO[$((i - 1))]}: $*" >&2
	fi
	return "$cond"
}

# ok DESCRIPTION CMD...: passes when CMD succeeds.
ok() {
	local desc=$1
	shift
	"$@" >/dev/null 2>&1
	t_ok $? "$desc"
}

# is GOT WANT DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then
		t_ok 0 "$3"
	else
		t_ok 1 "$3"
		echo "#   got:  '$1'" >&2
		echo "#   want: '$2'" >&2
		return 1
	fi
}

# like GOT REGEX DESCRIPTION
like() {
	if [[ $1 =~ $2 ]]; then
		t_ok 0 "$3"
	else
		t_ok 1 "$3"
		echo "#   got:  '$1'" >&2
		echo "#   want match: /$2/" >&2
		return 1
	fi
}

# cmp_ok GOT OP WANT DESCRIPTION, OP one of -gt -ge -lt -le -eq -ne
cmp_ok() {
	if test "$1" "$2" "$3" 2>/dev/null; then
		t_ok 0 "$4"
	else
		t_ok 1 "$4"
		echo "#   got: '$1', want $2 '$3'" >&2
		return 1
	fi
}

diag() { echo "# $*"; }

done_testing() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
}
