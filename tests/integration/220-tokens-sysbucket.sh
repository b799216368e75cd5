#!/usr/bin/env bash
# LABELS: registry s3
# TIMEOUT: 240
# 220-tokens-sysbucket (issue 7): `cairn token create|list|delete` through
# the CLI, Authorization: Bearer on the admin API with curl (root's tokens
# act as root, other users' are refused), and the system bucket's S3 rules
# with awscli: CreateBucket cairn-images refused for everyone, PUT and
# DELETE refused even for root, listing by root works and is empty before
# any image. (Reading an image back over S3 is the registry's test.)
. "$(dirname "$0")/lib.sh"
requires /usr/bin/aws curl jq

SYS=cairn-images
cairn_start || finish

# --- tokens through the CLI -----------------------------------------------
check "user create alice" cairn_cli user create alice

out=$(cairn_cli token create alice --ttl 1h 2>&1)
rc=$?
expect_eq "token create alice --ttl 1h exits 0" "$rc" 0
tok_a=$(sed -n 1p <<<"$out")
[[ "$tok_a" =~ ^[0-9a-f]{64}$ ]] && echo "ok: line 1 is the token alone" ||
	fail "line 1 is not a 64-hex token: '$tok_a'"
line2=$(sed -n 2p <<<"$out")
id_a=$(awk '{print $2}' <<<"$line2")
expect_contains "line 2 names the id, user and expiry" "$line2" "id $id_a user alice expires 20"
want_id=$(printf '%s' "$tok_a" | sha256sum | cut -c1-8)
expect_eq "the id is the first 8 hex digits of sha256(token)" "$id_a" "$want_id"

ttl_of() { # prints expires - created of a --json answer, or "null"
	jq -r 'if .expires == null then "null" else (.expires - .created) end' <<<"$1"
}
j=$(cairn_cli token create alice --ttl 7d --json 2>&1)
expect_eq "--ttl 7d lasts 604800 s" "$(ttl_of "$j")" 604800
expect_eq "--json shows the user" "$(jq -r .user <<<"$j")" alice
j=$(cairn_cli token create alice --ttl 90m --json 2>&1)
expect_eq "--ttl 90m lasts 5400 s" "$(ttl_of "$j")" 5400
j=$(cairn_cli token create alice --ttl=45 --json 2>&1)
expect_eq "--ttl=45 lasts 45 s" "$(ttl_of "$j")" 45
j=$(cairn_cli token create alice --json 2>&1)
expect_eq "default ttl is a day" "$(ttl_of "$j")" 86400
j=$(cairn_cli token create alice --ttl 0 --json 2>&1)
expect_eq "--ttl 0 never expires" "$(ttl_of "$j")" null
id_never=$(jq -r .id <<<"$j")

cairn_cli token create alice --ttl 5x >/dev/null 2>&1
expect_eq "--ttl 5x is a usage error" "$?" 2
cairn_cli token list --ttl 5 >/dev/null 2>&1
expect_eq "--ttl on list is a usage error" "$?" 2
check_fails "token for a missing user" cairn_cli token create nosuchuser &&
	expect_contains "missing user -> NoSuchUser" "$OUT" "NoSuchUser"

out=$(cairn_cli token list --user alice 2>&1)
expect_contains "list --user alice shows the 1h token" "$out" "$id_a"
expect_contains "list shows 'never' for ttl 0" "$out" "never"
[[ "$out" != *"$tok_a"* ]] && echo "ok: list never shows a token" || fail "list shows the token"
n=$(cairn_cli token list --json | jq '[.tokens[] | select(.user == "alice")] | length')
expect_eq "list --json: six tokens of alice" "$n" 6

check "token delete" cairn_cli token delete "$id_a"
out=$(cairn_cli token list 2>&1)
[[ "$out" != *"$id_a"* ]] && echo "ok: deleted token is gone" || fail "deleted token listed: $out"
check_fails "token delete again" cairn_cli token delete "$id_a" &&
	expect_contains "delete again -> NoSuchToken" "$OUT" "NoSuchToken"

