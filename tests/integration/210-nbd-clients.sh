#!/bin/bash
# LABELS: quick nbd
# TIMEOUT: 180
# 210-nbd-clients: cairn volumes driven by the real NBD clients (issue 6):
# qemu-img info/convert -n/compare/map, qemu-io write -P/read -P/discard/
# write -z, nbdinfo --size/--map/--can, nbdcopy in and out (multi-conn) with
# checksums, nbdsh reads/writes/flush/zero/block_status, fio's nbd engine with
# crc32c verify (and a verify that must catch a corrupted block), a clone of a
# snapshot reading its parent's bytes, TRIM on the clone (zeroes; the parent
# unchanged; no data written), and no token / a bad token refused.
. "$(dirname "$0")/lib.sh"
requires qemu-img qemu-io nbdinfo nbdcopy fio jq
"$PY" -c 'import nbd' 2>/dev/null || {
	echo "SKIP: requires python3-libnbd"
	exit 77
}
requires_nbd_server
cairn_start || finish

MIB=1048576
K64=65536
F=$T/files
mkdir -p "$F"

# nbdsh with Debian's python (the nbdsh wrapper runs whatever python3 is first on PATH)
nbdsh_() { "$PY" -m nbd "$@"; }
# nbd_sha URL OFF LEN: sha256 of LEN bytes at OFF
nbd_sha() {
	nbdsh_ -u "$1" -c "import hashlib
d = hashlib.sha256()
for o in range($2, $2 + $3, 4 << 20):
    d.update(h.pread(min(4 << 20, $2 + $3 - o), o))
print(d.hexdigest())"
}
file_sha() { dd if="$1" bs=64k skip=$(($2 / K64)) count=$(($3 / K64)) status=none | sha256sum | cut -d' ' -f1; }
vol_json() { cairn_cli volume show "$1" --json 2>/dev/null; }
# map_data_bytes URL: bytes qemu-img map reports as data
map_data_bytes() { qemu-img map --output=json -f raw "$1" | jq '[.[] | select(.data) | .length] | add // 0'; }

# ---- a volume, attached ---------------------------------------------------
check "volume create a 64M" cairn_cli volume create a 64M
vol_attach a hv1 || finish
UA=$ATTACH_URL
expect_eq "attach url names the NBD port" "$UA" "nbd://127.0.0.1:$NBD_PORT/$ATTACH_EXPORT"
expect_eq "qemu-img info: virtual size" "$(qemu-img info --output=json -f raw "$UA" | jq '."virtual-size"')" $((64 * MIB))
expect_eq "nbdinfo --size" "$(nbdinfo --size "$UA")" $((64 * MIB))
check "nbdinfo --can multi-conn (a FLUSH covers every connection)" nbdinfo --can multi-conn "$UA"
check "nbdinfo --can flush" nbdinfo --can flush "$UA"
check "nbdinfo --can trim" nbdinfo --can trim "$UA"
check "nbdinfo --can zero" nbdinfo --can zero "$UA"
check "nbdinfo --can fua" nbdinfo --can fua "$UA"
expect_eq "nbdinfo --json: base:allocation offered" "$(nbdinfo --json "$UA" | jq -r '.exports[0].contexts | index("base:allocation") != null')" true
expect_eq "a fresh volume maps as one hole" "$(map_data_bytes "$UA")" 0

# ---- qemu-img convert -n / compare / map -----------------------------------
truncate -s $((64 * MIB)) "$F/src.img"
head -c $((4 * MIB)) /dev/urandom | dd of="$F/src.img" conv=notrunc status=none
head -c $((1 * MIB)) /dev/urandom | dd of="$F/src.img" bs=1M seek=30 conv=notrunc status=none
yes cairn | head -c $K64 | dd of="$F/src.img" bs=64k seek=$((63 * 16)) conv=notrunc status=none
SRC_DATA=$((5 * MIB + K64))
check "qemu-img convert -n src.img -> the volume" qemu-img convert -n -f raw -O raw "$F/src.img" "$UA"
check "qemu-img compare src.img with the volume" qemu-img compare -f raw -F raw "$F/src.img" "$UA"
wb=$(vol_json a | jq .written_bytes)
if [ -n "$wb" ] && [ "$wb" -ge "$SRC_DATA" ] && [ "$wb" -le $((SRC_DATA + MIB)) ]; then
	echo "ok: convert's target zeroing was metadata: written_bytes $wb ~ source data $SRC_DATA"
else
	fail "written_bytes after convert -n is '$wb', want ~$SRC_DATA (the zeroing of the target must not write data)"
