# tests/integration/lib.sh - shared helper of the shell integration tests.
#
# Source it first thing:   . "$(dirname "$0")/lib.sh"
# It builds nothing: it runs the cairn binary named by $CAIRN_BIN (set by
# ctest; falls back to build/node/cairn). It gives each test a scratch dir
# ($T), starts `cairn serve` on free loopback ports with a tmp data dir,
# waits for "cairn ready", exports AWS credentials for the root user, and on
# exit stops the server (SIGTERM; under ASan that is also the leak check),
# fails the test if the server crashed or a sanitizer spoke, and prints the
# server log's tail when the test failed.
#
#   requires TOOL...          exit 77 (ctest: skipped) when a tool is missing
#   cairn_start [ARGS...]     start a server (extra `cairn serve` flags)
#   cairn_stop                graceful stop; fails the test on crash/leak
#   cairn_kill9               kill -9, no checks
#   cairn_cli ARGS...         run the cairn CLI against this server's admin API
#   aws_ ARGS...              /usr/bin/aws with the endpoint of this server
#   check DESC CMD...         run CMD; on failure record "FAIL: DESC" and go on
#   expect_eq DESC GOT WANT   / expect_contains DESC HAYSTACK NEEDLE
#   fail MSG                  record a failure
#   finish                    exit 1 if anything failed, else 0
#
#   requires_nbd_server       exit 77 when this cairn has no NBD front end
#   vol_attach VOL [HOST]     `cairn volume attach --json`; sets ATTACH_URL,
#                             ATTACH_EXPORT, ATTACH_TOKEN (returns 1 on failure)
#
# Variables after cairn_start: S3_PORT API_PORT ENDPOINT API_ENDPOINT DATA
# CAIRN_PID CAIRN_LOG, and NBD_PORT (from the ready line's "NBD nbd://H:P";
# the server listens on a free port when it has an NBD front end).
set -uo pipefail
unset PYTHONHOME PYTHONPATH PYENV_VERSION
# the machine may point AWS SDKs (and rclone) at a CA bundle; the endpoint is
# plain HTTP and rclone refuses the setting outright
unset AWS_CA_BUNDLE

: "${CAIRN_TEST_NAME:=$(basename "$0" | sed 's/\.[a-z]*$//')}"
: "${CAIRN_TEST_DIR:=/tmp}"
if [ -z "${CAIRN_BIN:-}" ]; then
	_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	CAIRN_BIN="$_root/build/node/cairn"
fi
mkdir -p "$CAIRN_TEST_DIR"
T=$(mktemp -d "$CAIRN_TEST_DIR/$CAIRN_TEST_NAME.XXXXXX")
export T

FAILS=0
CAIRN_PID=
CAIRN_LOG=
CAIRN_LOGS=()
PY=/usr/bin/python3
AWS_BIN=/usr/bin/aws

# Root credentials handed to `cairn serve` and used by every client.
export CAIRN_ROOT_USER=CAIRNTESTROOTKEY0001
export CAIRN_ROOT_PASSWORD=cairnTestRootSecret0123456789abcdefGHIJK
export AWS_ACCESS_KEY_ID=$CAIRN_ROOT_USER
export AWS_SECRET_ACCESS_KEY=$CAIRN_ROOT_PASSWORD
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
export AWS_CONFIG_FILE=$T/aws-config
export AWS_SHARED_CREDENTIALS_FILE=$T/aws-credentials
export AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER=
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"

log() { echo "[$CAIRN_TEST_NAME] $*"; }

fail() {
	FAILS=$((FAILS + 1))
	echo "FAIL: $*"
}

# check DESC CMD... : runs CMD with its output captured; a non-zero exit is
# a recorded failure (the output is shown), and the test goes on.
check() {
	local desc=$1
	shift
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then
		fail "$desc (exit $rc): $*"
		printf '%s\n' "$out" | tail -n 20 | sed 's/^/    | /'
		return 1
	fi
	echo "ok: $desc"
	return 0
}

# check_fails DESC CMD... : CMD must fail; its output is left in $OUT.
check_fails() {
	local desc=$1
	shift
	OUT=$("$@" 2>&1)
	if [ $? -eq 0 ]; then
		fail "$desc: expected failure, command succeeded: $*"
		printf '%s\n' "$OUT" | tail -n 10 | sed 's/^/    | /'
		return 1
	fi
	return 0
}

