#!/bin/bash
# bench/datapath.sh - the data-path benchmark (issue 5): each figure next to the limit it is
# judged against, measured in the same run on the same folders.
#
#   bash bench/datapath.sh        # from the repository root, cairn built (make); ~5-10 minutes
#
# Steps (one cairn node on its default pool: 6 device folders under one data dir, EC 4+2):
#   kernels    per-byte CPU kernels alone and the CPU limit of one PUT stream (bench/kernels.c)
#   chunker    FastCDC throughput next to a plain FastCDC loop (bench/chunker), when built
#   put-big    1 GiB PUT (UNSIGNED-PAYLOAD, incompressible, no dedup) -> vs the CPU limit;
#              metadata bytes written = the server's write_bytes (/proc/PID/io) minus the bytes
#              it wrote to device files (cairn_device_written_bytes), per GiB ingested
#   get-big    1 GiB GET x BENCH_BIG_GETS once stripes are sealed -> vs fio-read: fio O_DIRECT
#              sequential reads of the same amount of data spread over the same device folders
#   degraded   stop, move m=2 device folders away, start, 1 GiB GET again -> vs get-big
#   repair     `cairn repair` rebuilding what the two folders held -> vs fio-write: fio O_DIRECT
#              sequential write bandwidth into one device folder
#   vm-dedup   when VM images exist (BENCH_VM_DIR, default /work/vm-images; make them with
#              ../shared/tools/make-vm-images.sh): a fresh node, the three raw images uploaded,
#              pool bytes from /metrics next to bench/dedup's offline figures for the same files
# Results: RESULT lines in bench/out/datapath-results.txt, tables from bench/datapath_report.py
# in bench/out/datapath-report.md. Tests never run this; it never fails on speed.
#
# Environment: BENCH_BIG (1G), BENCH_BIG_GETS (3), BENCH_TMP (/var/tmp), BENCH_KEEP=1,
# BENCH_DROP_CACHES=1, BENCH_VM_DIR, CAIRN_BIN (build/node/cairn), BENCH_STEPS (all of
# "kernels chunker put get degraded repair vm").
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
big=${BENCH_BIG:-1G}
big_gets=${BENCH_BIG_GETS:-3}
vm_dir=${BENCH_VM_DIR:-/work/vm-images}
steps=" ${BENCH_STEPS:-kernels chunker put get degraded repair vm} "
cairn_bin=${CAIRN_BIN:-$root/build/node/cairn}
out=$here/out
lg=$out/loadgen
export CAIRN_ROOT_USER=benchroot CAIRN_ROOT_PASSWORD=bench-secret-0123456789
tmp=""

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
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

# result TAG JSON: one RESULT line
result() { echo "$1 RESULT $2" >>"$results"; }

# metric NAME: a value from cairn's /metrics (0 when absent)
metric() {
	curl -s "http://127.0.0.1:$api/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { printf "%.0f\n", v + 0 }'
}

proc_write_bytes() { awk '/^write_bytes:/ { print $2 }' "/proc/$cairn_pid/io"; }

bytes_of() { numfmt --from=iec "$1"; }

# wait_quiet: until the device write counter stops moving for 2 s (sealing and syncing done)
wait_quiet() {
	local a b
	a=$(metric cairn_device_written_bytes)
	for _ in $(seq 300); do
		sleep 2
		b=$(metric cairn_device_written_bytes)
		[ "$a" = "$b" ] && return 0
		a=$b
	done
}

# fio_json NAME ARGS...: runs fio, prints "bytes mib_s" of the whole group
fio_run() {
	fio --output-format=json --group_reporting "$@" 2>>"$tmp/fio.err" |
		/usr/bin/python3 -c 'import json,sys
j = json.load(sys.stdin)["jobs"][0]
k = "read" if j["read"]["io_bytes"] else "write"
print(j[k]["io_bytes"], round(j[k]["bw_bytes"] / 1048576, 1))'
}