fi
expect_eq "qemu-img map: data where the source had data" "$(map_data_bytes "$UA")" $SRC_DATA
m=$(qemu-img map --output=json -f raw "$UA")
expect_eq "qemu-img map: [0, 4M) is data" "$(jq '[.[] | select(.data and .start <= 0 and .start + .length >= 4194304)] | length' <<<"$m")" 1
expect_eq "qemu-img map: 10M is a zero hole" "$(jq '[.[] | select((.data | not) and .zero and .start <= 10485760 and .start + .length > 10485760)] | length' <<<"$m")" 1
nm=$(nbdinfo --map "$UA")
expect_eq "nbdinfo --map: data bytes" "$(awk '$3 == 0 { s += $2 } END { print s + 0 }' <<<"$nm")" $SRC_DATA
expect_contains "nbdinfo --map: 30M..31M is data" "$nm" "$(printf '%10d  %10d    0  data' $((30 * MIB)) $MIB)"

# ---- qemu-io ---------------------------------------------------------------
qio() { qemu-io -f raw "$@" "$UA" 2>&1; }
out=$(qio -c 'write -P 0xab 8M 64k' -c 'read -P 0xab 8M 64k' -c 'write -P 0x5c 8392704 3000' -c 'read -P 0x5c 8392704 3000' -c 'read -P 0xab 8M 4096')
rc=$?
if [ $rc -eq 0 ] && [[ "$out" != *"verification failed"* ]] && [[ "$out" == *"read 3000/3000"* ]]; then
	echo "ok: qemu-io write -P / read -P (aligned and unaligned)"
else
	fail "qemu-io write/read -P (exit $rc): $out"
fi
out=$(qio -c 'read -P 0xcd 8M 64k')
[[ "$out" == *"verification failed"* ]] && echo "ok: qemu-io read -P with the wrong pattern fails (the check can fail)" ||
	fail "qemu-io read -P 0xcd found 0xcd where 0xab was written: $out"
out=$(qio -c 'discard 8M 64k' -c 'read -P 0 8M 64k')
rc=$?
[ $rc -eq 0 ] && [[ "$out" != *"verification failed"* ]] && echo "ok: qemu-io discard then read zeroes" ||
	fail "qemu-io discard/read -P 0 (exit $rc): $out"
out=$(qio -c 'write -z 0 128k' -c 'read -P 0 0 128k' -c 'write -z -u 30M 64k' -c 'read -P 0 30M 64k' -c 'write -z 40000 5000' -c 'read -P 0 40000 5000')
rc=$?
[ $rc -eq 0 ] && [[ "$out" != *"verification failed"* ]] && echo "ok: qemu-io write -z (whole blocks, unmap, partial) reads zeroes" ||
	fail "qemu-io write -z (exit $rc): $out"
expect_eq "after the zeroes, the rest of the source is intact" "$(nbd_sha "$UA" $((1 * MIB)) $((3 * MIB)))" "$(file_sha "$F/src.img" $((1 * MIB)) $((3 * MIB)))"

