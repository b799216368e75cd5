#!/bin/bash
# bench/nbd.sh - the block-volume benchmark (issue 6): cairn's NBD volumes side by side with the
# device limit and nbdkit's file plugin, in one run, on the same folder.
#
#   bash bench/nbd.sh          # from the repository root, cairn built optimised; ~10 minutes
#   BENCH_STEPS=issue6 bash bench/run.sh     # the same, through run.sh
#
# Every figure is fio 3.33 with the same job on every target (NBD_SECS s each, after 1 s of ramp;
# every server up and every target written first, then each job on all targets in turn): 4 KiB
# randread and randwrite at QD1 and QD32, 1 MiB sequential read and
# write at QD8, over a file or volume of NBD_SIZE bytes written in full first.
#   device   fio --ioengine=io_uring --direct=1 on TMP/dev.img (the device limit: the folder
#            cairn's data lives in, same filesystem)
#   nbdkit   nbdkit file file=TMP/dev.img cache=none (the same file), fio --ioengine=nbd
#   cairn1   a cairn volume, --replicas 1, attached with `cairn volume attach --json`, fio
#            --ioengine=nbd --uri=<the attach URL>; cairn serve on TMP/cairn/data (6 device folders)
#   cairn3   the same with --replicas 3
# and, on the cairn server:
#   first    first-write cost: the fill of each fresh volume (1 MiB sequential QD8) and 4 KiB
#            randwrite QD32 on a fresh (thin) volume; a randread of the thin volume (zeroes, no I/O)
#   meta     snapshot, clone and rollback of an NBD_META_SIZE volume with NBD_META_SIZE/10 written
#            (whole 4 MiB extents, one in ten): each admin call timed with curl --aws-sigv4 (total,
#            and server = time to first byte - time the request was sent), NBD_META_REPS times,
#            plus the CLI's wall time for one of each
#   qos      `cairn volume qos` --iops NBD_QOS_IOPS, then --bps NBD_QOS_BPS, on the filled replicas-1
#            volume while it is attached; fio above the limit; achieved / limit
# Results: RESULT lines in bench/out/nbd-results.txt, tables from bench/nbd_report.py in
# bench/out/nbd-report.md (also printed). Each line carries the 1-minute load average taken when
# its measurement started, and the server's CPU seconds during it. Never run by the tests.
#
# Environment: NBD_SIZE (2G), NBD_SECS (15), NBD_TARGETS ("device nbdkit cairn1 cairn3"),
# NBD_META_SIZE (100G), NBD_META_REPS (5), NBD_QOS_IOPS (2000), NBD_QOS_BPS (50M),
# BENCH_STEPS (all of "io first meta qos"; run.sh's issue6/nbd mean all), BENCH_TMP (/var/tmp),
# BENCH_KEEP=1, CAIRN_BIN (build/node/cairn).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
size=${NBD_SIZE:-2G}
secs=${NBD_SECS:-15}
targets=${NBD_TARGETS:-"device nbdkit cairn1 cairn3"}
meta_size=${NBD_META_SIZE:-100G}
meta_reps=${NBD_META_REPS:-5}
qos_iops=${NBD_QOS_IOPS:-2000}
qos_bps=${NBD_QOS_BPS:-50M}
steps=" ${BENCH_STEPS:-io first meta qos} "
case $steps in *" issue6 "* | *" nbd "*) steps=" io first meta qos " ;; esac
cairn_bin=${CAIRN_BIN:-$root/build/node/cairn}
out=$here/out
export CAIRN_ROOT_USER=${CAIRN_ROOT_USER:-benchroot}
export CAIRN_ROOT_PASSWORD=${CAIRN_ROOT_PASSWORD:-bench-secret-0123456789}
tmp=""
nbdkit_pid=""
api=""

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_nbdkit
	stop_cairn
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

