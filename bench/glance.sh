#!/bin/bash
# bench/glance.sh - the image-registry benchmark (issue 7): cairn's Glance v2 API side by side
# with Debian's Glance 25 (glance-api, sqlite, file store, no Keystone), both up in the same run,
# their data in the same folder (one filesystem).
#
#   bash bench/glance.sh           # from the repository root, cairn built optimised; ~7-13 minutes
#   BENCH_STEPS=issue7 bash bench/run.sh      # the same, through run.sh
#
# Steps (BENCH_STEPS, any subset of "upload qcow2 volume list"; all by default):
#   upload  the three raw images (debian12-{base,ssh,web}.raw) uploaded with the glance CLI
#           (`glance image-create --disk-format raw --container-format bare --file F`) to each
#           side in turn, each upload on a quiet server with the file in the page cache: wall
#           time and MiB/s per image; then the physical bytes of the set: Glance = du of its
#           file store + its sqlite file; cairn = the pool's physical_bytes (stripe units,
#           parity included; GET /admin/v1/pool/stats, once the pool is quiet) + its LMDB
#           file's size
#   qcow2   the same with the three .qcow2 images (for information), physical bytes again
#   volume  a 1 GiB image (debian12-base.raw) and a GLANCE_BIG one (the same grown with
#           truncate, 16 MiB of data at its end); on cairn, POST /admin/v1/volumes
#           {"name", "image"} GLANCE_VOL_REPS times each (curl: total and server time) and
#           `cairn volume create NAME --from-image ID` once, then `qemu-img compare` of a
#           volume from each image with the raw file over NBD; Cinder-style beside it:
#           `glance image-download` from Glance into a file + `qemu-img convert -n -O raw`
#           into a fresh cairn volume over NBD, timed
#   list    GLANCE_LIST_N image records (metadata only) made on each side with POST
#           /v2/images (bench/glance_report.py --create, 2 keep-alive connections), then every
#           page walked (limit=GLANCE_PAGE, following `next`, one keep-alive connection, the
#           same Python client for both) GLANCE_WALKS times per side, interleaved: pages/s
# The images are read from GLANCE_IMAGES (default ../vm-images beside the repository: a cache
# outside it); when one is missing, ../shared/tools/make-vm-images.sh builds them there (root,
# apt access, ~5 minutes). The GLANCE_BIG image is made once in the same folder.
# Results: RESULT lines in bench/out/glance-results.txt, tables from bench/glance_report.py in
# bench/out/glance-report.md (also printed), each goal marked PASS or MISS. A miss never makes
# the script fail; it exits non-zero only when it cannot run at all.
#
# cairn runs with --registry-listen and CAIRN_ADMIN_TOKEN (that token is the glance CLI's
# --os-auth-token on cairn's side and the admin API's Bearer token); Glance takes any token.
# When the cairn binary has no registry yet (no --registry-listen), its side is skipped except
# the NBD volume the Cinder-style path writes into. Each glance CLI runs with its own HOME per
# side: glanceclient caches the image schema in ~/.glanceclient, and Debian's glanceclient 4.1
# crashes ("argument --stores: conflicting option string") once Glance 25's schema, which has a
# `stores` property, is cached; the script drops that property from Glance's cached copy.
#
# Environment: GLANCE_TARGETS ("glance cairn"), GLANCE_IMAGES (../vm-images), GLANCE_BIG (10G),
# GLANCE_VOL_REPS (5), GLANCE_LIST_N (10000), GLANCE_PAGE (100), GLANCE_WALKS (3),
# BENCH_STEPS, BENCH_TMP (/var/tmp), BENCH_KEEP=1, CAIRN_BIN (build/node/cairn).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
targets=${GLANCE_TARGETS:-"glance cairn"}
images=${GLANCE_IMAGES:-$(cd "$root/.." && pwd)/vm-images}
big=${GLANCE_BIG:-10G}
vol_reps=${GLANCE_VOL_REPS:-5}
list_n=${GLANCE_LIST_N:-10000}
page=${GLANCE_PAGE:-100}
walks=${GLANCE_WALKS:-3}
steps=" ${BENCH_STEPS:-upload qcow2 volume list} "
case $steps in *" issue7 "* | *" glance "*) steps=" upload qcow2 volume list " ;; esac
cairn_bin=${CAIRN_BIN:-$root/build/node/cairn}
out=$here/out
py=/usr/bin/python3
report=$here/glance_report.py
export CAIRN_ROOT_USER=${CAIRN_ROOT_USER:-benchroot}
export CAIRN_ROOT_PASSWORD=${CAIRN_ROOT_PASSWORD:-bench-secret-0123456789}
export CAIRN_ADMIN_TOKEN=${CAIRN_ADMIN_TOKEN:-bench-admin-token-$RANDOM$RANDOM$RANDOM}
tmp=""
api=""

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_cairn
	[ -n "$tmp" ] && "$here/glance/stop.sh" "$tmp/glance" >/dev/null 2>&1
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
has() { [[ " $targets " == *" $1 "* ]]; }
load1() { cut -d' ' -f1 /proc/loadavg; }
bytes() { numfmt --from=iec "$1"; }
now_ns() { date +%s%N; }
ms_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e6 }'; }
# record TARGET TEST JSON: one RESULT line, echoed indented to stderr
record() {
	echo "$1 $2 $3" >>"$results"
	echo "   $1 $2 $3" >&2
}
# fail TARGET TEST WHY: a RESULT line saying what failed
fail() {
	say "$1 $2: $3"
	record "$1" "$2" "$(jq -cn --arg e "$3" --argjson l "$(load1)" '{error: $e, load: $l}')"
}

