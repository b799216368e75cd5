#!/bin/bash
# LABELS: registry
# TIMEOUT: 300
# 240-glance-cli: the registry driven by Debian's glance CLI (python3-glanceclient,
# API v2, no Keystone: --os-image-url + --os-auth-token from `cairn token create`)
# (issue 7): explain (the schema it builds its options from), import-info,
# image-create with --file (streamed upload), --id, --property, --tags,
# --protected, --visibility; image-show; image-list with every filter option
# (--property-filter, --owner, --visibility, --member-status, --checksum,
# --hash, --tag, --limit, --page-size over the next links, --sort-key/--sort-dir,
# --sort); image-update (--name, --property, --remove-property, --min-ram);
# image-download (verifies os_hash_value) and its bytes; image-upload;
# image-tag-update/-delete; image-deactivate/-reactivate; member-create/
# -update/-list/-delete between two users; image-stage + image-import
# glance-direct; image-create-via-import; image-import web-download from a
# local http.server; the errors it shows (404 unknown id, 409 duplicate id,
# 403 protected delete, 401 bad token); image-delete.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/reglib.sh"
requires /usr/bin/glance jq curl
requires_registry
WEBDIR=$T/web
mkdir -p "$WEBDIR"
printf '[registry]\nweb_download_allow = 127.0.0.1\n' >"$T/cairn.ini"
registry_start --config "$T/cairn.ini" || finish
F=$T/files
mkdir -p "$F"
ALICE=$(user_token alice)
BOB=$(user_token bob)
[ -n "$ALICE" ] && [ -n "$BOB" ] || finish

# ---- schema, import-info --------------------------------------------------------------
out=$(gl "$ALICE" explain image 2>&1)
expect_contains "glance explain image: disk_format" "$out" "disk_format"
expect_contains "glance explain image: cairn_unique_bytes" "$out" "cairn_unique_bytes"
[[ "$out" != *"stores"* ]] && echo "ok: explain image: no stores property" || fail "explain image shows 'stores': $out"
out=$(gl "$ALICE" import-info 2>&1 | tr -d ' |\n')   # the table wraps long values
expect_contains "glance import-info: glance-direct" "$out" "glance-direct"
expect_contains "glance import-info: web-download" "$out" "web-download"
expect_contains "glance import-info: s3-object" "$out" "s3-object"

# ---- create with --file (streamed), show, download -----------------------------------------
head -c $((3 * 1048576 + 777)) /dev/urandom >"$F/a.raw"
MD5A=$(md5sum <"$F/a.raw" | cut -d' ' -f1)
SHAA=$(sha512sum <"$F/a.raw" | cut -d' ' -f1)
ID_A=$(cat /proc/sys/kernel/random/uuid)
out=$(gl "$ALICE" image-create --id "$ID_A" --name cli-a --disk-format raw --container-format bare \
	--file "$F/a.raw" --property os_distro=debian --property suite=cli --tags t1 t2 --min-ram 128 2>&1)
rc=$?
[ $rc -eq 0 ] && echo "ok: glance image-create --file" || fail "glance image-create --file (exit $rc): $out"
expect_eq "image-create: the id chosen" "$(gfield "$out" id)" "$ID_A"
expect_eq "image-create: active" "$(gfield "$out" status)" active
expect_eq "image-create: checksum" "$(gfield "$out" checksum)" "$MD5A"
expect_eq "image-create: os_hash_value" "$(gfield "$out" os_hash_value)" "$SHAA"
expect_eq "image-create: size" "$(gfield "$out" size)" $((3 * 1048576 + 777))
expect_eq "image-create: owner" "$(gfield "$out" owner)" alice
expect_eq "image-create: property" "$(gfield "$out" os_distro)" debian
expect_contains "image-create: tags" "$(gfield "$out" tags)" "t1"
expect_eq "image-create: min_ram" "$(gfield "$out" min_ram)" 128
out=$(gl "$ALICE" image-show "$ID_A" 2>&1)
expect_eq "image-show: name" "$(gfield "$out" name)" cli-a
expect_eq "image-show: virtual_size" "$(gfield "$out" virtual_size)" $((3 * 1048576 + 777))
[[ "$(gfield "$out" cairn_unique_bytes)" =~ ^[0-9]+$ ]] && echo "ok: image-show: cairn_unique_bytes" ||
	fail "image-show: cairn_unique_bytes not an integer: $out"