want() { [[ "$steps" == *" $1 "* ]]; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# busy_ticks: the machine's busy CPU ticks so far and the uptime in ticks ("BUSY NOW"), so a
# job's record can say how much CPU processes other than fio and the server took meanwhile
busy_ticks() {
	awk -v hz="$clk_tck" 'NR == FNR && $1 == "cpu" { b = $2 + $3 + $4 + $7 + $8 + $9 }
		FILENAME == "/proc/uptime" { printf "%d %d\n", b, $1 * hz }' /proc/stat /proc/uptime
}
# bytes SIZE: 2G -> 2147483648 (K/M/G/T = 2^10..)
bytes() { numfmt --from=iec "$1"; }

# The six jobs: name rw bs iodepth
jobs="rr4k-qd1 randread 4k 1
rr4k-qd32 randread 4k 32
rw4k-qd1 randwrite 4k 1
rw4k-qd32 randwrite 4k 32
sr1m-qd8 read 1M 8
sw1m-qd8 write 1M 8"

# fio_run TARGET JOB RW BS QD ENGINE-ARGS...: one time-based fio job; its summary (IOPS, MiB/s,
# latency percentiles, the server's CPU seconds, the load average at its start) is appended to
# results as "TARGET JOB {json}". Extra fio options may follow the engine args.
fio_run() {
	local t=$1 job=$2 rw=$3 bs=$4 qd=$5 l c0 c1 cpu rc b0 b1
	shift 5
	l=$(load1)
	say "$t $job (load $l)"
	b0=$(busy_ticks)
	c0=$(cpu_ticks)
	fio --name="$job" --rw="$rw" --bs="$bs" --iodepth="$qd" --runtime="$secs" --time_based \
		--ramp_time=1 --norandommap --randrepeat=0 --lat_percentiles=1 \
		--output-format=json --output="$tmp/fio.json" "$@" >/dev/null 2>"$tmp/fio.err"
	rc=$?
	c1=$(cpu_ticks)
	b1=$(busy_ticks)
	cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / hz }')
	if [ $rc != 0 ]; then
		say "$t $job: fio failed:"
		sed 's/^/   /' "$tmp/fio.err" >&2
		echo "$t $job {\"error\":\"fio exit $rc\",\"load\":$l}" >>"$results"
		return 1
	fi
	/usr/bin/python3 "$here/nbd_report.py" --fio "$tmp/fio.json" "$cpu" "$l" $b0 $b1 "$clk_tck" |
		sed "s/^/$t $job /" >>"$results"
	tail -1 "$results" | sed 's/^/   /' >&2
}

# fio_fill TARGET JOB ENGINE-ARGS...: writes the whole target once, 1 MiB sequential QD8 (not
# time-based); recorded like a job, so a fresh volume's fill is its first-write cost
fio_fill() {
	local t=$1 job=$2 l c0 c1 cpu
	shift 2
	l=$(load1)
	say "$t $job: writing it in full (load $l)"
	c0=$(cpu_ticks)
	if ! fio --name="$job" --rw=write --bs=1M --iodepth=8 --lat_percentiles=1 \
		--output-format=json --output="$tmp/fio.json" "$@" >/dev/null 2>"$tmp/fio.err"; then
		say "$t $job: fio failed:"
		sed 's/^/   /' "$tmp/fio.err" >&2
		return 1
	fi
	c1=$(cpu_ticks)
	cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / hz }')
	/usr/bin/python3 "$here/nbd_report.py" --fio "$tmp/fio.json" "$cpu" "$l" |
		sed "s/^/$t $job /" >>"$results"
	tail -1 "$results" | sed 's/^/   /' >&2
}

stop_nbdkit() {
	[ -n "$nbdkit_pid" ] || return 0
	kill -TERM "$nbdkit_pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$nbdkit_pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$nbdkit_pid" 2>/dev/null && kill -KILL "$nbdkit_pid" 2>/dev/null
	wait "$nbdkit_pid" 2>/dev/null
	nbdkit_pid=""
	srv_pgids=""
}

