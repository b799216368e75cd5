#!/bin/bash
# bench/run.sh - one benchmark run of issue 2: cairn side by side with OpenStack Swift (s3api)
# and nginx (the load generator's ceiling), plus the per-byte CPU kernels.
#
#   bash bench/run.sh            # from the repository root; ~4-6 minutes on 2 cores
#
# Steps: build bench/out/{loadgen,kernels} (bench/Makefile); run the kernels on an idle
# machine; then one target at a time (start it, load it, stop it, delete its data):
#   nginx  1 GiB GET (x BENCH_BIG_GETS), 4 KiB GETs at BENCH_CONC connections for BENCH_SECS,
#          and the same 1 GiB and 4 KiB PUTs into a WebDAV sink on tmpfs (upload ceiling)
#   Swift  (bench/swift/setup.sh) and cairn (build/node/cairn serve), identically:
#          1 GiB PUT (UNSIGNED-PAYLOAD), 1 GiB GET x BENCH_BIG_GETS, 1 GiB PUT with a signed
#          payload, 4 KiB PUTs for BENCH_SECS, 4 KiB GETs for BENCH_SECS over the first
#          BENCH_GET_KEYS keys written; and (issue 4) the same 1 GiB PUT sent as aws-chunked
#          (64 KiB chunks, CRC32 trailer; and with per-chunk signatures), and a 1 GiB
#          multipart upload (BENCH_PART parts, BENCH_MP_CONC in flight).
# and print the markdown tables of bench/report.py (also saved in bench/out/report.md, the raw
# RESULT lines in bench/out/results.txt). cairn is not built by this script: build it first
# (make, or cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build);
# when build/node/cairn has no `serve`, the script says "cairn not built" and benches the rest.
# Every server listens on 127.0.0.1 only; every server is stopped on exit (trap).
#
# Environment: BENCH_SECS (20), BENCH_CONC (16), BENCH_BIG (1G), BENCH_BIG_GETS (3),
# BENCH_GET_KEYS (1000), BENCH_TARGETS ("nginx swift cairn"), BENCH_TMP (/var/tmp),
# BENCH_KEEP=1 (keep the temp dir), BENCH_DROP_CACHES=1 (drop the page cache before each
# 1 GiB GET, so GETs come from the disk), CAIRN_BIN (build/node/cairn), BENCH_PART (16M),
# BENCH_MP_CONC (4), BENCH_CHUNK (64K), BENCH_STEPS (all; a list of the steps below, or
# "issue4" = "put-big chunked-put chunked-put-signed mp-put", a few minutes with
# BENCH_TARGETS="swift cairn"). Steps: kernels put-big get-big put-big-signed chunked-put
# chunked-put-signed mp-put put-small get-small (get-big brings put-big, get-small put-small).
# Issue 6: the step "nbd" (alias "issue6"; not in the default list, ~10 minutes on its own) runs
# bench/nbd.sh: cairn's NBD volumes beside fio io_uring O_DIRECT and nbdkit's file plugin
# (its knobs, NBD_*, are in that script; its tables go to bench/out/nbd-report.md).
# Issue 7: the step "glance" (alias "issue7"; not in the default list, ~7-13 minutes on its own)
# runs bench/glance.sh: the image registry beside Debian's Glance 25 (knobs GLANCE_*, tables in
# bench/out/glance-report.md).
#
# Every 1 GiB PUT of an S3 target starts on a quiet server (settle: up to 30 s until the
# server's processes use < 10% of a core), so one upload does not pay for the background work
# (stripe sealing, parity) of the one before it. Every 1 GiB object has its own seed: the same
# generator, different bytes, so cairn's dedup never makes one upload cheaper than another.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${BENCH_SECS:-20}
conc=${BENCH_CONC:-16}
big=${BENCH_BIG:-1G}
big_gets=${BENCH_BIG_GETS:-3}
get_keys=${BENCH_GET_KEYS:-1000}
targets=${BENCH_TARGETS:-"nginx swift cairn"}
part=${BENCH_PART:-16M}
mp_conc=${BENCH_MP_CONC:-4}
chunk=${BENCH_CHUNK:-64K}
all_steps="kernels put-big get-big put-big-signed chunked-put chunked-put-signed mp-put put-small get-small"
steps=${BENCH_STEPS:-$all_steps}
steps=" ${steps//issue4/put-big chunked-put chunked-put-signed mp-put} "
steps=${steps//issue6/nbd}
steps=${steps//issue7/glance}
case $steps in *" get-big "*) steps="$steps put-big " ;; esac
case $steps in *" get-small "*) steps="$steps put-small " ;; esac
steps=" $(printf '%s\n' $steps | awk '!seen[$0]++' | tr '\n' ' ')"
for s in $steps; do
	case " $all_steps nbd glance " in *" $s "*) ;; *) echo "bench/run.sh: unknown step '$s' (steps: $all_steps, issue4; nbd = issue6; glance = issue7)" >&2; exit 2 ;; esac
