#!/bin/bash
# LABELS: registry nbd
# TIMEOUT: 300
# 244-volume-from-image: volumes made from images read back as the images' raw
# bytes over NBD (issue 7, "Done when"). A raw image and a qcow2 image are made
# at run time with qemu-img/qemu-io (known patterns, holes between them),
# uploaded with the glance CLI; `cairn volume create --from-image` makes a
# volume of each, attached and compared with `qemu-img compare` over NBD
# against the raw bytes (for qcow2: against `qemu-img convert -O raw` of it).
# Then: a write to the volume leaves the image unchanged (its download and a
# second volume from it); a volume bigger than the image reads zeroes past
# it; deleting the image while volumes exist keeps them readable; `cairn
# image create --from-volume` captures a volume as a new image; `cairn image
# df` lists the images; an unknown image, a queued image and an iso image are
# refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/reglib.sh"
requires /usr/bin/glance qemu-img qemu-io jq
requires_nbd_server
requires_registry
registry_start || finish
F=$T/files
mkdir -p "$F"
TOK=$(user_token alice)
[ -n "$TOK" ] || finish
MIB=1048576
md5() { md5sum <"$1" | cut -d' ' -f1; }

# ---- the images --------------------------------------------------------------------------------
qemu-img create -q -f raw "$F/r.raw" 16M
qemu-io -f raw -c 'write -P 0xa1 0 1M' -c 'write -P 0xb2 5M 512k' -c 'write -P 0xc3 3000 5000' \
	-c 'write -P 0xd4 15M 1M' "$F/r.raw" >/dev/null || fail "qemu-io on r.raw"
qemu-img create -q -f qcow2 "$F/q.qcow2" 24M
qemu-io -f qcow2 -c 'write -P 0x11 0 2M' -c 'write -P 0x22 7M 64k' -c 'write -P 0x33 12345 7000' \
	-c 'write -P 0x44 23M 1M' -c 'write -z 1M 64k' "$F/q.qcow2" >/dev/null || fail "qemu-io on q.qcow2"
qemu-img convert -f qcow2 -O raw "$F/q.qcow2" "$F/q.raw"
expect_eq "q.raw is the qcow2's 24M virtual size" "$(stat -c %s "$F/q.raw")" $((24 * MIB))

create_img() { # create_img NAME FORMAT FILE -> image id
	gfield "$(gl "$TOK" image-create --name "$1" --disk-format "$2" --container-format bare --file "$3" 2>&1)" id
}
ID_R=$(create_img img-raw raw "$F/r.raw")
ID_Q=$(create_img img-qcow2 qcow2 "$F/q.qcow2")
[ -n "$ID_R" ] && [ -n "$ID_Q" ] && echo "ok: glance image-create of the raw and the qcow2 image" || {
	fail "image-create: raw '$ID_R' qcow2 '$ID_Q'"
	finish
}
expect_eq "raw image: active" "$(gfield "$(gl "$TOK" image-show "$ID_R")" status)" active
expect_eq "qcow2 image: active, virtual_size 24M" "$(gfield "$(gl "$TOK" image-show "$ID_Q")" virtual_size)" $((24 * MIB))
expect_eq "qcow2 image: checksum of the qcow2 file" "$(gfield "$(gl "$TOK" image-show "$ID_Q")" checksum)" "$(md5 "$F/q.qcow2")"

# ---- volumes from them, compared over NBD -------------------------------------------------------
check "cairn volume create vr --from-image (raw)" cairn_cli volume create vr --from-image "$ID_R"
check "cairn volume create vq --from-image (qcow2)" cairn_cli volume create vq --from-image "$ID_Q"
expect_eq "vr's size is the image's" "$(cairn_cli volume show vr --json | jq .size)" $((16 * MIB))
expect_eq "vq's size is the qcow2's virtual size" "$(cairn_cli volume show vq --json | jq .size)" $((24 * MIB))
vol_attach vr hv1 || finish
UR=$ATTACH_URL
vol_attach vq hv1 || finish
UQ=$ATTACH_URL
check "qemu-img compare: volume vr == r.raw" qemu-img compare -f raw -F raw "$F/r.raw" "$UR"
check "qemu-img compare: volume vq == qemu-img convert -O raw of q.qcow2" qemu-img compare -f raw -F raw "$F/q.raw" "$UQ"
out=$(qemu-io -f raw -c 'read -P 0xa1 0 3000' -c 'read -P 0xa1 8000 1040576' -c 'read -P 0xc3 3000 5000' -c 'read -P 0 2M 1M' "$UR" 2>&1)
[[ "$out" != *"verification failed"* ]] && [ -n "$out" ] && echo "ok: qemu-io reads the raw image's patterns and a hole" ||
	fail "qemu-io patterns on vr: $out"
out=$(qemu-io -f raw -c 'read -P 0x5a 0 64k' "$UR" 2>&1)
[[ "$out" == *"verification failed"* ]] && echo "ok: the pattern check can fail" || fail "a wrong pattern verified: $out"
cp "$F/r.raw" "$F/r.other"
printf 'X' | dd of="$F/r.other" bs=1 seek=$((9 * MIB)) conv=notrunc status=none
check_fails "qemu-img compare notices one changed byte (the comparison can fail)" qemu-img compare -f raw -F raw "$F/r.other" "$UR" &&
	echo "ok: qemu-img compare notices one changed byte"

