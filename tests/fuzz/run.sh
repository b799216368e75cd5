#!/bin/sh
# tests/fuzz/run.sh SECONDS - build the libFuzzer targets with clang in
# build-fuzz/ and run each for SECONDS (default 20) from its seed corpus.
# Fails on any crash, leak or sanitizer report; exits 77 without clang.
set -eu
secs=${1:-20}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${CAIRN_FUZZ_BUILD:-$root/build-fuzz}
targets="fuzz_sigv4 fuzz_s3_request fuzz_s3_xml fuzz_aws_chunked fuzz_nbd fuzz_qcow2 fuzz_glance"

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang not found, skipping" >&2
	exit 77
fi
mkdir -p "$build"
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCAIRN_FUZZ=ON \
	-DCAIRN_SANITIZE=ON >"$build/fuzz-cmake.log" 2>&1 || {
	cat "$build/fuzz-cmake.log" >&2
	exit 1
}
# shellcheck disable=SC2086
cmake --build "$build" --target $targets -j2 >"$build/fuzz-build.log" 2>&1 || {
	tail -50 "$build/fuzz-build.log" >&2
	exit 1
}
mkdir -p "$build/artifacts"
status=0
for t in $targets; do
	# New inputs go to a scratch corpus; the committed seeds stay untouched.
	work=$(mktemp -d)
	echo "fuzz: $t for ${secs}s"
	if ! "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len=8192 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
		"$work" "$root/tests/fuzz/corpus/$t" >"$build/$t.log" 2>&1; then
		echo "fuzz: $t FAILED (log: $build/$t.log, artifacts in $build/artifacts)" >&2
		tail -40 "$build/$t.log" >&2
		status=1
	else
		grep -E "stat::number_of_executed_units|Done" "$build/$t.log" | tr '\n' ' '
		echo
	fi
	rm -rf "$work"
done
exit $status