check "glance image-download --file" gl "$ALICE" image-download "$ID_A" --file "$F/a.out"
expect_eq "image-download: the bytes" "$(md5sum <"$F/a.out" | cut -d' ' -f1)" "$MD5A"
gl "$ALICE" image-download "$ID_A" >"$F/a.stdout" 2>/dev/null
expect_eq "image-download to stdout" "$(md5sum <"$F/a.stdout" | cut -d' ' -f1)" "$MD5A"
out=$(gl "$ALICE" image-create --id "$ID_A" --name dup 2>&1)
[ $? -ne 0 ] && [[ "$out" == *409* || "$out" == *onflict* ]] && echo "ok: a duplicate id is refused (409)" ||
	fail "duplicate id: $out"

# ---- more images for the list ----------------------------------------------------------------
head -c 1048576 /dev/urandom >"$F/b.raw"
ID_B=$(gfield "$(gl "$ALICE" image-create --name cli-b --disk-format raw --container-format bare \
	--file "$F/b.raw" --property os_distro=ubuntu --property suite=cli --tags t1 2>&1)" id)
ID_C=$(gfield "$(gl "$ALICE" image-create --name cli-c --disk-format iso --container-format bare \
	--property suite=cli 2>&1)" id)
[ -n "$ID_B" ] && [ -n "$ID_C" ] && echo "ok: created cli-b (with data) and cli-c (queued)" || fail "create cli-b/cli-c"
ids() { gl "$ALICE" image-list --property-filter suite=cli "$@" 2>&1 | awk -F'|' 'NR > 3 && NF > 2 { gsub(/ /, "", $3); print $3 }' | grep -v '^$' | tr '\n' ' '; }
expect_eq "image-list --property-filter suite=cli" "$(ids --sort-key name --sort-dir asc)" "cli-a cli-b cli-c "
expect_eq "image-list --sort-key name --sort-dir desc" "$(ids --sort-key name --sort-dir desc)" "cli-c cli-b cli-a "
expect_eq "image-list --sort name:asc" "$(ids --sort name:asc)" "cli-a cli-b cli-c "
expect_eq "image-list --sort disk_format:asc,name:desc" "$(ids --sort disk_format:asc,name:desc)" "cli-c cli-b cli-a "
expect_eq "image-list --property-filter os_distro=debian" "$(ids --property-filter os_distro=debian)" "cli-a "
expect_eq "image-list --tag t1 --tag t2" "$(ids --tag t1 --tag t2)" "cli-a "
expect_eq "image-list --tag t1" "$(ids --tag t1 --sort-key name --sort-dir asc)" "cli-a cli-b "
expect_eq "image-list --checksum" "$(ids --checksum "$MD5A")" "cli-a "
expect_eq "image-list --hash" "$(ids --hash "$SHAA")" "cli-a "
expect_eq "image-list --owner alice" "$(ids --owner alice --sort-key name --sort-dir asc)" "cli-a cli-b cli-c "
expect_eq "image-list --owner bob" "$(ids --owner bob)" ""
expect_eq "image-list --visibility shared" "$(ids --visibility shared --sort-key name --sort-dir asc)" "cli-a cli-b cli-c "
expect_eq "image-list --visibility private" "$(ids --visibility private)" ""
expect_eq "image-list --page-size 1 (follows next links)" "$(ids --page-size 1 --sort-key name --sort-dir asc)" "cli-a cli-b cli-c "
expect_eq "image-list --limit 2" "$(ids --limit 2 --sort-key name --sort-dir asc)" "cli-a cli-b "
expect_eq "image-list --limit 2 --page-size 1" "$(ids --limit 2 --page-size 1 --sort-key name --sort-dir desc)" "cli-c cli-b "
out=$(gl "$ALICE" image-list --sort-key bogus 2>&1)
[ $? -ne 0 ] && echo "ok: image-list --sort-key bogus is refused (by the CLI's schema choices)" || fail "sort-key bogus: $out"

# ---- update, tags ----------------------------------------------------------------------------------
out=$(gl "$ALICE" image-update "$ID_A" --name cli-a2 --property hw_disk_bus=virtio --remove-property os_distro --min-ram 256 2>&1)
rc=$?
[ $rc -eq 0 ] && echo "ok: glance image-update" || fail "image-update (exit $rc): $out"
expect_eq "image-update: name" "$(gfield "$out" name)" cli-a2
expect_eq "image-update: new property" "$(gfield "$out" hw_disk_bus)" virtio
expect_eq "image-update: removed property" "$(gfield "$out" os_distro)" ""
expect_eq "image-update: min_ram" "$(gfield "$out" min_ram)" 256
check "image-tag-update" gl "$ALICE" image-tag-update "$ID_A" newtag
expect_contains "the tag shows" "$(gfield "$(gl "$ALICE" image-show "$ID_A")" tags)" newtag
check "image-tag-delete" gl "$ALICE" image-tag-delete "$ID_A" newtag
tags=$(gfield "$(gl "$ALICE" image-show "$ID_A")" tags)
[[ "$tags" != *newtag* ]] && echo "ok: the tag is gone" || fail "tag still there: $tags"
check_fails "image-tag-delete of a tag it lacks" gl "$ALICE" image-tag-delete "$ID_A" never && echo "ok: image-tag-delete of a missing tag fails"

