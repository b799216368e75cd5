#!/usr/bin/env bash
# LABELS: s3
# TIMEOUT: 300
# 010-awscli: Debian's awscli (/usr/bin/aws) against cairn: s3 mb/ls/cp/sync/rm
# below the multipart threshold, the s3api calls of the S3 core, metadata
# round trip, and the error codes of common mistakes.
. "$(dirname "$0")/lib.sh"
requires /usr/bin/aws cmp diff

cairn_start || finish
/usr/bin/aws configure set default.s3.multipart_threshold 64MB
/usr/bin/aws configure set default.s3.multipart_chunksize 64MB

B=awscli-$RANDOM$RANDOM
F=$T/files
mkdir -p "$F/up/sub/deeper" "$F/down"

# --- buckets -----------------------------------------------------------
check "s3 mb" aws_ s3 mb "s3://$B"
out=$(aws_ s3 ls 2>&1)
expect_contains "s3 ls lists the new bucket" "$out" "$B"
check "s3api head-bucket" aws_ s3api head-bucket --bucket "$B"
loc=$(aws_ s3api get-bucket-location --bucket "$B" --output text 2>&1)
rc=$?
expect_eq "get-bucket-location succeeds" "$rc" 0
[[ "$loc" == "None" || "$loc" == "us-east-1" || -z "$loc" ]] ||
	fail "get-bucket-location: got '$loc', want empty/None or us-east-1"

# --- cp up and down, byte-exact ----------------------------------------
rand_file "$F/small.bin" 1000
rand_file "$F/mid.bin" $((5 * 1024 * 1024 + 17))
: >"$F/empty.bin"
for f in small mid empty; do
	check "s3 cp up $f" aws_ s3 cp "$F/$f.bin" "s3://$B/cp/$f.bin"
	check "s3 cp down $f" aws_ s3 cp "s3://$B/cp/$f.bin" "$F/down/$f.bin"
	check "byte-exact $f" cmp "$F/$f.bin" "$F/down/$f.bin"
done
aws_ s3 cp "s3://$B/cp/small.bin" - >"$F/down/stdout.bin" 2>"$T/err"
check "s3 cp to stdout byte-exact" cmp "$F/small.bin" "$F/down/stdout.bin"
out=$(aws_ s3 ls "s3://$B/cp/" 2>&1)
expect_contains "s3 ls prefix shows mid.bin with its size" "$out" "$((5 * 1024 * 1024 + 17)) mid.bin"
expect_contains "s3 ls prefix shows empty.bin" "$out" "0 empty.bin"

# --- sync both ways -----------------------------------------------------
for i in 1 2 3 4 5; do rand_file "$F/up/f$i" $((i * 3001)); done
rand_file "$F/up/sub/g" 70000
rand_file "$F/up/sub/deeper/h" 1
echo "a file with a space" >"$F/up/sub/with space.txt"
check "s3 sync up" aws_ s3 sync "$F/up" "s3://$B/sync"
check "s3 sync down" aws_ s3 sync "s3://$B/sync" "$F/synced"
check "sync round trip identical (diff -r)" diff -r "$F/up" "$F/synced"
out=$(aws_ s3 sync "$F/up" "s3://$B/sync" 2>&1)
expect_eq "second sync up uploads nothing" "$out" ""
rand_file "$F/up/f1" 12345
rm "$F/up/f2"
check "s3 sync --delete after a change" aws_ s3 sync --delete "$F/up" "s3://$B/sync"
check "s3 sync --delete down" aws_ s3 sync --delete "s3://$B/sync" "$F/synced"
check "changed tree round trip (diff -r)" diff -r "$F/up" "$F/synced"
n=$(aws_ s3 ls --recursive "s3://$B/sync/" | wc -l)
expect_eq "s3 ls --recursive counts the synced files" "$n" 7

# --- rm --recursive -------------------------------------------------------
check "s3 rm --recursive" aws_ s3 rm --recursive "s3://$B/sync"
n=$(aws_ s3 ls --recursive "s3://$B/sync/" | wc -l)
expect_eq "nothing left under sync/" "$n" 0

# --- s3api put/get/range/head and metadata ---------------------------------
rand_file "$F/obj" 100000
check "put-object with metadata" aws_ s3api put-object --bucket "$B" --key meta/obj \
	--body "$F/obj" --metadata color=blue,Shape=round --content-type image/x-test \
	--cache-control "max-age=60" --content-disposition 'attachment; filename="o.bin"' \
	--content-encoding identity --content-language de-CH \
	--expires "2030-01-01T00:00:00Z"