# --- Authorization: Bearer on the admin API ---------------------------------
tok_root=$(cairn_cli token create root --ttl 1h | sed -n 1p)
tok_alice=$(cairn_cli token create alice --ttl 1h | sed -n 1p)
api() { # api TOKEN METHOD PATH [BODY]: prints "STATUS BODY"
	local args=(-s -o "$T/api.out" -w '%{http_code}' -X "$2")
	[ -n "$1" ] && args+=(-H "Authorization: Bearer $1")
	[ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' --data "$4")
	local st
	st=$(curl "${args[@]}" "$API_ENDPOINT$3")
	echo "$st $(cat "$T/api.out")"
}
out=$(api "$tok_root" GET /admin/v1/users)
expect_contains "Bearer of root's token lists users" "$out" '200 {"users":'
expect_contains "... with alice" "$out" '"alice"'
out=$(api "$tok_root" POST /admin/v1/tokens '{"user": "alice", "ttl": 60}')
expect_contains "Bearer of root creates a token" "$out" '201 {'
expect_eq "... whose ttl is 60 s" "$(ttl_of "${out#* }")" 60
out=$(api "$tok_alice" GET /admin/v1/users)
expect_contains "alice's token is not root: 403" "$out" '403 '
expect_contains "... AccessDenied" "$out" AccessDenied
out=$(api "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" GET /admin/v1/users)
expect_contains "an unknown token: 401 InvalidToken" "$out" '401 {"error":{"code":"InvalidToken"'
out=$(api "" GET /admin/v1/users)
expect_contains "no credentials: 403" "$out" '403 '
out=$(api "$tok_root" DELETE "/admin/v1/tokens/$id_never")
expect_eq "Bearer deletes a token: 204" "$out" "204 "

# --- the system bucket over S3 ----------------------------------------------
check "head-bucket $SYS by root" aws_ s3api head-bucket --bucket "$SYS"
out=$(aws_ s3 ls 2>&1)
expect_contains "ListBuckets of root shows $SYS" "$out" "$SYS"
# (awscli prints nothing for an empty listing: ask for KeyCount itself)
out=$(aws_ s3api list-objects-v2 --bucket "$SYS" --no-paginate --query KeyCount \
	--output text 2>&1)
rc=$?
expect_eq "list-objects-v2 by root succeeds" "$rc" 0
expect_eq "... and is empty before any image" "$out" 0
out=$(aws_ s3 ls "s3://$SYS/" 2>&1)
expect_eq "aws s3 ls s3://$SYS/ by root is empty" "$out" ""
check_fails "create-bucket $SYS by root" aws_ s3api create-bucket --bucket "$SYS" &&
	expect_contains "... BucketAlreadyExists" "$OUT" BucketAlreadyExists
rand_file "$T/f" 1000
check_fails "put-object into $SYS by root" aws_ s3api put-object --bucket "$SYS" --key x \
	--body "$T/f" && expect_contains "... AccessDenied" "$OUT" AccessDenied
expect_contains "... naming the registry" "$OUT" "image registry"
check_fails "s3 cp into $SYS by root" aws_ s3 cp "$T/f" "s3://$SYS/y"
check_fails "delete-object in $SYS by root" aws_ s3api delete-object --bucket "$SYS" --key x &&
	expect_contains "... AccessDenied" "$OUT" AccessDenied
check_fails "delete-bucket $SYS by root" aws_ s3api delete-bucket --bucket "$SYS" &&
	expect_contains "... AccessDenied" "$OUT" AccessDenied
check_fails "create-multipart-upload in $SYS" aws_ s3api create-multipart-upload \
	--bucket "$SYS" --key m && expect_contains "... AccessDenied" "$OUT" AccessDenied
check_fails "put-bucket-acl on $SYS" aws_ s3api put-bucket-acl --bucket "$SYS" --acl private &&
	expect_contains "... AccessDenied" "$OUT" AccessDenied

# as alice: no listing, no bucket, no writes
kj=$(cairn_cli key create alice --json)
AK=$(jq -r .id <<<"$kj")
AS=$(jq -r .secret <<<"$kj")
aws_alice() { AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$AS aws_ "$@"; }
check_fails "create-bucket $SYS by alice" aws_alice s3api create-bucket --bucket "$SYS" &&
	expect_contains "... BucketAlreadyExists" "$OUT" BucketAlreadyExists
check_fails "list $SYS by alice" aws_alice s3api list-objects-v2 --bucket "$SYS" &&
	expect_contains "... AccessDenied" "$OUT" AccessDenied
check_fails "get of a missing image by alice" aws_alice s3api get-object --bucket "$SYS" \
	--key nope "$T/nope" && expect_contains "... AccessDenied, not NoSuchKey" "$OUT" AccessDenied
check_fails "put-object into $SYS by alice" aws_alice s3api put-object --bucket "$SYS" \
	--key x --body "$T/f" && expect_contains "... AccessDenied" "$OUT" AccessDenied
out=$(aws_alice s3 ls 2>&1)
[[ "$out" != *"$SYS"* ]] && echo "ok: alice's ListBuckets does not show $SYS" ||
	fail "alice sees $SYS: $out"
# other cairn-* names stay invalid
check_fails "create-bucket cairn-other" aws_ s3api create-bucket --bucket cairn-other &&
	expect_contains "... InvalidBucketName" "$OUT" InvalidBucketName

# --- a restart keeps the bucket (ensure is idempotent) and the tokens --------
cairn_stop
cairn_start || finish
check "head-bucket $SYS after restart" aws_ s3api head-bucket --bucket "$SYS"
out=$(api "$tok_root" GET /admin/v1/tokens)
expect_contains "root's token works after restart" "$out" '200 {"tokens":'
check "user delete alice" cairn_cli user delete alice
out=$(cairn_cli token list --json | jq '[.tokens[] | select(.user == "alice")] | length')
expect_eq "alice's tokens went with her" "$out" 0

finish