# ---- upload to a queued image, deactivate/reactivate ------------------------------------------------------
head -c 700000 /dev/urandom >"$F/c.iso"
check "image-upload to cli-c" gl "$ALICE" image-upload "$ID_C" --file "$F/c.iso"
expect_eq "cli-c is active with the file's checksum" "$(gfield "$(gl "$ALICE" image-show "$ID_C")" checksum)" "$(md5sum <"$F/c.iso" | cut -d' ' -f1)"
check "image-deactivate" gl "$ALICE" image-deactivate "$ID_B"
expect_eq "deactivated" "$(gfield "$(gl "$ALICE" image-show "$ID_B")" status)" deactivated
check_fails "a deactivated image cannot be downloaded by its owner" gl "$ALICE" image-download "$ID_B" --file "$F/b.out" &&
	echo "ok: download of a deactivated image fails for a non-admin"
check "the admin token downloads it" gl "$ADMIN_TOKEN" image-download "$ID_B" --file "$F/b.out"
expect_eq "the admin's download is the bytes" "$(md5sum <"$F/b.out" | cut -d' ' -f1)" "$(md5sum <"$F/b.raw" | cut -d' ' -f1)"
check "image-reactivate" gl "$ALICE" image-reactivate "$ID_B"
expect_eq "active again" "$(gfield "$(gl "$ALICE" image-show "$ID_B")" status)" active

# ---- members -------------------------------------------------------------------------------------------------
check_fails "bob cannot see cli-b before it is shared with him" gl "$BOB" image-show "$ID_B" &&
	echo "ok: bob cannot see cli-b yet"
out=$(gl "$ALICE" member-create "$ID_B" bob 2>&1)
expect_contains "member-create: pending" "$out" pending
expect_contains "member-list (owner)" "$(gl "$ALICE" member-list --image-id "$ID_B" 2>&1)" bob
check "bob sees the image while pending" gl "$BOB" image-show "$ID_B"
expect_eq "not in bob's default image-list while pending" "$(gl "$BOB" image-list 2>&1 | grep -c "$ID_B")" 0
expect_eq "in bob's image-list --member-status pending" "$(gl "$BOB" image-list --member-status pending 2>&1 | grep -c "$ID_B")" 1
check_fails "alice cannot accept for bob" gl "$ALICE" member-update "$ID_B" bob accepted && echo "ok: the owner cannot set the member status"
out=$(gl "$BOB" member-update "$ID_B" bob accepted 2>&1)
expect_contains "bob accepts" "$out" accepted
expect_eq "in bob's default image-list once accepted" "$(gl "$BOB" image-list 2>&1 | grep -c "$ID_B")" 1
check "bob downloads the shared image" gl "$BOB" image-download "$ID_B" --file "$F/b.bob"
expect_eq "bob's download is the bytes" "$(md5sum <"$F/b.bob" | cut -d' ' -f1)" "$(md5sum <"$F/b.raw" | cut -d' ' -f1)"
check_fails "bob cannot update alice's image" gl "$BOB" image-update "$ID_B" --name bobs && echo "ok: a member cannot update"
expect_contains "bob rejects" "$(gl "$BOB" member-update "$ID_B" bob rejected 2>&1)" rejected
expect_eq "not in bob's list once rejected" "$(gl "$BOB" image-list 2>&1 | grep -c "$ID_B")" 0
check "member-delete" gl "$ALICE" member-delete "$ID_B" bob
check_fails "bob cannot see it after member-delete" gl "$BOB" image-show "$ID_B" && echo "ok: removed member sees nothing"

