#!/usr/bin/env bash
# scripts/run-tests.sh - the body of `make test` (and so of .ci/run).
#
# Builds build/ (normal, -Werror) and build-asan/ (ASan+UBSan), runs ctest in
# both, then `make lint` and a short fuzz run (tests/fuzz/run.sh, when
# present), and ends with
# exactly one summary line "N passed, N failed" summed over every run. A build
# failure counts as one failed test and skips that tree's ctest run. Exits 0
# only when nothing failed.
#
# Time budget (2 cores, 20 minutes for the whole run): per-test TIMEOUTs are
# set by label in tests/CMakeLists.txt / tests/integration/CMakeLists.txt
# (quick 60 s, s3 300 s, cluster 600 s, slow 300 s); CTEST_TIMEOUT below is a
# fallback for a test registered without one.
set -uo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
CTEST_JOBS=${CTEST_JOBS:-$JOBS}
CTEST_TIMEOUT=${CTEST_TIMEOUT:-600}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

passed=0
failed=0
skipped=0
start=$(date +%s)

# ctest_counts FILE: adds the numbers of ctest's "N% tests passed, F tests
# failed out of T" line to the totals. ctest counts a skipped test (exit 77)
# as passed; here it is counted as skipped, so the summary line shows it.
ctest_counts() {
	local line total fail
	line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -n1)
	if [ -z "$line" ]; then
		if grep -q 'No tests were found' "$1"; then
			return 0
		fi
		echo "run-tests: ctest printed no summary" >&2
		failed=$((failed + 1))
		return 0
	fi
	fail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
	total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
	local skip
	skip=$(grep -cE '\(Skipped\)$' "$1" || true)
	passed=$((passed + total - fail - skip))
	failed=$((failed + fail))
	skipped=$((skipped + skip))
}

# one_tree DIR CMAKE_ARGS... : configure, build, ctest.
one_tree() {
	local dir=$1
	shift
	echo "=== $dir: configure and build"
	if ! cmake -S . -B "$dir" "$@" || ! cmake --build "$dir" -j"$JOBS"; then
		echo "run-tests: build of $dir FAILED"
		failed=$((failed + 1))
		return 0
	fi
	echo "=== $dir: ctest"
	local log="$dir/ctest-summary.log"
	(cd "$dir" && ctest --output-on-failure -j"$CTEST_JOBS" --timeout "$CTEST_TIMEOUT") 2>&1 |
		tee "$log"
	ctest_counts "$log"
}

one_tree build -DCMAKE_BUILD_TYPE="$BUILD_TYPE"

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	one_tree build-asan -DCMAKE_BUILD_TYPE=Debug -DCAIRN_SANITIZE=ON

echo "=== lint: make lint (clang-format, .clang-format)"
if make --no-print-directory lint; then
	passed=$((passed + 1))
else
	echo "run-tests: lint FAILED (run clang-format -i on the files above)"
	failed=$((failed + 1))
fi

if [ -x tests/fuzz/run.sh ]; then
	echo "=== fuzz: tests/fuzz/run.sh $FUZZ_SECONDS"
	if tests/fuzz/run.sh "$FUZZ_SECONDS"; then
		passed=$((passed + 1))
	else
		echo "run-tests: fuzz run FAILED"
		failed=$((failed + 1))
	fi
elif [ -e tests/fuzz/run.sh ]; then
	echo "=== fuzz: bash tests/fuzz/run.sh $FUZZ_SECONDS"
	if bash tests/fuzz/run.sh "$FUZZ_SECONDS"; then
		passed=$((passed + 1))
	else
		echo "run-tests: fuzz run FAILED"
		failed=$((failed + 1))
	fi
fi

echo "=== total time $(($(date +%s) - start)) s"
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
