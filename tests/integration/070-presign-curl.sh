#!/usr/bin/env bash
# LABELS: s3
# TIMEOUT: 300
# 070-presign-curl: presigned GET, PUT and HEAD URLs made by boto3
# (/usr/bin/python3) and used by curl: byte-exact both ways (the 3 MiB upload
# also makes curl send Expect: 100-continue), a signed Content-Type that curl
# must send, a response-* override in the URL, and a URL used for another
# method -> 403.
. "$(dirname "$0")/lib.sh"
requires /usr/bin/curl cmp

cairn_start || finish
B=presign-$RANDOM$RANDOM
F=$T/files
mkdir -p "$F"

# presign METHOD KEY [EXPIRES] [CONTENT_TYPE] [DISPOSITION]: prints a URL
presign() {
	"$PY" - "$ENDPOINT" "$B" "$@" <<'PY'
import sys, boto3
from botocore.config import Config
ep, bucket, method, key = sys.argv[1:5]
exp = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] else 600
ctype = sys.argv[6] if len(sys.argv) > 6 else ""
disp = sys.argv[7] if len(sys.argv) > 7 else ""
s3 = boto3.session.Session().client("s3", endpoint_url=ep, region_name="us-east-1",
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
params = {"Bucket": bucket, "Key": key}
if ctype:
    params["ContentType"] = ctype
if disp:
    params["ResponseContentDisposition"] = disp
op = {"GET": "get_object", "PUT": "put_object", "HEAD": "head_object"}[method]
print(s3.generate_presigned_url(op, Params=params, ExpiresIn=exp))
PY
}
# curl_ OUTFILE ARGS...: prints the HTTP status
curl_() {
	local out=$1
	shift
	/usr/bin/curl -s -o "$out" -w '%{http_code}' "$@"
}

check "create bucket" aws_ s3api create-bucket --bucket "$B"

rand_file "$F/big" $((3 * 1024 * 1024 + 11))
rand_file "$F/small" 777
url=$(presign PUT big)
st=$(curl_ "$T/put.out" -T "$F/big" "$url")
expect_eq "curl PUT 3 MiB to a presigned URL (Expect: 100-continue)" "$st" 200
url=$(presign PUT small)
st=$(curl_ "$T/put.out" -T "$F/small" "$url")
expect_eq "curl PUT small to a presigned URL" "$st" 200

url=$(presign GET big)
st=$(curl_ "$F/big.got" "$url")
expect_eq "curl GET presigned -> 200" "$st" 200
check "presigned round trip byte-exact (3 MiB)" cmp "$F/big" "$F/big.got"
check "awscli reads the presigned upload byte-exact" \
	bash -c "'$AWS_BIN' --endpoint-url '$ENDPOINT' s3 cp 's3://$B/small' '$F/small.got' && cmp '$F/small' '$F/small.got'"
st=$(curl_ "$F/part.got" -H "Range: bytes=100-199" "$url")
expect_eq "presigned GET with a Range -> 206" "$st" 206
dd if="$F/big" of="$F/part.want" bs=1 skip=100 count=100 status=none
check "presigned range byte-exact" cmp "$F/part.want" "$F/part.got"

url=$(presign HEAD big)
hdrs=$(/usr/bin/curl -s -I "$url")
expect_contains "presigned HEAD -> 200" "$hdrs" "HTTP/1.1 200"
expect_contains "presigned HEAD Content-Length" "$hdrs" "Content-Length: $((3 * 1024 * 1024 + 11))"

url=$(presign PUT typed 600 "text/x-cairn")
st=$(curl_ "$T/put.out" -T "$F/small" -H "Content-Type: text/x-cairn" "$url")
expect_eq "presigned PUT with its signed Content-Type -> 200" "$st" 200
ct=$(aws_ s3api head-object --bucket "$B" --key typed --query ContentType --output text 2>&1)
expect_eq "content type stored" "$ct" "text/x-cairn"
st=$(curl_ "$T/put.out" -T "$F/small" -H "Content-Type: text/other" "$url")
expect_eq "presigned PUT with another Content-Type -> 403" "$st" 403
expect_contains "  ... SignatureDoesNotMatch" "$(cat "$T/put.out")" "SignatureDoesNotMatch"

url=$(presign GET small 600 "" 'attachment; filename="s.bin"')
hdrs=$(/usr/bin/curl -s -D - -o "$F/small.got2" "$url")
expect_contains "presigned response-content-disposition override" "$hdrs" 'attachment; filename="s.bin"'
check "override GET byte-exact" cmp "$F/small" "$F/small.got2"

url=$(presign GET small)
st=$(curl_ "$T/del.out" -X DELETE "$url")
expect_eq "presigned GET URL used for DELETE -> 403" "$st" 403
st=$(curl_ "$F/small.got3" "$url")
expect_eq "object still there after the refused DELETE" "$st" 200

url=$(presign GET small 1)
sleep 2.5
st=$(curl_ "$T/exp.out" "$url")
expect_eq "expired presigned GET -> 403" "$st" 403
expect_contains "  ... AccessDenied" "$(cat "$T/exp.out")" "AccessDenied"
url=$(presign PUT late 1)
sleep 2.5
st=$(curl_ "$T/exp.out" -T "$F/small" "$url")
expect_eq "expired presigned PUT -> 403" "$st" 403
check_fails "nothing stored by the expired PUT" aws_ s3api head-object --bucket "$B" --key late

finish