done
# issue 7's registry benchmark is its own script too
glance_step=0
if [[ $steps == *" glance "* ]]; then
	glance_step=1
	steps=${steps/ glance / }
	[ -z "${steps// /}" ] && exec env BENCH_STEPS="upload qcow2 volume list" bash "$here/glance.sh"
fi
# issue 6's volume benchmark is its own script; alone, it is all this run does
nbd_step=0
if [[ $steps == *" nbd "* ]]; then
	nbd_step=1
	steps=${steps/ nbd / }
	[ -z "${steps// /}" ] && exec env BENCH_STEPS="io first meta qos" bash "$here/nbd.sh"
fi
cairn_bin=${CAIRN_BIN:-$root/build/node/cairn}
out=$here/out
lg=$out/loadgen
export CAIRN_ROOT_USER=benchroot CAIRN_ROOT_PASSWORD=bench-secret-0123456789

tmp=""
cairn_pid=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_cairn
	[ -n "$tmp" ] && "$here/swift/stop.sh" "$tmp/swift" >/dev/null 2>&1
	[ -n "$tmp" ] && "$here/nginx/stop.sh" "$tmp/nginx" >/dev/null 2>&1
	if [ -n "$tmp" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
		rm -rf "$tmp"
	elif [ -n "$tmp" ]; then
		echo "kept $tmp" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$here/lib.sh"

# want STEP: whether BENCH_STEPS selects it
want() { [[ $steps == *" $1 "* ]]; }

# settle TARGET: wait (at most 30 s) until the server under test is quiet, i.e. its processes
# use less than a tenth of a core over half a second; says when it had to wait.
settle() {
	local a b waited=0
	[ -n "$srv_pgids" ] || return 0
	for _ in $(seq 60); do
		a=$(cpu_ticks)
		sleep 0.5
		b=$(cpu_ticks)
		awk -v a="$a" -v b="$b" -v hz="$clk_tck" 'BEGIN { exit !((b - a) / hz < 0.05) }' && break
		waited=$((waited + 1))
	done
	[ $waited -gt 0 ] && say "$1: waited $((waited / 2)).$((waited % 2 * 5)) s for a quiet server"
	return 0
}
# load_s3 TARGET URL ACCESS SECRET: the identical S3 sequence for Swift and cairn
load_s3() {
	local t=$1 url=$2
	local a=(--url "$url" --access "$3" --secret "$4" --bucket bench --create-bucket)
	if want put-big; then
		settle "$t"
		run "$t" put-big put-big "${a[@]}" --size "$big" --key big
	fi
	if want get-big; then
		drop_caches
		run "$t" get-big get-big "${a[@]}" --size "$big" --key big --count "$big_gets"
	fi
	# another seed for each object: the same bytes again would measure dedup, not writing
	if want put-big-signed; then
		settle "$t"
		run "$t" put-big-signed put-big "${a[@]}" --size "$big" --key big-signed --seed 0x5167 \
			--signed-payload
	fi
	# issue 4: the plain PUT's body as aws-chunked (what the SDKs send since 2025), and a
	# multipart upload with parts in flight on parallel connections
	# (each upload that succeeds is read back by check-big, untimed: every byte and the ETag
	# compared with the generated ones, so a server that stored the chunk framing or the
	# trailer, or joined parts wrongly, fails its goal whatever its speed)
	if want chunked-put; then
		settle "$t"
		run "$t" chunked-put chunked-put "${a[@]}" --size "$big" --key big-chunked \
			--seed 0xC4C3 --chunk-size "$chunk" &&
			run "$t" chunked-put-check check-big "${a[@]}" --size "$big" --key big-chunked \
				--seed 0xC4C3
	fi
	if want chunked-put-signed; then
		settle "$t"
		run "$t" chunked-put-signed chunked-put-signed "${a[@]}" --size "$big" \
			--key big-chunked-signed --seed 0xC45E --chunk-size "$chunk" &&
			run "$t" chunked-put-signed-check check-big "${a[@]}" --size "$big" \
				--key big-chunked-signed --seed 0xC45E
	fi
	if want mp-put; then
		settle "$t"
		run "$t" mp-put mp-put "${a[@]}" --size "$big" --key big-mp --seed 0x3A17 \
			--part-size "$part" --conc "$mp_conc" &&
			run "$t" mp-put-check check-big "${a[@]}" --size "$big" --key big-mp --seed 0x3A17
	fi
	want put-small || return 0
	run "$t" put-small put-small "${a[@]}" --size 4K --conc "$conc" --duration "$secs" --prefix small-
	want get-small || return 0
	local written
	written=$(grep "^$t put-small " "$results" | sed 's/.*"ok":\([0-9]*\).*/\1/')
	written=${written:-0}
	[ "$written" -gt "$get_keys" ] && written=$get_keys
	if [ "$written" -gt 0 ]; then
		run "$t" get-small get-small "${a[@]}" --size 4K --conc "$conc" --duration "$secs" \
			--prefix small- --keys "$written"
	else
		say "$t: no 4 KiB object was written; skipping 4 KiB GET"
	fi
	return 0
}


bench_nginx() {
	local port
	port=$(free_ports 1) || { say "nginx: no free port"; return 0; }
	say "nginx: writing the same bytes and starting on 127.0.0.1:$port"
	mkdir -p "$tmp/nginx"
	if ! "$here/nginx/start.sh" "$tmp/nginx" "$port" "$lg" "$get_keys" "$big"; then
		say "nginx failed to start; skipped"
		return 0
	fi
	srv_pgids=$(cat "$tmp/nginx/nginx.run-pid")
	check_loopback nginx
	local a=(--url "http://127.0.0.1:$port" --no-sign --bucket bench)
	drop_caches
	want get-big && run nginx get-big get-big "${a[@]}" --size "$big" --key big --count "$big_gets"
	want get-small && run nginx get-small get-small "${a[@]}" --size 4K --conc "$conc" \
		--duration "$secs" --prefix small- --keys "$get_keys"
	# upload ceiling: the same PUTs into nginx's WebDAV sink on tmpfs
	want put-big && run nginx put-big put-big "${a[@]}" --bucket sink --size "$big" --key big
	want put-small && run nginx put-small put-small "${a[@]}" --bucket sink --size 4K \
		--conc "$conc" --duration "$secs" --prefix small-
	srv_pgids=""
	"$here/nginx/stop.sh" "$tmp/nginx"
	rm -rf "$tmp/nginx"
}

bench_swift() {
	local base
	base=$(free_ports 5) || { say "swift: no free ports"; return 0; }
	say "swift: starting an all-in-one Swift on 127.0.0.1:$base-$((base + 4))"
	mkdir -p "$tmp/swift"
	if ! "$here/swift/setup.sh" "$tmp/swift" "$base"; then
		say "swift failed to start; skipped"
		"$here/swift/stop.sh" "$tmp/swift"
		return 0
	fi
	srv_pgids=$(awk '{ printf "%s ", $1 }' "$tmp/swift/pids")
	check_loopback swift
	load_s3 swift "http://127.0.0.1:$base" test:tester testing
	srv_pgids=""
	"$here/swift/stop.sh" "$tmp/swift"
	rm -rf "$tmp/swift"
}

bench_cairn() {
	cairn_usable || return 0
	local s3
	s3=$(free_ports 2) || { say "cairn: no free ports"; return 0; }
	mkdir -p "$tmp/cairn"
	start_cairn "$tmp/cairn" "$s3" || return 0
	check_loopback cairn
	load_s3 cairn "http://127.0.0.1:$s3" "$CAIRN_ROOT_USER" "$CAIRN_ROOT_PASSWORD"
	srv_pgids=""
	stop_cairn
	if grep -qiE 'error|assert|sanitizer' "$tmp/cairn/log"; then
		say "cairn log has errors (last lines):"
		grep -iE 'error|assert|sanitizer' "$tmp/cairn/log" | tail -5 >&2
	fi
	rm -rf "$tmp/cairn"
}

say "building the load generator and kernels"
make -s -C "$here" >&2 || { say "build failed"; exit 1; }
mkdir -p "${BENCH_TMP:-/var/tmp}"
tmp=$(mktemp -d "${BENCH_TMP:-/var/tmp}/cairn-bench.XXXXXX")
chmod 755 "$tmp"
results=$tmp/results.txt
: >"$results"
: >"$tmp/notes"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$SECONDS

if want kernels; then
	say "CPU kernels"
	"$out/kernels" 2>"$tmp/kernels.err" | sed 's/^/kernels /' >>"$results"
	sed 's/^/   /' "$tmp/kernels.err" >&2
fi

for t in $targets; do
	case $t in
	nginx) bench_nginx ;;
	swift) bench_swift ;;
	cairn) bench_cairn ;;
	*) say "unknown target $t" ;;
	esac
done

cp "$results" "$out/results.txt"
{
	echo "Run: $started, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/{print $2}') GiB"
	echo "Load average (1/5/15 min) at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "Settings: BENCH_SECS=$secs BENCH_CONC=$conc BENCH_BIG=$big BENCH_BIG_GETS=$big_gets BENCH_GET_KEYS=$get_keys BENCH_DROP_CACHES=${BENCH_DROP_CACHES:-0} BENCH_PART=$part BENCH_MP_CONC=$mp_conc BENCH_CHUNK=$chunk; steps:$steps; $((SECONDS - t_start)) s"
	sed 's/^/Note: /' "$tmp/notes"
	echo
	/usr/bin/python3 "$here/report.py" "$results"
} | tee "$out/report.md"
if [ $nbd_step = 1 ]; then
	echo
	BENCH_STEPS="io first meta qos" bash "$here/nbd.sh"
fi
if [ $glance_step = 1 ]; then
	echo
	BENCH_STEPS="upload qcow2 volume list" bash "$here/glance.sh"
fi
