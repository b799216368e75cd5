#!/usr/bin/env bash
# LABELS: s3
# TIMEOUT: 300
# 030-s3cmd: s3cmd (SigV4, path style) against cairn: mb, put, get, ls, info,
# del, sync both ways, multipart put (15 MiB parts), server-side cp, rb;
# byte-exact.
. "$(dirname "$0")/lib.sh"
requires /usr/bin/s3cmd cmp diff

cairn_start || finish
CFG=$T/s3cfg
cat >"$CFG" <<CFG
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = 127.0.0.1:$S3_PORT
host_bucket = 127.0.0.1:$S3_PORT
bucket_location = us-east-1
use_https = False
signature_v2 = False
check_ssl_certificate = False
enable_multipart = True
multipart_chunk_size_mb = 15
progress_meter = False
CFG
s3c() { /usr/bin/s3cmd -c "$CFG" --no-progress "$@"; }

B=s3cmd-$RANDOM$RANDOM
F=$T/files
mkdir -p "$F/tree/a/b" "$F/down"

check "s3cmd mb" s3c mb "s3://$B"
out=$(s3c ls 2>&1)
expect_contains "s3cmd ls lists the bucket" "$out" "s3://$B"

rand_file "$F/one" 4096
rand_file "$F/two" $((3 * 1024 * 1024 + 5))
: >"$F/zero"
for f in one two zero; do
	check "s3cmd put $f" s3c put "$F/$f" "s3://$B/files/$f"
	check "s3cmd get $f" s3c get --force "s3://$B/files/$f" "$F/down/$f"
	check "byte-exact $f" cmp "$F/$f" "$F/down/$f"
done
out=$(s3c ls "s3://$B/files/" 2>&1)
expect_contains "s3cmd ls shows two with its size" "$out" "$((3 * 1024 * 1024 + 5))"
expect_eq "s3cmd ls counts 3 objects" "$(grep -c "s3://$B/files/" <<<"$out")" 3
out=$(s3c info "s3://$B/files/one" 2>&1)
expect_contains "s3cmd info shows the MD5" "$out" "$(md5sum "$F/one" | cut -d' ' -f1)"
check "s3cmd put with a content type" s3c put --mime-type=text/x-cairn "$F/one" "s3://$B/files/typed"
out=$(s3c info "s3://$B/files/typed" 2>&1)
expect_contains "content type kept" "$out" "text/x-cairn"

# multipart: 40 MiB in 15 MiB parts
rand_file "$F/mp" $((40 * 1024 * 1024 + 77))
check "s3cmd put 40 MiB (multipart)" s3c put "$F/mp" "s3://$B/files/mp"
check "s3cmd get 40 MiB" s3c get --force "s3://$B/files/mp" "$F/down/mp"
check "byte-exact multipart object" cmp "$F/mp" "$F/down/mp"
out=$(s3c info "s3://$B/files/mp" 2>&1)
expect_contains "s3cmd info shows the file's MD5" "$out" "$(md5sum "$F/mp" | cut -d' ' -f1)"
out=$(aws_ s3api head-object --bucket "$B" --key files/mp 2>&1)
expect_contains "the object has a 3-part ETag (uploaded in parts)" "$out" '-3\"'
check "s3cmd cp (server-side CopyObject)" s3c cp "s3://$B/files/one" "s3://$B/files/one-copy"
check "s3cmd get the copy" s3c get --force "s3://$B/files/one-copy" "$F/down/one-copy"
check "the copy is byte-exact" cmp "$F/one" "$F/down/one-copy"
check "s3cmd del the copy" s3c del "s3://$B/files/one-copy"

for i in 1 2 3 4; do rand_file "$F/tree/f$i" $((i * 1000 + 3)); done
rand_file "$F/tree/a/g" 123456
rand_file "$F/tree/a/b/h" 7
check "s3cmd sync up" s3c sync "$F/tree/" "s3://$B/tree/"
check "s3cmd sync down" s3c sync "s3://$B/tree/" "$F/synced/"
check "sync round trip identical (diff -r)" diff -r "$F/tree" "$F/synced"
rand_file "$F/tree/f1" 999
rm "$F/tree/f2"
check "s3cmd sync --delete-removed" s3c sync --delete-removed "$F/tree/" "s3://$B/tree/"
check "s3cmd sync down --delete-removed" s3c sync --delete-removed "s3://$B/tree/" "$F/synced/"
check "changed tree round trip (diff -r)" diff -r "$F/tree" "$F/synced"
n=$(s3c ls -r "s3://$B/tree/" | grep -c "s3://$B/tree/")
expect_eq "s3cmd ls -r counts 5 objects" "$n" 5

check "s3cmd del" s3c del "s3://$B/files/one"
check_fails "deleted object cannot be fetched" s3c get --force "s3://$B/files/one" "$F/down/again"
check_fails "s3cmd rb of a non-empty bucket" s3c rb "s3://$B" &&
	expect_contains "rb non-empty -> BucketNotEmpty" "$OUT" "BucketNotEmpty"
check "s3cmd del --recursive --force" s3c del --recursive --force "s3://$B/"
check "s3cmd rb" s3c rb "s3://$B"
out=$(s3c ls 2>&1)
[[ "$out" != *"s3://$B"* ]] && echo "ok: bucket gone" || fail "bucket still listed: $out"
finish
