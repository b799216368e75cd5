#!/bin/bash
# bench/selftest-chunked.sh - checks loadgen's aws-chunked encoder against bench/chunked_sink.py,
# which decodes the body independently (frames, CRC32 trailer, seed and chunk signatures) and
# answers the decoded bytes' MD5 as the ETag. For several sizes around the chunk boundaries and
# both variants: the upload must succeed and its ETag must be the MD5 of `loadgen gen-file`
# with the same seed (the bytes the plain PUT sends); a wrong secret must be refused. No S3
# server needed; ~10 s. Exit status 0 when every check passes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lg=$here/out/loadgen
make -s -C "$here" out/loadgen || exit 1
. "$here/lib.sh"
port=$(free_ports 1) || { echo "no free port" >&2; exit 1; }
tmp=$(mktemp -d)
/usr/bin/python3 "$here/chunked_sink.py" "$port" sekrit 2>"$tmp/sink.err" &
sink=$!
trap 'kill $sink 2>/dev/null; wait $sink 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do
	curl -s -o /dev/null -X PUT "http://127.0.0.1:$port/b" && break
	sleep 0.1
done
a=(--url "http://127.0.0.1:$port" --access AK --secret sekrit --bucket b --key k)
fail=0 n=0
check() { # check NAME CONDITION-RESULT(0/1)
	n=$((n + 1))
	if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi
}
for size in 1 65535 65536 65537 1000001 4194304; do
	"$lg" gen-file --size "$size" --seed 77 --out "$tmp/ref"
	want=$(md5sum <"$tmp/ref" | cut -d' ' -f1)
	for mode in chunked-put chunked-put-signed; do
		for cs in 64K 8K; do
			out=$("$lg" $mode "${a[@]}" --size "$size" --seed 77 --chunk-size $cs 2>"$tmp/err")
			rc=$?
			etag=$(sed -n 's/.*"etag":"\\"\([0-9a-f]*\)\\"".*/\1/p' <<<"$out")
			[ $rc = 0 ] && [ "$etag" = "$want" ]
			check "$mode size=$size chunk=$cs (etag $etag)" $?
			[ $rc = 0 ] || sed 's/^/     /' "$tmp/err"
		done
	done
done
out=$("$lg" chunked-put-signed "${a[@]}" --secret wrong --size 1000 2>/dev/null)
grep -q '"ok":0.*SignatureDoesNotMatch' <<<"$out"
check "chunked-put-signed with a wrong secret is refused" $?
echo "$((n - fail))/$n passed"
[ $fail = 0 ]
