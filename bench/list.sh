#!/usr/bin/env bash
# bench/list.sh - listing at scale: N keys in one bucket, then ListObjectsV2 pages,
# a deep page (start-after in the middle), a delimiter roll-up of every key into one
# common prefix, and a full paginated walk. Not a test; nothing fails on timing.
#
#   bash bench/list.sh [NKEYS]        (default 1000000; cairn must be built in build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
cairn_bin=${CAIRN_BIN:-$root/build/node/cairn}
make -s -C "$root/bench" >/dev/null
tmp=$(mktemp -d /tmp/cairn-list-XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
port=$((20000 + RANDOM % 30000))
export CAIRN_ROOT_USER=listbench CAIRN_ROOT_PASSWORD=listbench-secret
"$cairn_bin" serve --data "$tmp/data" --s3-listen 127.0.0.1:$port \
	--api-listen 127.0.0.1:$((port + 1)) >"$tmp/cairn.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "cairn ready" "$tmp/cairn.log" && break; sleep 0.1; done
url=http://127.0.0.1:$port
echo "== writing $n one-byte keys (16 connections)"
"$root/bench/out/loadgen" put-small --url "$url" --bucket lst --create-bucket --size 1 \
	--conc 16 --count "$n" --prefix k- --access "$CAIRN_ROOT_USER" \
	--secret "$CAIRN_ROOT_PASSWORD" >/dev/null # the summary goes to stderr
/usr/bin/python3 - "$url" "$n" <<'PY'
import sys, time, boto3
from botocore.config import Config
url, n = sys.argv[1], int(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id="listbench", aws_secret_access_key="listbench-secret",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
import urllib.request
def raw(op, **params):
    """The request alone: a presigned URL fetched with urllib, no XML parsing."""
    u = s3.generate_presigned_url(op, Params=dict(Bucket="lst", **params), ExpiresIn=600)
    return lambda: urllib.request.urlopen(u).read()
def timed(label, fn, reps=20):
    best = None
    for _ in range(reps):
        t = time.perf_counter(); r = fn(); d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    print(f"| {label} | {best * 1000:.2f} ms |")
    return r
print(f"\n| listing, {n} keys in one bucket (best of 20) | time |")
print("| --- | ---: |")
timed("first page of 1000 (ListObjectsV2), boto3", lambda: s3.list_objects_v2(Bucket="lst", MaxKeys=1000))
timed("first page of 1000, HTTP request alone", raw("list_objects_v2", MaxKeys=1000))
mid = f"k-{n // 2:08d}"
timed("page of 1000 from the middle (StartAfter), HTTP request alone",
      raw("list_objects_v2", StartAfter=mid, MaxKeys=1000))
timed("page of 1000 from the middle (StartAfter)",
      lambda: s3.list_objects_v2(Bucket="lst", StartAfter=mid, MaxKeys=1000))
r = timed("every key rolled into one common prefix (Delimiter='-')",
          lambda: s3.list_objects_v2(Bucket="lst", Delimiter="-"))
assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["k-"], r
timed("head_object of one key", lambda: s3.head_object(Bucket="lst", Key=mid))
t = time.perf_counter(); count = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="lst"):
    count += page.get("KeyCount", 0)
d = time.perf_counter() - t
assert count == n, (count, n)
print(f"| full walk of {count} keys, 1000 per page | {d:.2f} s ({count / d:,.0f} keys/s) |")
PY