# start_nbdkit: nbdkit's file plugin on TMP/dev.img; sets eng[nbdkit]
start_nbdkit() {
	local port
	command -v nbdkit >/dev/null || { say "nbdkit not installed; skipped"; return 0; }
	port=$(free_ports 1) || { say "nbdkit: no free port"; return 0; }
	say "nbdkit: nbdkit -f -i 127.0.0.1 -p $port file file=$tmp/dev.img cache=none"
	setsid nbdkit -f -i 127.0.0.1 -p "$port" file file="$tmp/dev.img" cache=none \
		</dev/null >"$tmp/nbdkit.log" 2>&1 &
	nbdkit_pid=$!
	for _ in $(seq 50); do
		nbdinfo --size "nbd://127.0.0.1:$port/" >/dev/null 2>&1 && break
		sleep 0.1
	done
	srv_pgids=$nbdkit_pid
	check_loopback nbdkit
	eng[nbdkit]="--ioengine=nbd --uri=nbd://127.0.0.1:$port/"
	pg[nbdkit]=$nbdkit_pid
}

# cli ARGS...: the cairn CLI against this run's server
cli() { "$cairn_bin" "$@" --endpoint "http://$api"; }

# attach_url VOLUME: attaches it, prints its nbd:// URL
attach_url() {
	cli volume attach "$1" --json >"$tmp/attach.json" || return 1
	/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' \
		"$tmp/attach.json"
}

# admin METHOD PATH [BODY]: one signed admin call with curl; prints "HTTP TOTAL_MS SERVER_MS"
# (server = first byte - request sent: what the server took, without curl's connection setup);
# the answer goes to $tmp/admin.out
admin() {
	local a=(-s -o "$tmp/admin.out" --aws-sigv4 "aws:amz:us-east-1:s3"
		--user "$CAIRN_ROOT_USER:$CAIRN_ROOT_PASSWORD" -X "$1"
		-w '%{http_code} %{time_total} %{time_starttransfer} %{time_pretransfer}\n')
	[ $# -ge 3 ] && a+=(-H 'content-type: application/json' --data-binary "$3")
	curl "${a[@]}" "http://$api$2" |
		awk '{ printf "%s %.3f %.3f\n", $1, $2 * 1000, ($3 - $4) * 1000 }'
}

# timed TAG METHOD PATH [BODY]: an admin call recorded as "cairn-meta TAG {json}"
timed() {
	local tag=$1 r code l
	shift
	l=$(load1)
	r=$(admin "$@")
	code=${r%% *}
	say "  $tag: $1 $2 -> $r (HTTP, total ms, server ms)"
	case $code in
	2??) ;;
	*)
		sed 's/^/   /' "$tmp/admin.out" >&2
		echo "cairn-meta $tag {\"error\":\"HTTP $code\",\"load\":$l}" >>"$results"
		return 1
		;;
	esac
	set -- $r
	echo "cairn-meta $tag {\"total_ms\":$2,\"server_ms\":$3,\"load\":$l}" >>"$results"
}

# cli_timed TAG ARGS...: the CLI's wall time for one call
cli_timed() {
	local tag=$1 t0 t1 l
	shift
	l=$(load1)
	t0=$(date +%s%N)
	if ! cli "$@" >/dev/null 2>"$tmp/cli.err"; then
		say "  cli $*: failed: $(cat "$tmp/cli.err")"
		return 1
	fi
	t1=$(date +%s%N)
	say "  cli $*: $(((t1 - t0) / 1000)) us"
	echo "cairn-meta $tag {\"total_ms\":$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e6 }'),\"load\":$l}" >>"$results"
}

# cairn_prepare TARGET REPLICAS: a volume created, attached and written in full (its first
# write timed); sets eng[TARGET]
cairn_prepare() {
	local t=$1 n=$2 v="bench-r$2" url
	cli volume create "$v" "$size" --replicas "$n" >/dev/null || { say "$t: create failed"; return 1; }
	url=$(attach_url "$v") || { say "$t: attach failed"; return 1; }
	say "$t: volume $v ($size, replicas $n) at $url"
	if want first; then
		# a thin volume reads zeroes without touching a device: shown, not a goal
		fio_run "$t" thin-rr4k-qd32 randread 4k 32 --ioengine=nbd --uri="$url" --runtime=5
	fi
	fio_fill "$t" fill --ioengine=nbd --uri="$url" || return 1
	eng[$t]="--ioengine=nbd --uri=$url"
	pg[$t]=$cairn_pid
}