declare -A url tok pgid
# settle_on TARGET: at most 30 s until that server's processes use < 10% of a core
settle_on() {
	local a b waited=0
	srv_pgids=${pgid[$1]:-}
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

# gcli TARGET ARGS...: Debian's glance CLI against one side, with that side's own HOME
gcli() {
	local t=$1 rc
	shift
	mkdir -p "$tmp/home-$t"
	local pre=()
	# the client's own CPU seconds, when asked (gcli_time=FILE): it shares the 2 cores
	[ -n "${gcli_time:-}" ] && pre=(/usr/bin/time -f '%U %S' -o "$gcli_time")
	HOME=$tmp/home-$t "${pre[@]}" glance --os-image-url "${url[$t]}" --os-auth-token "${tok[$t]}" "$@"
	rc=$?
	# Glance 25's image schema has "stores": cached, it breaks glanceclient 4.1's next call
	local sc=$tmp/home-$t/.glanceclient/image_schema.json
	if [ -f "$sc" ] && grep -q '"stores"' "$sc"; then
		$py -c 'import json, sys
p = sys.argv[1]; j = json.load(open(p)); j["properties"].pop("stores", None)
json.dump(j, open(p, "w"))' "$sc"
	fi
	return $rc
}

# field OUTFILE NAME: a property from the glance CLI's table output
field() { awk -F'|' -v k="$2" '{ gsub(/ /, "", $2) } $2 == k { gsub(/^ +| +$/, "", $3); print $3; exit }' "$1"; }

# upload TARGET TEST FILE FORMAT: one timed `glance image-create`; prints the image id
upload() {
	local t=$1 test=$2 f=$3 fmt=$4 t0 ms sz id st sum cpu c0 c1 l
	sz=$(stat -c %s "$f")
	cat "$f" >/dev/null # both sides read the file from the page cache
	settle_on "$t"
	l=$(load1)
	say "$t $test: glance image-create --file $(basename "$f") (load $l)"
	c0=$(cpu_ticks)
	t0=$(now_ns)
	gcli_time=$tmp/time.out gcli "$t" image-create --name "$test" --disk-format "$fmt" \
		--container-format bare --file "$f" >"$tmp/gcli.out" 2>"$tmp/gcli.err"
	local rc=$? ccpu
	ccpu=$(awk '{ printf "%.2f", $1 + $2 }' "$tmp/time.out" 2>/dev/null)
	ms=$(ms_since "$t0")
	c1=$(cpu_ticks)
	cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / hz }')
	id=$(field "$tmp/gcli.out" id)
	st=$(field "$tmp/gcli.out" status)
	sum=$(field "$tmp/gcli.out" checksum)
	if [ $rc != 0 ] || [ "$st" != active ]; then
		fail "$t" "$test" "glance image-create: exit $rc, status '$st': $(tail -c 300 "$tmp/gcli.err" | tr '\n' ' ')"
		return 1
	fi
	record "$t" "$test" "$(jq -cn --argjson b "$sz" --argjson ms "$ms" --arg id "$id" \
		--arg sum "$sum" --argjson cpu "$cpu" --argjson cc "${ccpu:-0}" --argjson l "$l" \
		'{bytes: $b, secs: ($ms / 1000 | . * 1000 | round / 1000), mibs: ($b / 1048576 / ($ms / 1000) | . * 10 | round / 10), id: $id, checksum: $sum, cpu_s: $cpu, client_cpu_s: $cc, load: $l}')"
	echo "$id"
}