# ---- nbdsh -------------------------------------------------------------------
out=$(nbdsh_ --base-allocation -u "$UA" -c '
M = 2**20
h.pwrite(b"x" * 4096, 12 * M)
assert h.pread(4096, 12 * M) == b"x" * 4096, "read after write"
h.pwrite(b"y" * 70000, 12 * M + 4096, nbd.CMD_FLAG_FUA)
h.flush()
assert h.pread(70000, 12 * M + 4096) == b"y" * 70000, "read after FUA write"
h.zero(M, 13 * M)
assert h.pread(M, 13 * M) == bytes(M), "zero"
ext = {}
def cb(meta, off, entries, err):
    ext.setdefault(meta, []).append((off, list(entries)))
    return 0
h.block_status(M, 13 * M, cb)
e = ext["base:allocation"][0][1]
assert e[1] & 2 and e[0] >= 65536, "zeroed range: zero flag, got %r" % e[:4]
ext.clear()
h.block_status(65536, 12 * M, cb)
e = ext["base:allocation"][0][1]
assert e[1] == 0, "written block: data, got %r" % e[:4]
ext.clear()
h.block_status(M, 50 * M, cb)
e = ext["base:allocation"][0][1]
assert e[1] & 3 == 3, "unwritten: hole+zero, got %r" % e[:4]
try:
    h.pread(4096, 64 * M)
    raise AssertionError("read past the end succeeded")
except nbd.Error:
    pass
print("nbdsh-ok")
')
expect_contains "nbdsh: pwrite/pread/FUA/flush/zero/block_status" "$out" "nbdsh-ok"

# ---- nbdcopy in and out ------------------------------------------------------
head -c $((48 * MIB)) /dev/urandom >"$F/big.img"
truncate -s $((56 * MIB)) "$F/big.img" # a hole at the end
check "volume create b 56M" cairn_cli volume create b 56M
vol_attach b hv1 || finish
UB=$ATTACH_URL
check "nbdcopy big.img -> volume (4 connections, 16 requests each)" nbdcopy --connections=4 --requests=16 "$F/big.img" "$UB"
check "nbdcopy volume -> out.img" nbdcopy --connections=4 "$UB" "$F/out.img"
expect_eq "nbdcopy round trip: sha256" "$(sha256sum <"$F/out.img")" "$(sha256sum <"$F/big.img")"
expect_eq "volume b's sha256 read by nbdsh" "$(nbd_sha "$UB" 0 $((56 * MIB)))" "$(sha256sum <"$F/big.img" | cut -d' ' -f1)"
expect_eq "nbdinfo --map: b's hole is not data" "$(nbdinfo --map "$UB" | awk '$3 == 0 { s += $2 } END { print s + 0 }')" $((48 * MIB))

# ---- fio's nbd engine --------------------------------------------------------
check "volume create f 32M" cairn_cli volume create f 32M
vol_attach f hv1 || finish
UF=$ATTACH_URL
FIO=(fio --name=nbdv --ioengine=nbd --uri="$UF" --size=16M --verify=crc32c --verify_fatal=1 --output-format=terse)
check "fio randwrite 4k QD16 then verify (crc32c)" "${FIO[@]}" --rw=randwrite --bs=4k --iodepth=16 --do_verify=1
check "fio verify_only of that data on a new connection" "${FIO[@]}" --rw=randwrite --bs=4k --iodepth=16 --verify_only=1
check "fio write 64k..1M mixed sizes, verify" "${FIO[@]}" --offset=16M --rw=randwrite --bsrange=64k-1m --iodepth=8 --do_verify=1
nbdsh_ -u "$UF" -c 'h.pwrite(b"z" * 4096, 4096 * 100); h.flush()'
check_fails "fio verify_only catches a block changed behind its back" "${FIO[@]}" --rw=randwrite --bs=4k --iodepth=16 --verify_only=1 &&
	echo "ok: fio verify_only catches a block changed behind its back"

# ---- snapshot, clone, TRIM on the clone ---------------------------------------
a_s1_data=$(nbdinfo --map "$UA" | awk '$3 == 0 { s += $2 } END { print s + 0 }')
check "snapshot create a s1" cairn_cli snapshot create a s1
check "save a@s1 with nbdcopy" nbdcopy "$UA" "$F/a-s1.img"
out=$(qio -c 'write -P 0x5a 0 64k' -c 'write -P 0x5b 30M 64k')
[ $? -eq 0 ] || fail "qemu-io write after the snapshot: $out"
check "volume clone c --from-snapshot a@s1" cairn_cli volume clone c --from-snapshot a@s1
expect_eq "clone c's parent" "$(vol_json c | jq -c .parent)" '{"volume":"a","snapshot":"s1"}'
vol_attach c hv1 || finish
UC=$ATTACH_URL
check "qemu-img compare: the clone reads a@s1's bytes" qemu-img compare -f raw -F raw "$F/a-s1.img" "$UC"
expect_eq "nbdinfo --map: the clone shows the parent's data as data" \
	"$(nbdinfo --map "$UC" | awk '$3 == 0 { s += $2 } END { print s + 0 }')" "$a_s1_data"
out=$(qemu-io -f raw -c 'discard 0 4M' -c 'read -P 0 0 4M' -c 'discard 30M 1M' -c 'read -P 0 30M 1M' "$UC" 2>&1)
rc=$?
[ $rc -eq 0 ] && [[ "$out" != *"verification failed"* ]] && echo "ok: TRIM on the clone reads zeroes, not the parent" ||
	fail "TRIM on the clone then read -P 0 (exit $rc): $out"
expect_eq "TRIM on the clone is metadata: written_bytes stays 0" "$(vol_json c | jq .written_bytes)" 0
expect_eq "the parent is unchanged by the clone's TRIM (64K..4M)" "$(nbd_sha "$UA" $K64 $((4 * MIB - K64)))" "$(file_sha "$F/a-s1.img" $K64 $((4 * MIB - K64)))"
out=$(qio -c 'read -P 0x5a 0 64k' -c 'read -P 0x5b 30M 64k')
[ $? -eq 0 ] && [[ "$out" != *"verification failed"* ]] && echo "ok: the parent keeps its post-snapshot writes" ||
	fail "parent after the clone's TRIM: $out"
out=$(qemu-io -f raw -c 'write -P 0x77 20M 4k' -c 'read -P 0x77 20M 4k' "$UC" 2>&1)
[ $? -eq 0 ] && [[ "$out" != *"verification failed"* ]] || fail "clone write: $out"
expect_eq "the clone's 4 KiB write copies up one 64 KiB block" "$(vol_json c | jq .written_bytes)" $K64
expect_eq "... and leaves the parent alone" "$(nbd_sha "$UA" $((20 * MIB)) $K64)" "$(file_sha "$F/a-s1.img" $((20 * MIB)) $K64)"

# ---- qemu-img create: a qcow2 image inside a volume --------------------------------
check "volume create q 64M" cairn_cli volume create q 64M
vol_attach q hv1 || finish
UQ=$ATTACH_URL
check "qemu-img create -f qcow2 inside the volume" qemu-img create -f qcow2 "$UQ" 32M
expect_eq "qemu-img info sees qcow2" "$(qemu-img info --output=json "$UQ" | jq -r .format)" qcow2
out=$(qemu-io -f qcow2 -c 'write -P 0x11 1M 64k' -c 'read -P 0x11 1M 64k' -c 'read -P 0 5M 64k' "$UQ" 2>&1)
[ $? -eq 0 ] && [[ "$out" != *"verification failed"* ]] && echo "ok: qemu-io through qcow2 in the volume" ||
	fail "qemu-io -f qcow2: $out"
check "qemu-img check of the qcow2 in the volume" qemu-img check -f qcow2 "$UQ"

# ---- QoS: a token bucket holds the client back --------------------------------------
# (lower bounds only: a slow machine makes the runs longer, never shorter)
check "volume qos q --iops 100" cairn_cli volume qos q --iops 100
t0=$(date +%s%N)
check "fio: 500 random 4k reads at --iops 100" fio --name=qos --ioengine=nbd --uri="$UQ" --rw=randread --bs=4k \
	--size=32M --number_ios=500 --iodepth=8 --output-format=terse
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "$ms" -ge 2000 ]; then
	echo "ok: 500 reads at 100 IOPS took ${ms} ms (>= 2 s: the limit holds, with up to 2 s of burst)"