say "building the load generator and kernels"
make -s -C "$here" >&2 || { say "build failed"; exit 1; }
command -v fio >/dev/null || { say "fio is missing (apt-get install fio)"; exit 1; }
mkdir -p "${BENCH_TMP:-/var/tmp}"
tmp=$(mktemp -d "${BENCH_TMP:-/var/tmp}/cairn-datapath.XXXXXX")
results=$tmp/results.txt
: >"$results"
: >"$tmp/notes"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$SECONDS

if want kernels; then
	say "CPU kernels"
	"$out/kernels" 2>"$tmp/kernels.err" | sed 's/^/kernels /' >>"$results"
	sed 's/^/   /' "$tmp/kernels.err" >&2
fi
if want chunker && [ -x "$out/chunker" ]; then
	say "chunker"
	"$out/chunker" 2>"$tmp/chunker.err" | sed 's/^/chunker /' >>"$results"
	sed 's/^/   /' "$tmp/chunker.err" >&2
fi

cairn_usable || exit 1
s3=$(free_ports 2) || { say "no free ports"; exit 1; }
api=$((s3 + 1))
url=http://127.0.0.1:$s3
node=$tmp/node
mkdir -p "$node"
a=(--url "$url" --access "$CAIRN_ROOT_USER" --secret "$CAIRN_ROOT_PASSWORD" --bucket bench)
nbytes=$(bytes_of "$big")

if want put || want get || want degraded || want repair; then
	start_cairn "$node" "$s3" || exit 1
	w0=$(proc_write_bytes)
	d0=$(metric cairn_device_written_bytes)
	m0=$(metric cairn_meta_map_used_bytes)
	run cairn put-big put-big "${a[@]}" --create-bucket --size "$big" --key big
	w1=$(proc_write_bytes)
	d1=$(metric cairn_device_written_bytes)
	m1=$(metric cairn_meta_map_used_bytes)
	result "cairn meta" "{\"ingested\":$nbytes,\"proc_write_bytes\":$((w1 - w0)),\"device_write_bytes\":$((d1 - d0)),\"lmdb_used_delta\":$((m1 - m0))}"
	say "waiting for sealing to finish"
	wait_quiet
	result "cairn pool" "{\"physical\":$(metric cairn_pool_physical_bytes),\"stored\":$(metric cairn_pool_stored_bytes),\"stripes\":$(metric cairn_pool_stripes)}"
	if want get; then
		drop_caches
		run cairn get-big get-big "${a[@]}" --size "$big" --key big --count "$big_gets"
	fi
	stop_cairn
	# the limit: the same amount of data read with O_DIRECT from the same folders
	if want get; then
		say "fio: O_DIRECT sequential read over the device folders"
		jobs=()
		ndev=$(find "$node/data/devices" -mindepth 1 -maxdepth 1 -type d | wc -l)
		per=$(((nbytes + ndev - 1) / ndev / 1048576))M
		for d in "$node"/data/devices/*/; do
			jobs+=(--name="r$(basename "$d")" --directory="$d" --size="$per")
		done
		set -- $(fio_run --rw=read --bs=1M --direct=1 --ioengine=io_uring --iodepth=8 \
			--numjobs=1 "${jobs[@]}") && result "fio read" "{\"bytes\":$1,\"mib_s\":$2}"
		rm -f "$node"/data/devices/*/r*.0.0
	fi
	if want degraded || want repair; then
		mkdir -p "$tmp/lost"
		mv "$node/data/devices/d0" "$node/data/devices/d1" "$tmp/lost/"
		start_cairn "$node" "$s3" || exit 1
		if want degraded; then
			drop_caches
			run cairn get-degraded get-big "${a[@]}" --size "$big" --key big --count "$big_gets"
		fi
		if want repair; then
			say "cairn repair"
			t0=$(date +%s.%N)
			CAIRN_ROOT_USER=$CAIRN_ROOT_USER "$cairn_bin" repair --endpoint "http://127.0.0.1:$api" \
				--json >"$tmp/repair.json" 2>"$tmp/repair.err"
			rc=$?
			t1=$(date +%s.%N)
			tail -3 "$tmp/repair.err" | sed 's/^/   /' >&2
			rbytes=$(du -sb "$node/data/devices/d0" "$node/data/devices/d1" 2>/dev/null |
				awk '{ s += $1 } END { print s + 0 }')
			result "cairn repair" "{\"rc\":$rc,\"bytes\":$rbytes,\"secs\":$(echo "$t1 - $t0" | bc)}"
			run cairn get-repaired get-big "${a[@]}" --size "$big" --key big --count 1
		fi
		stop_cairn
		if want repair; then
			say "fio: O_DIRECT sequential write into one device folder"
			set -- $(fio_run --name=w --directory="$node/data/devices/d2" --rw=write --bs=1M \
				--direct=1 --ioengine=io_uring --iodepth=8 --size=1G --end_fsync=1) &&
				result "fio write" "{\"bytes\":$1,\"mib_s\":$2}"
			rm -f "$node"/data/devices/d2/w.0.0
		fi
	fi
	rm -rf "$node"
	mkdir -p "$node"