# admin METHOD PATH [BODY]: one admin call on cairn (Bearer admin token); prints "HTTP TOTAL_MS
# SERVER_MS" (server = first byte - request sent); the answer goes to $tmp/admin.out
admin() {
	local a=(-s -o "$tmp/admin.out" -H "Authorization: Bearer $CAIRN_ADMIN_TOKEN" -X "$1"
		-w '%{http_code} %{time_total} %{time_starttransfer} %{time_pretransfer}\n')
	[ $# -ge 3 ] && a+=(-H 'content-type: application/json' --data-binary "$3")
	curl "${a[@]}" "http://$api$2" |
		awk '{ printf "%s %.3f %.3f\n", $1, $2 * 1000, ($3 - $4) * 1000 }'
}
# admin_sig METHOD PATH: the same, SigV4-signed as the root user (the pre-issue-7 admin auth)
admin_sig() {
	curl -s -o "$tmp/admin.out" --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user "$CAIRN_ROOT_USER:$CAIRN_ROOT_PASSWORD" -X "$1" -w '%{http_code}' "http://$api$2"
}
# cli ARGS...: the cairn CLI against this run's server
cli() { "$cairn_bin" "$@" --endpoint "http://$api"; }
attach_url() {
	cli volume attach "$1" --json >"$tmp/attach.json" || return 1
	$py "$report" --get "$tmp/attach.json" url
}

# phys TARGET TEST: the bytes each side keeps on disk for what it holds
phys() {
	local t=$1 test=$2 store meta
	settle_on "$t"
	if [ "$t" = glance ]; then
		store=$(du -s -B1 "$tmp/glance/images" | cut -f1)
		meta=$(du -c -B1 "$tmp/glance"/glance.sqlite* | tail -1 | cut -f1)
		record glance "$test" "{\"store\":$store,\"meta\":$meta,\"total\":$((store + meta))}"
		return 0
	fi
	# cairn: stripe units on every device (parity included) + the LMDB file
	local code mdb
	code=$(admin_sig GET /admin/v1/pool/stats)
	[ "$code" = 200 ] || { fail cairn "$test" "pool stats: HTTP $code"; return 1; }
	mdb=$(find "$tmp/cairn/data" -name data.mdb | head -1)
	meta=$([ -n "$mdb" ] && stat -c %s "$mdb" || echo 0)
	record cairn "$test" "$(jq -c --argjson m "$meta" '.pool | {store: .physical_bytes, meta: $m,
		total: (.physical_bytes + $m), logical: .logical_bytes, unique: .unique_bytes,
		stored: .stored_bytes, meta_used: .meta_used_bytes}' "$tmp/admin.out")"
}

# ensure_images: the six VM images in the cache folder, built when one is missing
ensure_images() {
	local n missing=0
	for n in debian12-base debian12-ssh debian12-web; do
		[ -f "$images/$n.raw" ] && [ -f "$images/$n.qcow2" ] || missing=1
	done
	[ $missing = 0 ] && return 0
	local mk=$root/../shared/tools/make-vm-images.sh
	[ -x "$mk" ] || mk=$(cd "$root/.." && pwd)/shared/tools/make-vm-images.sh
	say "VM images missing in $images: building them with $mk (a few minutes)"
	mkdir -p "$images"
	bash "$mk" "$images" >&2 || { say "make-vm-images.sh failed"; return 1; }
}

