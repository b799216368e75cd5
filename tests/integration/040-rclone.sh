#!/usr/bin/env bash
# LABELS: s3
# TIMEOUT: 300
# 040-rclone: rclone with an S3 remote from the environment (provider Other,
# SigV4, path style) against cairn: mkdir, copy, sync, check (MD5 via ETag),
# cat, ls, delete, purge; byte-exact.
. "$(dirname "$0")/lib.sh"
requires /usr/bin/rclone cmp diff

cairn_start || finish
export RCLONE_CONFIG=$T/rclone.conf
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_CAIRN_TYPE=s3
export RCLONE_CONFIG_CAIRN_PROVIDER=Other
export RCLONE_CONFIG_CAIRN_ENV_AUTH=false
export RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_CAIRN_ENDPOINT=$ENDPOINT
export RCLONE_CONFIG_CAIRN_REGION=us-east-1
export RCLONE_CONFIG_CAIRN_FORCE_PATH_STYLE=true
export RCLONE_CONFIG_CAIRN_V2_AUTH=false
# above 5 MiB rclone uploads in 5 MiB parts, 4 at a time (multipart)
export RCLONE_CONFIG_CAIRN_UPLOAD_CUTOFF=5M
export RCLONE_CONFIG_CAIRN_CHUNK_SIZE=5M
export RCLONE_CONFIG_CAIRN_UPLOAD_CONCURRENCY=4
rc_() { /usr/bin/rclone --retries 1 --low-level-retries 1 "$@"; }

B=rclone-$RANDOM$RANDOM
F=$T/files
mkdir -p "$F/src/d1/d2" "$F/dst"
for i in 1 2 3 4 5 6; do rand_file "$F/src/f$i" $((i * 7777)); done
rand_file "$F/src/d1/big" $((6 * 1024 * 1024 + 1))
rand_file "$F/src/d1/bigger" $((27 * 1024 * 1024 + 99))
rand_file "$F/src/d1/d2/tiny" 3
: >"$F/src/d1/empty"
echo "unicode" >"$F/src/d1/ünï cödé+plus.txt"

check "rclone mkdir" rc_ mkdir "cairn:$B"
out=$(rc_ lsd cairn: 2>&1)
expect_contains "rclone lsd lists the bucket" "$out" "$B"
check "rclone copy up" rc_ copy "$F/src" "cairn:$B/data"
check "rclone check (sizes and MD5s)" rc_ check "$F/src" "cairn:$B/data"
check "rclone copy down" rc_ copy "cairn:$B/data" "$F/dst"
check "copy round trip identical (diff -r)" diff -r "$F/src" "$F/dst"
rc_ cat "cairn:$B/data/d1/big" >"$F/cat.out" 2>"$T/err"
check "rclone cat byte-exact" cmp "$F/src/d1/big" "$F/cat.out"
n=$(rc_ ls "cairn:$B/data" 2>/dev/null | wc -l)
expect_eq "rclone ls counts 11 objects" "$n" 11
out=$(rc_ md5sum "cairn:$B/data/f3" 2>&1)
expect_contains "rclone md5sum = local MD5" "$out" "$(md5sum "$F/src/f3" | cut -d' ' -f1)"

rand_file "$F/src/f1" 4242
rm -r "$F/src/f2" "$F/src/d1/d2"
check "rclone sync up after changes" rc_ sync "$F/src" "cairn:$B/data"
check "rclone check after sync" rc_ check "$F/src" "cairn:$B/data"
check "rclone sync down" rc_ sync "cairn:$B/data" "$F/dst"
check "sync round trip identical (diff -r)" diff -r "$F/src" "$F/dst"
n=$(rc_ ls "cairn:$B/data" 2>/dev/null | wc -l)
expect_eq "rclone ls counts 9 objects after sync" "$n" 9
check "rclone copyto (server-side copy of a multipart object)" rc_ copyto "cairn:$B/data/d1/bigger" "cairn:$B/copy/bigger"
rc_ cat "cairn:$B/copy/bigger" >"$F/cat2.out" 2>"$T/err"
check "the server-side copy is byte-exact" cmp "$F/src/d1/bigger" "$F/cat2.out"

check "rclone deletefile" rc_ deletefile "cairn:$B/data/f3"
check_fails "deleted file is gone (HEAD)" aws_ s3api head-object --bucket "$B" --key data/f3
out=$(rc_ lsf "cairn:$B/data" 2>&1)
[[ $'\n'"$out"$'\n' != *$'\nf3\n'* ]] && echo "ok: f3 not listed" || fail "f3 still listed: $out"
check "rclone purge" rc_ purge "cairn:$B"
out=$(rc_ lsd cairn: 2>&1)
[[ "$out" != *"$B"* ]] && echo "ok: bucket gone" || fail "bucket still listed: $out"
finish
