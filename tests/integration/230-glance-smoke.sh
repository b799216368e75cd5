#!/bin/bash
# LABELS: quick registry
# TIMEOUT: 240
# 230-glance-smoke: the Glance v2 API of `cairn serve` driven by Debian's
# glance CLI (python3-glanceclient) and openstack CLI (issue 7): image-create
# --file (chunked upload) checked against md5sum/sha512sum, image-list,
# image-show, image-download (byte-identical), image-update --property and
# --name, image-tag-update, image-delete, `openstack image list/show`; a
# request without a token is 401; the image survives a restart. Uses the
# admin token (CAIRN_ADMIN_TOKEN); the full suite (240-245) covers users.
. "$(dirname "$0")/lib.sh"
requires jq md5sum sha512sum
[ -x /usr/bin/glance ] || { echo "SKIP: requires /usr/bin/glance (python3-glanceclient)"; exit 77; }
[ -x /usr/bin/openstack ] || { echo "SKIP: requires /usr/bin/openstack"; exit 77; }
help=$("$CAIRN_BIN" serve --help 2>&1)
if [[ "$help" != *--registry-listen* ]]; then
	echo "SKIP: this cairn has no --registry-listen"
	exit 77
fi

export CAIRN_ADMIN_TOKEN=smoke-admin-token-$$-0123456789
export HOME=$T/home # the glance CLI caches the schema under ~/.glanceclient
mkdir -p "$HOME"
unset OS_AUTH_URL OS_USERNAME OS_PASSWORD OS_PROJECT_NAME OS_CLOUD OS_TOKEN OS_IMAGE_URL OS_AUTH_TOKEN

start() {
	cairn_start --registry-listen 127.0.0.1:0 || finish
	GLANCE_URL=$(grep -m1 -oE 'Glance http://[^ ,]+:[0-9]+' "$CAIRN_LOG" | sed 's/^Glance //')
	[ -n "$GLANCE_URL" ] || { fail "the ready line names no Glance URL"; finish; }
	log "glance at $GLANCE_URL"
}
gl() { /usr/bin/glance --os-image-api-version 2 --os-image-url "$GLANCE_URL" --os-auth-token "$CAIRN_ADMIN_TOKEN" "$@"; }
osc() { /usr/bin/openstack --os-auth-type admin_token --os-endpoint "$GLANCE_URL/v2" --os-token "$CAIRN_ADMIN_TOKEN" "$@"; }
# field TEXT NAME: a value of a glance "| Property | Value |" table
field() { awk -F'|' -v k="$2" '{ n = $2; gsub(/^ +| +$/, "", n); if (n == k) { v = $3; gsub(/^ +| +$/, "", v); print v; exit } }' <<<"$1"; }
api() { curl -sS -H "X-Auth-Token: $CAIRN_ADMIN_TOKEN" "$@"; }

start
F=$T/files
mkdir -p "$F"
# 3 MiB + 17 bytes of random data: several chunks and a ragged end
head -c $((3 * 1048576 + 17)) /dev/urandom >"$F/img.raw"
MD5=$(md5sum <"$F/img.raw" | cut -d' ' -f1)
SHA=$(sha512sum <"$F/img.raw" | cut -d' ' -f1)

# ---- create with data ----
out=$(gl image-create --name smoke --disk-format raw --container-format bare --file "$F/img.raw" 2>&1)
check "glance image-create --file" test -n "$(field "$out" id)" || printf '%s\n' "$out" | tail -n 5
ID=$(field "$out" id)
expect_eq "status after upload" "$(field "$out" status)" active
expect_eq "checksum is the MD5 of the bytes" "$(field "$out" checksum)" "$MD5"
expect_eq "size" "$(field "$out" size)" $((3 * 1048576 + 17))

out=$(gl image-list 2>&1)
expect_contains "glance image-list lists it" "$out" "$ID"

# the hash is wrapped in the table: ask the API for it
js=$(api "$GLANCE_URL/v2/images/$ID")
expect_eq "os_hash_algo" "$(jq -r .os_hash_algo <<<"$js")" sha512
expect_eq "os_hash_value is the SHA-512 of the bytes" "$(jq -r .os_hash_value <<<"$js")" "$SHA"
expect_eq "virtual_size of a raw image is its size" "$(jq -r .virtual_size <<<"$js")" $((3 * 1048576 + 17))
expect_eq "the schema hides stores" "$(api "$GLANCE_URL/v2/schemas/image" | jq -r '.properties | has("stores")')" false

check "glance image-download" gl image-download --file "$F/out.raw" "$ID"
check "downloaded bytes are the uploaded bytes" cmp "$F/img.raw" "$F/out.raw"

# ---- metadata ----
check "glance image-update --property --name" gl image-update --property os_distro=debian --name smoke2 "$ID"
out=$(gl image-show "$ID" 2>&1)
expect_eq "image-show: the property" "$(field "$out" os_distro)" debian
expect_eq "image-show: the new name" "$(field "$out" name)" smoke2
check "glance image-tag-update" gl image-tag-update "$ID" golden
expect_eq "the tag is listed" "$(api "$GLANCE_URL/v2/images/$ID" | jq -c .tags)" '["golden"]'
expect_eq "filter by property" "$(api "$GLANCE_URL/v2/images?os_distro=debian" | jq -r '.images[0].id')" "$ID"

# ---- openstack CLI ----
out=$(osc image list -f value -c ID -c Name 2>&1)
expect_contains "openstack image list" "$out" "$ID smoke2"
out=$(osc image show -f json "$ID" 2>&1)
expect_eq "openstack image show: checksum" "$(jq -r .checksum <<<"$out" 2>/dev/null)" "$MD5"

# ---- auth and errors ----
expect_eq "no token -> 401" "$(curl -s -o /dev/null -w '%{http_code}' "$GLANCE_URL/v2/images")" 401
expect_eq "a wrong token -> 401" \
	"$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Auth-Token: nope' "$GLANCE_URL/v2/images")" 401
check_fails "glance image-show of an unknown id fails" gl image-show 00000000-0000-4000-8000-000000000000
expect_contains "the CLI shows Glance's message" "$OUT" "No image found with ID"

# ---- a second image, then a restart keeps both ----
head -c 100000 /dev/urandom >"$F/b.raw"
out=$(gl image-create --name keep --disk-format raw --container-format bare --file "$F/b.raw" 2>&1)
ID2=$(field "$out" id)
check "second image active" test "$(field "$out" status)" = active
cairn_stop
start
out=$(gl image-list 2>&1)
expect_contains "after restart: first image" "$out" "$ID"
expect_contains "after restart: second image" "$out" "$ID2"
check "after restart: download" gl image-download --file "$F/out2.raw" "$ID"
check "after restart: bytes intact" cmp "$F/img.raw" "$F/out2.raw"

# ---- delete ----
check "glance image-delete" gl image-delete "$ID"
expect_eq "deleted image -> 404" \
	"$(api -o /dev/null -w '%{http_code}' "$GLANCE_URL/v2/images/$ID")" 404
out=$(gl image-list 2>&1)
[[ "$out" != *"$ID"* ]] && echo "ok: image-list no longer lists it" || fail "deleted image still listed"
expect_contains "the other image stays" "$out" "$ID2"
finish