# ensure_big: debian12-base grown to GLANCE_BIG (sparse) with 16 MiB of data at its end
big_img=""
ensure_big() {
	big_img=$images/debian12-base-$big.raw
	[ -f "$big_img" ] && [ "$(stat -c %s "$big_img")" = "$(bytes "$big")" ] && return 0
	say "making $big_img"
	rm -f "$big_img.tmp"
	cp --sparse=always "$images/debian12-base.raw" "$big_img.tmp" &&
		truncate -s "$big" "$big_img.tmp" &&
		head -c 16M /dev/urandom | dd of="$big_img.tmp" bs=1M seek=$(($(bytes "$big") / 1048576 - 16)) \
			conv=notrunc status=none &&
		mv "$big_img.tmp" "$big_img"
}

# start_glance / start_cairn_node: each side up; set url, tok, pgid
start_glance() {
	local port
	port=$(free_ports 1) || { say "glance: no free port"; return 1; }
	say "glance: Debian's glance-api on 127.0.0.1:$port (bench/glance/setup.sh)"
	mkdir -p "$tmp/glance"
	if ! "$here/glance/setup.sh" "$tmp/glance" "$port"; then
		say "glance failed to start; its side is skipped"
		echo "glance did not start" >>"$tmp/notes"
		return 1
	fi
	url[glance]=http://127.0.0.1:$port
	tok[glance]=glance-takes-any-token
	pgid[glance]=$(cat "$tmp/glance/pid")
	srv_pgids=${pgid[glance]}
	check_loopback glance
	say "glance: $(glance-api --version 2>&1 | tail -1) up"
}
cairn_up=0 registry=0
start_cairn_node() {
	cairn_usable || return 1
	local base extra=() code
	base=$(free_ports 4) || { say "cairn: no free ports"; return 1; }
	# (not `| grep -q`: with pipefail, grep's early exit kills the writer with SIGPIPE)
	if [[ $("$cairn_bin" serve --help 2>&1) == *--registry-listen* ]]; then
		registry=1
		extra=(--registry-listen "127.0.0.1:$((base + 3))")
	else
		say "cairn has no registry yet (no --registry-listen): only its NBD volumes are used"
		echo "cairn binary has no --registry-listen: its Glance side was not measured" >>"$tmp/notes"
	fi
	mkdir -p "$tmp/cairn"
	start_cairn "$tmp/cairn" "$base" --nbd-listen "127.0.0.1:$((base + 2))" "${extra[@]}" ||
		return 1
	cairn_up=1
	api=127.0.0.1:$((base + 1))
	pgid[cairn]=$cairn_pid
	grep -m1 'cairn ready' "$tmp/cairn/log" >&2
	check_loopback cairn
	[ $registry = 1 ] || return 0
	url[cairn]=http://127.0.0.1:$((base + 3))
	tok[cairn]=$CAIRN_ADMIN_TOKEN
	for _ in $(seq 100); do
		code=$(curl -s -o /dev/null -w '%{http_code}' "${url[cairn]}/") || true
		[ "$code" = 300 ] || [ "$code" = 200 ] && return 0
		sleep 0.1
	done
	say "cairn's Glance API does not answer on ${url[cairn]} (GET / -> $code)"
	registry=0
}
# sides: the targets whose Glance API is up
sides() {
	has glance && [ -n "${url[glance]:-}" ] && echo glance
	has cairn && [ $registry = 1 ] && echo cairn
}

declare -A img_id # "TARGET NAME" -> image id
step_upload() {
	local kind=$1 n t id
	for n in debian12-base debian12-ssh debian12-web; do
		for t in $(sides); do
			id=$(upload "$t" "upload-$kind-$n" "$images/$n.$kind" "$kind") && img_id[$t $n.$kind]=$id
		done
	done
	for t in $(sides); do
		phys "$t" "$([ "$kind" = raw ] && echo phys-raw || echo phys-all)"
	done
}

# vol_timed TAG BODY: POST /admin/v1/volumes timed, recorded as "cairn TAG"
vol_timed() {
	local tag=$1 r code l
	l=$(load1)
	r=$(admin POST /admin/v1/volumes "$2")
	code=${r%% *}
	say "  cairn $1: POST /admin/v1/volumes $2 -> $r (HTTP, total ms, server ms)"
	case $code in
	201) ;;
	*) fail cairn "$1" "HTTP $code: $(head -c 200 "$tmp/admin.out" | tr '\n' ' ')"; return 1 ;;
	esac
	set -- $r
	record cairn "$tag" "{\"total_ms\":$2,\"server_ms\":$3,\"load\":$l}"
}

