#!/usr/bin/env bash
# Runs each libFuzzer target over its seed corpus; with SECONDS > 0, also fuzzes that long.
# usage: tools/fuzz.sh SECONDS FUZZER...
set -euo pipefail
secs=$1
shift
[ $# -gt 0 ] || { echo "1..0 # SKIP no fuzz targets"; exit 0; }
n=0
fail=0
for f in "$@"; do
	name=$(basename "$f" _fuzz)
	corpus=tests/fuzz/corpus/$name
	n=$((n + 1))
	work=$(mktemp -d)
	args=(-rss_limit_mb=2048 -artifact_prefix="$work/")
	if [ "$secs" -gt 0 ]; then
		mkdir -p "$work/corpus"
		args+=(-max_total_time="$secs" "$work/corpus" "$corpus")
	else
		args+=(-runs=0 "$corpus")
	fi
	if "$f" "${args[@]}" >"$work/log" 2>&1; then
		echo "ok $n - $name ($([ "$secs" -gt 0 ] && echo "${secs}s" || echo corpus))"
	else
		fail=1
		echo "not ok $n - $name"
		sed 's/^/# /' "$work/log" | tail -40
		cp -r "$work" "build/fuzz-failure-$name" 2>/dev/null || true
	fi
	rm -rf "$work"
done
echo "1..$n"
exit $fail