fi

if want vm; then
	imgs=("$vm_dir"/debian12-base.raw "$vm_dir"/debian12-ssh.raw "$vm_dir"/debian12-web.raw)
	if [ -f "${imgs[0]}" ] && [ -f "${imgs[1]}" ] && [ -f "${imgs[2]}" ]; then
		if [ -x "$out/dedup" ]; then
			say "offline dedup figures for the VM images"
			"$out/dedup" "${imgs[@]}" 2>"$tmp/dedup.err" | sed 's/^/offline /' >>"$results"
			sed 's/^/   /' "$tmp/dedup.err" >&2
		fi
		start_cairn "$node" "$s3" || exit 1
		curl -s -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" \
			--user "$CAIRN_ROOT_USER:$CAIRN_ROOT_PASSWORD" -X PUT "$url/vmimages"
		m0=$(metric cairn_meta_map_used_bytes)
		logical=0
		for f in "${imgs[@]}"; do
			say "uploading $(basename "$f")"
			code=$(curl -s -o "$tmp/put.out" -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
				--user "$CAIRN_ROOT_USER:$CAIRN_ROOT_PASSWORD" \
				-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$f" "$url/vmimages/$(basename "$f")")
			[ "$code" = 200 ] || { say "upload failed: $code $(cat "$tmp/put.out")"; echo "vm upload failed" >>"$tmp/notes"; }
			logical=$((logical + $(stat -c %s "$f")))
		done
		wait_quiet
		m1=$(metric cairn_meta_map_used_bytes)
		result "cairn vm" "{\"logical\":$logical,\"unique\":$(metric cairn_pool_unique_bytes),\"stored\":$(metric cairn_pool_stored_bytes),\"physical\":$(metric cairn_pool_physical_bytes),\"chunks\":$(metric cairn_pool_chunks),\"lmdb_used_delta\":$((m1 - m0))}"
		stop_cairn
	else
		say "no VM images in $vm_dir: vm-dedup skipped"
		echo "vm-dedup skipped: no images in $vm_dir" >>"$tmp/notes"
	fi
fi

cp "$results" "$out/datapath-results.txt"
{
	echo "Run: $started, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/{print $2}') GiB; $((SECONDS - t_start)) s"
	echo "Settings: BENCH_BIG=$big BENCH_BIG_GETS=$big_gets BENCH_DROP_CACHES=${BENCH_DROP_CACHES:-0}"
	sed 's/^/Note: /' "$tmp/notes"
	echo
	/usr/bin/python3 "$here/datapath_report.py" "$results"
} | tee "$out/datapath-report.md"