# from_image SIZE-TAG FILE: cairn's volume-from-image timings on the uploaded image, and the
# volume read back over NBD
from_image() {
	local s=$1 f=$2 id=${img_id[cairn $1]:-} i t0 u
	[ -n "$id" ] || { fail cairn "vol-$s" "no image uploaded"; return 1; }
	record cairn "image-$s" "{\"bytes\":$(stat -c %s "$f"),\"id\":\"$id\"}"
	settle_on cairn
	local made=0
	for i in $(seq "$vol_reps"); do
		vol_timed "vol-$s" "{\"name\":\"img-$s-$i\",\"image\":\"$id\"}" && made=$((made + 1))
	done
	t0=$(now_ns)
	if cli volume create "img-$s-cli" --from-image "$id" >/dev/null 2>"$tmp/cli.err"; then
		record cairn "cli-vol-$s" "{\"total_ms\":$(ms_since "$t0"),\"load\":$(load1)}"
	else
		fail cairn "cli-vol-$s" "cairn volume create --from-image: $(head -c 200 "$tmp/cli.err" | tr '\n' ' ')"
	fi
	if [ $made = 0 ]; then
		: # nothing to read back
	elif u=$(attach_url "img-$s-1"); then
		t0=$(now_ns)
		if qemu-img compare -q -f raw -F raw "$f" "$u" 2>"$tmp/cmp.err"; then
			record cairn "compare-$s" "{\"secs\":$(awk -v m="$(ms_since "$t0")" 'BEGIN { printf "%.1f", m / 1000 }')}"
		else
			fail cairn "compare-$s" "qemu-img compare: $(head -c 200 "$tmp/cmp.err" | tr '\n' ' ')"
		fi
		cli volume detach "img-$s-1" --force >/dev/null 2>&1
	else
		fail cairn "compare-$s" "attach failed"
	fi
	for i in $(seq "$vol_reps") cli; do cli volume delete "img-$s-$i" --force >/dev/null 2>&1; done
}

# cinder TARGET SIZE-TAG: download the image from TARGET's Glance API into a file, then write it
# into a fresh cairn volume over NBD with qemu-img (what Cinder does without a shared backend)
cinder() {
	local t=$1 s=$2 id=${img_id[$1 $2]:-} t0 t1 dl u sz v="cinder-$1-$2" j
	[ -n "$id" ] || { fail "$t" "cinder-$s" "no image uploaded"; return 1; }
	dl=$tmp/download.raw
	settle_on "$t"
	say "$t cinder-$s: glance image-download, then qemu-img convert into a cairn volume"
	t0=$(now_ns)
	if ! gcli "$t" image-download --file "$dl" "$id" 2>"$tmp/gcli.err"; then
		fail "$t" "cinder-$s" "image-download: $(tail -c 200 "$tmp/gcli.err" | tr '\n' ' ')"
		rm -f "$dl"
		return 1
	fi
	t1=$(now_ns)
	sz=$(stat -c %s "$dl")
	j="\"bytes\":$sz,\"download_s\":$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
	if [ $cairn_up = 1 ] && cli volume create "$v" "$sz" >/dev/null 2>&1 && u=$(attach_url "$v"); then
		local t2
		t2=$(now_ns)
		if qemu-img convert -n -f raw -O raw "$dl" "$u" 2>"$tmp/conv.err"; then
			local t3
			t3=$(now_ns)
			j="$j,\"write_s\":$(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
			j="$j,\"total_s\":$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN { printf "%.2f", (b - a + d - c) / 1e9 }')"
		else
			j="$j,\"error\":\"qemu-img convert: $(head -c 200 "$tmp/conv.err" | tr '\n"\\' ' _/')\""
		fi
		cli volume detach "$v" --force >/dev/null 2>&1
		cli volume delete "$v" --force >/dev/null 2>&1
	else
		j="$j,\"total_s\":$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'),\"note\":\"no cairn volume to write into\""
	fi
	rm -f "$dl"
	record "$t" "cinder-$s" "{$j,\"load\":$(load1)}"
}