# cairn_after TARGET REPLICAS: the first-write (and, one replica, QoS) steps, then the
# volume's deletion
cairn_after() {
	local t=$1 n=$2 v="bench-r$2"
	if want first; then
		# 4 KiB writes into never-written blocks: each one's first write commits a map change
		local f="bench-fresh-r$n" furl
		cli volume create "$f" "$size" --replicas "$n" >/dev/null &&
			furl=$(attach_url "$f") &&
			fio_run "$t" first-rw4k-qd32 randwrite 4k 32 --ioengine=nbd --uri="$furl"
		cli volume detach "$f" --force >/dev/null 2>&1
		cli volume delete "$f" --force >/dev/null 2>&1
	fi
	if want qos && [ "$n" = 1 ] && [ -n "${eng[$t]:-}" ]; then
		cairn_qos "$v" "${eng[$t]#*--uri=}"
	fi
	cli volume detach "$v" --force >/dev/null 2>&1
	cli volume delete "$v" --force >/dev/null 2>&1
	return 0
}

# cairn_qos VOLUME URL: limits set on the attached volume, fio above them
cairn_qos() {
	local v=$1 url=$2
	say "qos: $v --iops $qos_iops"
	if cli volume qos "$v" --iops "$qos_iops" --bps 0 >/dev/null; then
		fio_run "qos-iops-$qos_iops" rr4k-qd32 randread 4k 32 --ioengine=nbd --uri="$url"
		fio_run "qos-iops-$qos_iops" rw4k-qd32 randwrite 4k 32 --ioengine=nbd --uri="$url"
	fi
	say "qos: $v --bps $qos_bps"
	if cli volume qos "$v" --iops 0 --bps "$qos_bps" >/dev/null; then
		fio_run "qos-bps-$qos_bps" sr1m-qd8 read 1M 8 --ioengine=nbd --uri="$url"
		fio_run "qos-bps-$qos_bps" sw1m-qd8 write 1M 8 --ioengine=nbd --uri="$url"
	fi
	cli volume qos "$v" --iops 0 --bps 0 >/dev/null
}

# cairn_meta: snapshot, clone and rollback of a big volume with a tenth of it written
cairn_meta() {
	local v=bench-big url total i
	total=$(($(bytes "$meta_size") / 10))
	cli volume create "$v" "$meta_size" --replicas 1 >/dev/null || { say "meta: create failed"; return 1; }
	url=$(attach_url "$v") || { say "meta: attach failed"; return 1; }
	# whole 4 MiB extents, one in ten, over the whole volume
	fio_fill cairn-meta "write-$((total >> 30))G-of-$meta_size" --ioengine=nbd --uri="$url" --io_size="$total" \
		--zonemode=strided --zonesize=4M --zoneskip=36M || return 1
	for i in $(seq "$meta_reps"); do
		# new data before each snapshot, so none of them freezes an unchanged head
		fio --name=between --ioengine=nbd --uri="$url" --rw=randwrite --bs=64k --iodepth=8 \
			--io_size=4M --randrepeat=0 >/dev/null 2>&1
		timed snapshot POST "/admin/v1/volumes/$v/snapshots" "{\"name\":\"s$i\"}"
		timed clone POST /admin/v1/volumes \
			"{\"name\":\"clone$i\",\"from_snapshot\":{\"volume\":\"$v\",\"snapshot\":\"s$i\"}}"
	done
	cli_timed cli-snapshot snapshot create "$v" s-cli
	cli_timed cli-clone volume clone clone-cli --from-snapshot "$v@s-cli"
	# rollback of an attached volume is refused (VolumeBusy): detach first
	cli volume detach "$v" >/dev/null || cli volume detach "$v" --force >/dev/null
	for i in $(seq "$meta_reps" -1 1); do
		timed rollback POST "/admin/v1/volumes/$v/rollback" "{\"snapshot\":\"s$i\"}"
	done
	cli_timed cli-rollback volume rollback "$v" s-cli
	# the clones are thin: a clone's first write copies up one 64 KiB block. Only over the
	# first NBD_SIZE bytes: every extent a write touches gets its 4 MiB file in full, so 4 KiB
	# writes spread over 100 GiB would claim 100 GiB of disk (they did: ENOSPC on a 55 GiB disk)
	if url=$(attach_url clone1); then
		fio_run cairn-meta clone1-rw4k-qd32 randwrite 4k 32 --ioengine=nbd --uri="$url" \
			--runtime=5 --size="$size"
	fi
	return 0
}