# ---- stage + import, create-via-import, web-download --------------------------------------------------------------
head -c $((2 * 1048576)) /dev/urandom >"$F/s.raw"
MD5S=$(md5sum <"$F/s.raw" | cut -d' ' -f1)
ID_S=$(gfield "$(gl "$ALICE" image-create --name staged --disk-format raw --container-format bare 2>&1)" id)
check "image-stage" gl "$ALICE" image-stage "$ID_S" --file "$F/s.raw"
expect_eq "staged: uploading" "$(gfield "$(gl "$ALICE" image-show "$ID_S")" status)" uploading
check "image-import --import-method glance-direct" gl "$ALICE" image-import "$ID_S" --import-method glance-direct
st=
st=$(wait_active "$ALICE" "$ID_S")
expect_eq "glance-direct: active" "$st" active
expect_eq "glance-direct: checksum" "$(gfield "$(gl "$ALICE" image-show "$ID_S")" checksum)" "$MD5S"
out=$(gl "$ALICE" image-create-via-import --name via-import --disk-format raw --container-format bare --file "$F/s.raw" 2>&1)
rc=$?
ID_V=$(gfield "$out" id)
[ $rc -eq 0 ] && [ -n "$ID_V" ] && echo "ok: image-create-via-import --file" || fail "image-create-via-import (exit $rc): $out"
st=$(wait_active "$ALICE" "$ID_V")
expect_eq "via-import: active" "$st" active
expect_eq "via-import: checksum" "$(gfield "$(gl "$ALICE" image-show "$ID_V")" checksum)" "$MD5S"
head -c $((1048576 + 5)) /dev/urandom >"$WEBDIR/w.img"
(cd "$WEBDIR" && exec "$PY" -u -m http.server --bind 127.0.0.1 0 >"$T/http.log" 2>&1) &
HTTP_PID=$!
WPORT=
for _ in $(seq 100); do
	WPORT=$(grep -oE 'port [0-9]+' "$T/http.log" 2>/dev/null | head -n1 | cut -d' ' -f2)
	[ -n "$WPORT" ] && break
	sleep 0.1
done
out=$(gl "$ALICE" image-create-via-import --name web --disk-format raw --container-format bare \
	--import-method web-download --uri "http://127.0.0.1:$WPORT/w.img" 2>&1)
rc=$?
ID_W=$(gfield "$out" id)
[ $rc -eq 0 ] && [ -n "$ID_W" ] && echo "ok: image-create-via-import --import-method web-download" ||
	fail "web-download via import (exit $rc): $out"
st=$(wait_active "$ALICE" "$ID_W")
expect_eq "web-download: active" "$st" active
expect_eq "web-download: checksum" "$(gfield "$(gl "$ALICE" image-show "$ID_W")" checksum)" "$(md5sum <"$WEBDIR/w.img" | cut -d' ' -f1)"
ID_X=$(gfield "$(gl "$ALICE" image-create --name web-x --disk-format raw --container-format bare 2>&1)" id)
out=$(gl "$ALICE" image-import "$ID_X" --import-method web-download --uri "http://localhost:$WPORT/w.img" 2>&1)
[ $? -ne 0 ] && echo "ok: web-download from a host not allowed is refused" || fail "web-download from localhost accepted: $out"
expect_contains "... with the server's reason (400)" "$out" "400"
kill "$HTTP_PID" 2>/dev/null
wait "$HTTP_PID" 2>/dev/null

# ---- errors as the CLI shows them --------------------------------------------------------------------------------
out=$(gl "$ALICE" image-show "$(cat /proc/sys/kernel/random/uuid)" 2>&1)
[ $? -ne 0 ] && [[ "$out" == *"No image with"* || "$out" == *404* ]] && echo "ok: image-show of an unknown id: not found" ||
	fail "unknown id: $out"
out=$(gl "0000000000000000000000000000000000000000000000000000000000000000" image-list 2>&1)
[ $? -ne 0 ] && [[ "$out" == *401* || "$out" == *nauthorized* || "$out" == *"Invalid OpenStack Identity credentials"* ]] && echo "ok: a bad token is refused (401)" || fail "bad token: $out"
check "image-update --protected True" gl "$ALICE" image-update "$ID_C" --protected True
out=$(gl "$ALICE" image-delete "$ID_C" 2>&1)
[ $? -ne 0 ] && [[ "$out" == *403* || "$out" == *rotected* || "$out" == *orbidden* || "$out" == *"not permitted to delete"* ]] && echo "ok: image-delete of a protected image: 403" ||
	fail "protected delete: $out"
check "image-update --protected False" gl "$ALICE" image-update "$ID_C" --protected False

# ---- delete ---------------------------------------------------------------------------------------------------
for id in "$ID_A" "$ID_B" "$ID_C" "$ID_S" "$ID_V" "$ID_W" "$ID_X"; do
	check "image-delete $id" gl "$ALICE" image-delete "$id"
done
expect_eq "image-list is empty after the deletes" "$(gl "$ALICE" image-list 2>&1 | awk -F'|' 'NR > 3 && NF > 2' | wc -l)" 0
finish