step_volume() {
	local t id
	ensure_big || { say "cannot make the $big image"; return 1; }
	for t in $(sides); do
		# the 1 GiB image is debian12-base.raw, uploaded by the upload step or now
		if [ -z "${img_id[$t debian12-base.raw]:-}" ]; then
			id=$(upload "$t" upload-raw-debian12-base "$images/debian12-base.raw" raw) &&
				img_id[$t debian12-base.raw]=$id
		fi
		img_id[$t 1g]=${img_id[$t debian12-base.raw]:-}
		id=$(upload "$t" "upload-big" "$big_img" raw) && img_id[$t big]=$id
	done
	if [ $registry = 1 ] && has cairn; then
		from_image 1g "$images/debian12-base.raw"
		from_image big "$big_img"
	fi
	if [ -n "${url[glance]:-}" ]; then
		cinder glance 1g
		cinder glance big
	fi
	# the big images go: the list step and the disk do not need them
	for t in $(sides); do
		[ -n "${img_id[$t big]:-}" ] && gcli "$t" image-delete "${img_id[$t big]}" >/dev/null 2>&1
	done
}

step_list() {
	local t r i
	for t in $(sides); do
		settle_on "$t"
		say "$t: making $list_n image records (POST /v2/images, 2 connections)"
		r=$($py "$report" --create "${url[$t]}" "${tok[$t]}" "$list_n" list- 2) ||
			r="{\"error\":\"the client failed\"}"
		record "$t" create "$r"
	done
	for i in $(seq "$walks"); do
		for t in $(sides); do
			settle_on "$t"
			say "$t: walk $i (limit=$page)"
			r=$($py "$report" --walk "${url[$t]}" "${tok[$t]}" "$page" 2>"$tmp/walk.err") ||
				r="{\"error\":\"the client failed: $(tail -c 150 "$tmp/walk.err" | tr '\n"\\' ' _/')\"}"
			record "$t" walk "${r%\}},\"load\":$(load1)}"
		done
	done
}

for tool in glance qemu-img jq curl numfmt; do
	command -v $tool >/dev/null || { say "$tool is missing (apt-get install python3-glanceclient qemu-utils jq curl)"; exit 1; }
done
mkdir -p "$out" "${BENCH_TMP:-/var/tmp}"
tmp=$(mktemp -d "${BENCH_TMP:-/var/tmp}/cairn-glance.XXXXXX")
chmod 755 "$tmp"
results=$tmp/results.txt
: >"$results"
: >"$tmp/notes"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$SECONDS

ensure_images || exit 1
has glance && start_glance
if has cairn || want volume; then
	start_cairn_node
fi
[ -n "$(sides)" ] || { say "neither side is up"; exit 1; }

want upload && step_upload raw
want qcow2 && step_upload qcow2
want volume && step_volume
want list && step_list

srv_pgids=""
"$here/glance/stop.sh" "$tmp/glance" >/dev/null 2>&1
if [ $cairn_up = 1 ]; then
	stop_cairn
	if grep -qiE 'error|assert|sanitizer' "$tmp/cairn/log"; then
		say "cairn log has errors (last lines):"
		grep -iE 'error|assert|sanitizer' "$tmp/cairn/log" | tail -5 >&2
	fi
fi

cp "$results" "$out/glance-results.txt"
{
	echo "Run: $started, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/{print $2}') GiB, commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null), $(dpkg-query -W -f='glance-api ${Version}' glance-api 2>/dev/null), $(dpkg-query -W -f='python3-glanceclient ${Version}' python3-glanceclient 2>/dev/null)"
	echo "Load average (1/5/15 min) at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "Settings: GLANCE_TARGETS=\"$targets\" GLANCE_BIG=$big GLANCE_VOL_REPS=$vol_reps GLANCE_LIST_N=$list_n GLANCE_PAGE=$page GLANCE_WALKS=$walks; steps:$steps; $((SECONDS - t_start)) s"
	sed 's/^/Note: /' "$tmp/notes"
	echo
	$py "$report" "$results"
} | tee "$out/glance-report.md"
exit 0