else
	fail "500 reads at --iops 100 took only ${ms} ms: the IOPS limit is not applied"
fi
check "volume qos q --iops 0 --bps 4M" cairn_cli volume qos q --iops 0 --bps 4M
t0=$(date +%s%N)
check "fio: 20 MiB of 1M reads at --bps 4M" fio --name=qosb --ioengine=nbd --uri="$UQ" --rw=read --bs=1m \
	--size=20M --iodepth=4 --output-format=terse
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "$ms" -ge 2500 ]; then
	echo "ok: 20 MiB at 4 MiB/s took ${ms} ms (>= 2.5 s)"
else
	fail "20 MiB at --bps 4M took only ${ms} ms: the bandwidth limit is not applied"
fi
check "volume qos q --bps 0" cairn_cli volume qos q --bps 0

# ---- no token, bad token --------------------------------------------------------
base=nbd://127.0.0.1:$NBD_PORT
check_fails "nbdinfo without a token is refused" nbdinfo "$base/a"
check_fails "nbdinfo with a wrong token is refused" nbdinfo "$base/a@0123456789abcdef0123456789abcdef"
check_fails "nbdinfo with another volume's token is refused" nbdinfo "$base/a@${ATTACH_TOKEN}"
check_fails "qemu-img info with a wrong token is refused" qemu-img info -f raw "$base/a@0123456789abcdef0123456789abcdef"
check_fails "qemu-io with no export is refused" qemu-io -f raw -c 'read 0 4k' "$base/"
lst=$(nbdinfo --list --json "$base/" 2>/dev/null)
if [[ "$lst" == *"$ATTACH_TOKEN"* ]] || [[ "$lst" == *'"a@'* ]]; then
	fail "nbdinfo --list hands out an export with a token: $lst"
else
	echo "ok: nbdinfo --list hands out no tokens"
fi
check "after all of it, volume b still reads as big.img" qemu-img compare -f raw -F raw "$F/big.img" "$UB"
check "detach --force c" cairn_cli volume detach c --force
finish