# start_cairn_node: cairn serve with the NBD server on this run's ports; sets api
start_cairn_node() {
	cairn_usable || return 1
	local base
	base=$(free_ports 3) || { say "cairn: no free ports"; return 1; }
	mkdir -p "$tmp/cairn"
	start_cairn "$tmp/cairn" "$base" --nbd-listen "127.0.0.1:$((base + 2))" || return 1
	api=127.0.0.1:$((base + 1))
	grep -m1 'cairn ready' "$tmp/cairn/log" >&2
	check_loopback cairn
}

stop_cairn_node() {
	stop_cairn
	if grep -qiE 'error|assert|sanitizer' "$tmp/cairn/log"; then
		say "cairn log has errors (last lines):"
		grep -iE 'error|assert|sanitizer' "$tmp/cairn/log" | tail -5 >&2
	fi
	rm -rf "$tmp/cairn"
}

for tool in fio nbdinfo numfmt curl; do
	command -v $tool >/dev/null || { say "$tool is missing (apt-get install fio libnbd-bin nbdkit)"; exit 1; }
done
mkdir -p "$out" "${BENCH_TMP:-/var/tmp}"
tmp=$(mktemp -d "${BENCH_TMP:-/var/tmp}/cairn-nbd.XXXXXX")
chmod 755 "$tmp"
results=$tmp/results.txt
: >"$results"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$SECONDS

# Every server up and every target written first; then each job on every target in turn, so
# the figures of one job are taken within a minute of each other (other work on this shared
# machine comes and goes: per-job interleaving keeps it from favouring one target)
declare -A eng pg
has() { [[ " $targets " == *" $1 "* ]]; }
if want io && { has device || has nbdkit; }; then
	# the device file, written in full (an unwritten file's reads would cost no I/O)
	fio_fill device fill --ioengine=io_uring --direct=1 --filename="$tmp/dev.img" --size="$size" ||
		exit 1
	has device && eng[device]="--ioengine=io_uring --direct=1 --filename=$tmp/dev.img --size=$size"
	has nbdkit && start_nbdkit
fi
cairn_up=0
if has cairn1 || has cairn3 || want meta; then
	start_cairn_node && cairn_up=1
fi
if [ $cairn_up = 1 ]; then
	has cairn1 && cairn_prepare cairn1 1
	has cairn3 && cairn_prepare cairn3 3
fi
if want io; then
	while read -r name rw bs qd; do
		for t in $targets; do
			[ -n "${eng[$t]:-}" ] || continue
			srv_pgids=${pg[$t]:-}
			# shellcheck disable=SC2086 # engine args: paths from mktemp, no spaces
			fio_run "$t" "$name" "$rw" "$bs" "$qd" ${eng[$t]}
		done
	done <<<"$jobs"
fi
stop_nbdkit
rm -f "$tmp/dev.img"
if [ $cairn_up = 1 ]; then
	srv_pgids=$cairn_pid
	has cairn1 && cairn_after cairn1 1
	has cairn3 && cairn_after cairn3 3
	want meta && cairn_meta
	stop_cairn_node
fi

cp "$results" "$out/nbd-results.txt"
{
	echo "Run: $started, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/{print $2}') GiB, commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null)"
	echo "Load average (1/5/15 min) at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "Settings: NBD_SIZE=$size NBD_SECS=$secs NBD_TARGETS=\"$targets\" NBD_META_SIZE=$meta_size NBD_META_REPS=$meta_reps NBD_QOS_IOPS=$qos_iops NBD_QOS_BPS=$qos_bps; steps:$steps; $((SECONDS - t_start)) s"
	echo
	/usr/bin/python3 "$here/nbd_report.py" "$results" --qos-iops "$qos_iops" \
		--qos-bps "$(bytes "$qos_bps")"
} | tee "$out/nbd-report.md"
