#!/bin/bash
# bench/selftest-loadgen.sh - checks loadgen's issue-4 modes against bench/loadgen_sink.py.
# aws-chunked: the sink decodes the body independently (frames, CRC32 trailer, seed and chunk
# signatures) and answers the decoded bytes' MD5 as the ETag; for several sizes around the chunk
# boundaries and both variants the upload must succeed and its ETag be the MD5 of `loadgen
# gen-file` with the same seed (the bytes the plain PUT sends); a wrong secret must be refused.
# mp-put: a clean upload must pass (parts in order, ETags checked, an upload id that needs
# URI-encoding), and each fault the sink can play (wrong object ETag, 200 with an <Error> body,
# a failing part) must give exit status 1 and a RESULT with an error and no speed.
# No S3 server needed; a few seconds. Exit status 0 when every check passes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lg=$here/out/loadgen
make -s -C "$here" out/loadgen || exit 1
. "$here/lib.sh"
port=$(free_ports 1) || { echo "no free port" >&2; exit 1; }
tmp=$(mktemp -d)
/usr/bin/python3 "$here/loadgen_sink.py" "$port" sekrit 2>"$tmp/sink.err" &
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

m=(--url "http://127.0.0.1:$port" --access AK --secret sekrit --key mp --size 21M --part-size 5M)
out=$("$lg" mp-put "${m[@]}" --bucket b --seed 9 2>"$tmp/err")
rc=$?
[ $rc = 0 ] && grep -q '"parts":5,"ok":1' <<<"$out" && grep -q '"mib_s":' <<<"$out"
check "mp-put 21 MiB in 5 MiB parts: ok, 5 parts, a speed" $?
[ $rc = 0 ] || sed 's/^/     /' "$tmp/err"
for fault in etag:'CompleteMultipartUpload ETag' 200err:'CompleteMultipartUpload: http 200' \
	part3:'UploadPart 3: http 500'; do
	out=$("$lg" mp-put "${m[@]}" --bucket "fault-${fault%%:*}" --seed 9 2>/dev/null)
	rc=$?
	[ $rc = 1 ] && grep -q '"ok":0' <<<"$out" && grep -qF "${fault#*:}" <<<"$out" &&
		! grep -q '"mib_s"' <<<"$out"
	check "mp-put against fault-${fault%%:*}: exit 1, the error, no speed" $?
done
echo "$((n - fail))/$n passed"
[ $fail = 0 ]