# ---- writes to the volume leave the image alone -------------------------------------------------------
out=$(qemu-io -f raw -c 'write -P 0xee 0 64k' -c 'write -P 0xef 9M 4k' -c 'flush' "$UR" 2>&1) || fail "write to vr: $out"
cp "$F/r.raw" "$F/r.mod"
qemu-io -f raw -c 'write -P 0xee 0 64k' -c 'write -P 0xef 9M 4k' "$F/r.mod" >/dev/null
check "the volume holds its writes (compare with r.raw + the same writes)" qemu-img compare -f raw -F raw "$F/r.mod" "$UR"
check "glance image-download of the raw image after the volume's writes" gl "$TOK" image-download "$ID_R" --file "$F/r.dl"
expect_eq "the image's bytes are unchanged" "$(md5 "$F/r.dl")" "$(md5 "$F/r.raw")"
check "a second volume from the same image" cairn_cli volume create vr2 --from-image "$ID_R"
vol_attach vr2 hv1 || finish
UR2=$ATTACH_URL
check "the second volume reads the image's bytes, not the first volume's writes" qemu-img compare -f raw -F raw "$F/r.raw" "$UR2"
out=$(qemu-io -f raw -c 'write -P 0x77 20M 64k' "$UQ" 2>&1) || fail "write to vq: $out"
check "glance image-download of the qcow2 image" gl "$TOK" image-download "$ID_Q" --file "$F/q.dl"
expect_eq "the qcow2 image's bytes are unchanged" "$(md5 "$F/q.dl")" "$(md5 "$F/q.qcow2")"

# ---- a bigger volume; refusals -------------------------------------------------------------------------
check "cairn volume create vbig 32M --from-image (raw)" cairn_cli volume create vbig 32M --from-image "$ID_R"
vol_attach vbig hv1 || finish
UB=$ATTACH_URL
cp "$F/r.raw" "$F/r.32"
truncate -s 32M "$F/r.32"
check "the bigger volume: the image, then zeroes" qemu-img compare -f raw -F raw "$F/r.32" "$UB"
out=$(cairn_cli volume create vx --from-image "$(cat /proc/sys/kernel/random/uuid)" 2>&1)
[ $? -ne 0 ] && echo "ok: --from-image of an unknown image is refused" || fail "unknown image accepted: $out"
ID_QU=$(gfield "$(gl "$TOK" image-create --name queued --disk-format raw --container-format bare 2>&1)" id)
out=$(cairn_cli volume create vx --from-image "$ID_QU" 2>&1)
[ $? -ne 0 ] && echo "ok: --from-image of a queued image is refused" || fail "queued image accepted: $out"
head -c 100000 /dev/urandom >"$F/x.iso"
ID_ISO=$(create_img an-iso iso "$F/x.iso")
out=$(cairn_cli volume create vx --from-image "$ID_ISO" 2>&1)
[ $? -ne 0 ] && echo "ok: --from-image of an iso image is refused" || fail "iso image accepted: $out"
out=$(cairn_cli volume show vx 2>&1)
[ $? -ne 0 ] && echo "ok: no volume vx was left behind" || fail "vx exists after the refusals: $out"

# ---- image delete while volumes exist ----------------------------------------------------------------------
check "glance image-delete of the raw image (volumes vr, vr2, vbig use it)" gl "$TOK" image-delete "$ID_R"
check "glance image-delete of the qcow2 image (volume vq uses it)" gl "$TOK" image-delete "$ID_Q"
check "cairn gc after the deletes" cairn_cli gc
check "vr still reads (image + its writes)" qemu-img compare -f raw -F raw "$F/r.mod" "$UR"
check "vr2 still reads the deleted image's bytes" qemu-img compare -f raw -F raw "$F/r.raw" "$UR2"
check "vbig still reads the deleted image's bytes, then zeroes" qemu-img compare -f raw -F raw "$F/r.32" "$UB"
cp "$F/q.raw" "$F/q.mod"
qemu-io -f raw -c 'write -P 0x77 20M 64k' "$F/q.mod" >/dev/null
check "vq still reads (qcow2's raw view + its write)" qemu-img compare -f raw -F raw "$F/q.mod" "$UQ"
check "cairn fsck is clean with volumes on deleted images" cairn_cli fsck

# ---- image from a volume; image df -------------------------------------------------------------------------------
out=$(cairn_cli image create --from-volume vr --name from-vr --json 2>&1)
ID_V=$(jq -r .id <<<"$out" 2>/dev/null)
[ -n "$ID_V" ] && [ "$ID_V" != null ] && echo "ok: cairn image create --from-volume vr" || fail "image create --from-volume: $out"
check "glance image-download of the captured image" gl "$ADMIN_TOKEN" image-download "$ID_V" --file "$F/v.dl"
expect_eq "the captured image is vr's bytes" "$(md5 "$F/v.dl")" "$(md5 "$F/r.mod")"
out=$(cairn_cli image df 2>&1)
expect_contains "cairn image df lists the captured image" "$out" "$ID_V"
j=$(cairn_cli image df --json 2>&1)
expect_eq "cairn image df --json: the captured image's size" "$(jq --arg id "$ID_V" '.images[] | select(.id == $id) | .size' <<<"$j")" $((16 * MIB))
finish