expect_eq() {
	if [ "$2" == "$3" ]; then
		echo "ok: $1"
	else
		fail "$1: got '$2', want '$3'"
	fi
}

expect_contains() {
	if [[ "$2" == *"$3"* ]]; then
		echo "ok: $1"
	else
		fail "$1: output does not contain '$3'; got:"
		printf '%s\n' "$2" | tail -n 10 | sed 's/^/    | /'
	fi
}

requires() {
	local t
	for t in "$@"; do
		if ! command -v "$t" >/dev/null 2>&1; then
			echo "SKIP: $CAIRN_TEST_NAME requires $t"
			exit 77
		fi
	done
}

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# _sanitizer_check LOG: fails the test when ASan/UBSan/LSan wrote to LOG.
_sanitizer_check() {
	if [ -f "$1" ] && grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer' "$1"; then
		fail "sanitizer report in $1:"
		grep -E -A30 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$1" | head -n 60 | sed 's/^/    | /'
	fi
}

# cairn_start [ARGS...]: starts `cairn serve` on two free ports over $DATA
# (default $T/data; kept across restarts) and waits for "cairn ready".
cairn_start() {
	: "${DATA:=$T/data}"
	local attempt n
	for attempt in 1 2 3; do
		S3_PORT=$(free_port)
		API_PORT=$(free_port)
		CAIRN_LOG=$T/cairn.$((${#CAIRN_LOGS[@]} + 1)).log
		CAIRN_LOGS+=("$CAIRN_LOG")
		# NBD on any free port (the ready line names it): tests run side by side.
		local nbdargs=()
		_serve_has_nbd && nbdargs=(--nbd-listen 127.0.0.1:0)
		# The Glance port too (default 9292 would collide), unless the test picks one.
		if [[ "$*" != *--registry-listen* ]] && [[ "$("$CAIRN_BIN" serve --help 2>&1)" == *--registry-listen* ]]; then
			nbdargs+=(--registry-listen 127.0.0.1:0)
		fi
		"$CAIRN_BIN" serve --data "$DATA" \
			--s3-listen "127.0.0.1:$S3_PORT" --api-listen "127.0.0.1:$API_PORT" \
			"${nbdargs[@]}" "$@" >"$CAIRN_LOG" 2>&1 &
		CAIRN_PID=$!
		# up to 120 s: the ASan build on a busy 2-core machine starts slowly
		for ((n = 0; n < 1200; n++)); do
			if grep -q 'cairn ready' "$CAIRN_LOG" 2>/dev/null; then
				ENDPOINT=http://127.0.0.1:$S3_PORT
				API_ENDPOINT=http://127.0.0.1:$API_PORT
				NBD_PORT=$(grep -m1 -oE 'NBD nbd://[^ ,]+:[0-9]+' "$CAIRN_LOG" | sed 's/.*://')
				export S3_PORT API_PORT ENDPOINT API_ENDPOINT DATA NBD_PORT
				log "cairn up (pid $CAIRN_PID, s3 $S3_PORT, api $API_PORT)"
				return 0
			fi
			if ! kill -0 "$CAIRN_PID" 2>/dev/null; then
				break
			fi
			sleep 0.1
		done
		if kill -0 "$CAIRN_PID" 2>/dev/null; then
			kill -9 "$CAIRN_PID" 2>/dev/null
			wait "$CAIRN_PID" 2>/dev/null
			CAIRN_PID=
			fail "cairn did not print 'cairn ready' within 120 s"
			sed 's/^/    | /' "$CAIRN_LOG" | tail -n 30
			return 1
		fi
		wait "$CAIRN_PID" 2>/dev/null
		local rc=$?
		CAIRN_PID=
		if grep -qiE 'address already in use|EADDRINUSE' "$CAIRN_LOG"; then
			log "port taken, retrying"
			continue
		fi
		fail "cairn serve exited with $rc before it was ready"
		sed 's/^/    | /' "$CAIRN_LOG" | tail -n 30
		return 1
	done
	fail "cairn serve: no free ports after 3 attempts"
	return 1
}

# cairn_stop: SIGTERM and wait (60 s); a non-zero exit or a sanitizer report
# is a failure of the test.
cairn_stop() {
	[ -n "$CAIRN_PID" ] || return 0
	local pid=$CAIRN_PID n rc
	CAIRN_PID=
	kill -TERM "$pid" 2>/dev/null
	for ((n = 0; n < 600; n++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		fail "cairn (pid $pid) did not exit within 60 s of SIGTERM"
		kill -9 "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	rc=$?
	if [ $rc -ne 0 ]; then
		fail "cairn exited with status $rc after SIGTERM"
		tail -n 30 "$CAIRN_LOG" | sed 's/^/    | /'
	fi
	_sanitizer_check "$CAIRN_LOG"
	return 0
}

cairn_kill9() {
	[ -n "$CAIRN_PID" ] || return 0
	kill -9 "$CAIRN_PID" 2>/dev/null
	wait "$CAIRN_PID" 2>/dev/null
	CAIRN_PID=
	_sanitizer_check "$CAIRN_LOG"
}

# cairn_cli ARGS...: the CLI (users, keys) against this node's admin API.
cairn_cli() {
	"$CAIRN_BIN" "$@" --endpoint "$API_ENDPOINT" --data "$DATA"
}

# _serve_has_nbd: this cairn's `serve` knows --nbd-listen (issue 6 on).
_serve_has_nbd() {
	if [ -z "${_SERVE_HAS_NBD:-}" ]; then
		local help
		help=$("$CAIRN_BIN" serve --help 2>&1)
		if [[ "$help" == *--nbd-listen* ]]; then
			_SERVE_HAS_NBD=1
		else
			_SERVE_HAS_NBD=0
		fi
	fi
	[ "$_SERVE_HAS_NBD" = 1 ]
}

requires_nbd_server() {
	if ! _serve_has_nbd; then
		echo "SKIP: $CAIRN_TEST_NAME: this cairn has no --nbd-listen (no NBD server)"
		exit 77
	fi
}

# vol_attach VOL [HOST]: attaches VOL (host default "testhost") with the CLI's
# --json; sets ATTACH_URL, ATTACH_EXPORT, ATTACH_TOKEN.
vol_attach() {
	local out
	ATTACH_URL= ATTACH_EXPORT= ATTACH_TOKEN=
	if ! out=$(cairn_cli volume attach "$1" --host "${2:-testhost}" --json 2>&1); then
		fail "cairn volume attach $1 --host ${2:-testhost}: $out"
		return 1
	fi
	ATTACH_URL=$(jq -r '.url // empty' <<<"$out" 2>/dev/null)
	ATTACH_EXPORT=$(jq -r '.export // empty' <<<"$out" 2>/dev/null)
	ATTACH_TOKEN=$(jq -r '.token // empty' <<<"$out" 2>/dev/null)
	if [ -z "$ATTACH_URL" ] || [ -z "$ATTACH_EXPORT" ]; then
		fail "cairn volume attach $1 --json printed no url/export: $out"
		return 1
	fi
	return 0
}

aws_() {
	"$AWS_BIN" --endpoint-url "$ENDPOINT" "$@"
}

# rand_file PATH BYTES: random content.
rand_file() {
	head -c "$2" /dev/urandom >"$1"
}

finish() {
	cairn_stop
	if [ "$FAILS" -gt 0 ]; then
		echo "$CAIRN_TEST_NAME: $FAILS failure(s)"
		exit 1
	fi
	echo "$CAIRN_TEST_NAME: all checks passed"
	exit 0
}

_cleanup() {
	local rc=$?
	if [ -n "$CAIRN_PID" ]; then
		cairn_stop
		[ "$FAILS" -gt 0 ] && [ $rc -eq 0 ] && rc=1
	fi
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		local l
		for l in "${CAIRN_LOGS[@]}"; do
			echo "---- tail of $l"
			tail -n 40 "$l" | sed 's/^/    | /'
		done
		# keep the logs for a look, drop the bulky data
		rm -rf "$T/data" "$T/files"
		echo "scratch dir kept: $T"
	else
		rm -rf "$T"
	fi
	exit $rc
}
trap _cleanup EXIT
trap 'exit 130' INT TERM