# one head-object, every field read from its JSON
aws_ s3api head-object --bucket "$B" --key meta/obj --output json >"$T/head.json" 2>&1 ||
	fail "head-object: $(tail -n3 "$T/head.json")"
q() { "$PY" -c 'import json,sys
d=json.load(open(sys.argv[1]))
for p in sys.argv[2].split("."):
    d=d.get(p) if isinstance(d, dict) else None
print(d)' "$T/head.json" "$1" 2>&1; }
expect_eq "head-object ContentLength" "$(q ContentLength)" 100000
expect_eq "head-object ContentType" "$(q ContentType)" "image/x-test"
expect_eq "head-object CacheControl" "$(q CacheControl)" "max-age=60"
expect_eq "head-object ContentDisposition" "$(q ContentDisposition)" 'attachment; filename="o.bin"'
expect_eq "head-object ContentEncoding" "$(q ContentEncoding)" "identity"
expect_eq "head-object ContentLanguage" "$(q ContentLanguage)" "de-CH"
expect_eq "head-object Metadata.color" "$(q Metadata.color)" "blue"
expect_eq "head-object Metadata.shape (lower-cased)" "$(q Metadata.shape)" "round"
expect_contains "head-object Expires" "$(q Expires)" "2030"
md5=$(md5sum "$F/obj" | cut -d' ' -f1)
expect_eq "ETag is the MD5 of the object" "$(q ETag)" "\"$md5\""

rangecheck() { # RANGE SKIP COUNT
	rm -f "$F/range.out"
	aws_ s3api get-object --bucket "$B" --key meta/obj --range "$1" "$F/range.out" >"$T/range.json" 2>&1 ||
		{ fail "get-object --range $1 failed: $(tail -n3 "$T/range.json")"; return; }
	dd if="$F/obj" of="$F/range.want" bs=1 skip="$2" count="$3" status=none
	if cmp -s "$F/range.out" "$F/range.want"; then echo "ok: range $1"; else
		fail "range $1: body differs (got $(stat -c %s "$F/range.out") bytes, want $3)"; fi
}
rangecheck bytes=10-19 10 10
rangecheck bytes=0-0 0 1
rangecheck bytes=99990- 99990 10
rangecheck bytes=-7 99993 7
rangecheck bytes=99995-200000 99995 5
cr=$(aws_ s3api get-object --bucket "$B" --key meta/obj --range bytes=10-19 "$F/range.out" \
	--query ContentRange --output text 2>&1)
expect_eq "Content-Range of bytes=10-19" "$cr" "bytes 10-19/100000"
check_fails "range past the end" aws_ s3api get-object --bucket "$B" --key meta/obj \
	--range bytes=100000-100010 "$F/range.out" && expect_contains "range past the end -> InvalidRange" "$OUT" "InvalidRange"

# --- listing: prefix, delimiter, pagination ---------------------------------
# one awscli start per tree (each start costs about a second)
mkdir -p "$F/list/dir1" "$F/list/dir2/sub" "$F/page"
for k in dir1/a dir1/b dir2/c dir2/sub/d top1 top2; do cp "$F/small.bin" "$F/list/$k"; done
check "s3 cp --recursive (listing tree)" aws_ s3 cp --recursive "$F/list" "s3://$B/list"
out=$(aws_ s3api list-objects-v2 --bucket "$B" --prefix list/ --delimiter / \
	--query 'CommonPrefixes[].Prefix' --output text 2>&1)
expect_eq "list-objects-v2 delimiter: CommonPrefixes" "$out" "list/dir1/	list/dir2/"
out=$(aws_ s3api list-objects-v2 --bucket "$B" --prefix list/ --delimiter / \
	--query 'Contents[].Key' --output text 2>&1)
expect_eq "list-objects-v2 delimiter: Contents" "$out" "list/top1	list/top2"
out=$(aws_ s3api list-objects-v2 --bucket "$B" --prefix list/dir2/ \
	--query 'Contents[].Key' --output text 2>&1)
expect_eq "list-objects-v2 prefix" "$out" "list/dir2/c	list/dir2/sub/d"
for i in $(seq -w 1 25); do cp "$F/small.bin" "$F/page/k$i"; done
check "s3 cp --recursive (25 keys)" aws_ s3 cp --recursive "$F/page" "s3://$B/page"
n=$(aws_ s3api list-objects-v2 --bucket "$B" --prefix page/ --page-size 4 --output json 2>&1 |
	"$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["Contents"]))' 2>&1)
expect_eq "list-objects-v2 --page-size 4 walks all 25 keys" "$n" 25
aws_ s3api list-objects-v2 --bucket "$B" --prefix page/ --page-size 4 --max-items 10 \
	--output json >"$T/p1.json" 2>&1
p1=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(o["Key"] for o in d["Contents"])); print(d.get("NextToken",""))' "$T/p1.json" 2>&1)
keys1=$(head -n1 <<<"$p1")
tok=$(sed -n 2p <<<"$p1")
expect_eq "first page of --max-items 10" "$keys1" "$(printf 'page/k%s ' $(seq -w 1 10) | sed 's/ $//')"
if [ -n "$tok" ]; then
	out=$(aws_ s3api list-objects-v2 --bucket "$B" --prefix page/ --page-size 4 --max-items 10 \
		--starting-token "$tok" --output json 2>&1 |
		"$PY" -c 'import json,sys; print(" ".join(o["Key"] for o in json.load(sys.stdin)["Contents"]))' 2>&1)
	expect_eq "second page via --starting-token" "$out" \
		"$(printf 'page/k%s ' $(seq -w 11 20) | sed 's/ $//')"
else
	fail "--max-items 10 of 25 keys returned no NextToken"
fi
out=$(aws_ s3api list-objects-v2 --bucket "$B" --prefix page/ --start-after page/k22 \
	--query 'Contents[].Key' --output text 2>&1)
expect_eq "list-objects-v2 --start-after" "$out" "page/k23	page/k24	page/k25"
out=$(aws_ s3api list-objects --bucket "$B" --prefix page/ --marker page/k23 \
	--query 'Contents[].Key' --output text 2>&1)
expect_eq "list-objects (v1) --marker" "$out" "page/k24	page/k25"

# --- delete-objects -------------------------------------------------------
out=$(aws_ s3api delete-objects --bucket "$B" \
	--delete 'Objects=[{Key=page/k01},{Key=page/k02},{Key=page/nonexistent}]' \
	--query 'Deleted[].Key' --output text 2>&1)
expect_eq "delete-objects reports the deleted keys (missing keys count as deleted)" \
	"$(tr '\t' '\n' <<<"$out" | sort | tr '\n' ' ')" "page/k01 page/k02 page/nonexistent "
n=$(aws_ s3api list-objects-v2 --bucket "$B" --prefix page/ --query 'length(Contents)' --output text 2>&1)
expect_eq "23 keys left after delete-objects" "$n" 23
out=$(aws_ s3api delete-objects --bucket "$B" \
	--delete 'Objects=[{Key=page/k03}],Quiet=true' --output json 2>&1)
[[ "$out" != *Deleted* ]] && echo "ok: quiet delete-objects lists nothing" ||
	fail "quiet delete-objects listed deleted keys: $out"
check_fails "deleted key is gone" aws_ s3api head-object --bucket "$B" --key page/k03
check "delete-object" aws_ s3api delete-object --bucket "$B" --key page/k04
check "delete-object of a missing key succeeds (204)" aws_ s3api delete-object --bucket "$B" --key page/none

# --- errors ---------------------------------------------------------------
check_fails "ls of a missing bucket" aws_ s3api list-objects-v2 --bucket "nosuch-$B" &&
	expect_contains "missing bucket -> NoSuchBucket" "$OUT" "NoSuchBucket"
check_fails "get of a missing key" aws_ s3api get-object --bucket "$B" --key no/such/key "$T/x" &&
	expect_contains "missing key -> NoSuchKey" "$OUT" "NoSuchKey"
check_fails "delete of a non-empty bucket" aws_ s3api delete-bucket --bucket "$B" &&
	expect_contains "non-empty bucket -> BucketNotEmpty" "$OUT" "BucketNotEmpty"
for bad in Bad_Name ab "a..b" "-startdash" "192.168.1.1" "$(printf 'x%.0s' $(seq 64))"; do
	check_fails "create-bucket '$bad'" aws_ s3api create-bucket --bucket="$bad" &&
		expect_contains "create-bucket '$bad' -> InvalidBucketName" "$OUT" "InvalidBucketName"
done
check_fails "head-bucket of a missing bucket" aws_ s3api head-bucket --bucket "nosuch-$B" &&
	expect_contains "head-bucket missing -> 404" "$OUT" "404"

# --- clean up: rb --force empties and removes --------------------------------
check "s3 rb --force" aws_ s3 rb --force "s3://$B"
out=$(aws_ s3 ls 2>&1)
[[ "$out" != *"$B"* ]] && echo "ok: bucket gone" || fail "bucket still listed after rb: $out"

finish
