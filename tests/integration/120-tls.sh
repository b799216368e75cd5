#!/usr/bin/env bash
# LABELS: s3
# TIMEOUT: 300
# 120-tls: the S3 port over HTTPS (issue 4). A CA and a server certificate
# (SAN 127.0.0.1 and localhost) made here with openssl; `cairn serve` with a
# bad certificate path, a key of another pair, or only one of the two exits
# non-zero with a message naming the file; then a node on HTTPS: awscli
# (AWS_CA_BUNDLE) mb/cp/ls/rm including 20 MiB (multipart in awscli), curl
# --aws-sigv4 PUT/GET/HEAD byte-exact, plain HTTP to the port fails and the
# node still serves, boto3 put_object with ChecksumAlgorithm=CRC32 (botocore
# sends STREAMING-UNSIGNED-PAYLOAD-TRAILER over https).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tls-certs.sh"
requires openssl /usr/bin/curl cmp sha256sum

F=$T/files
mkdir -p "$F"
C=$T/certs
mkdir -p "$C"

# ---- certificates ----
if ! tls_certs "$C"; then
	fail "openssl could not make the test certificates"
	finish
fi
check "the server certificate verifies against the test CA" \
	openssl verify -CAfile "$C/ca.pem" "$C/srv.pem"

# ---- start-up errors name the file ----
# serve_fails DESC WANT ARGS...: `cairn serve ARGS` must exit non-zero
# quickly, printing WANT.
serve_fails() {
	local desc=$1 want=$2
	shift 2
	local out rc
	out=$(timeout 60 "$CAIRN_BIN" serve --data "$T/bad-data" --s3-listen 127.0.0.1:0 \
		--api-listen 127.0.0.1:0 "$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
		fail "$desc: cairn serve exited $rc, want a start failure"
		printf '%s\n' "$out" | tail -n 5 | sed 's/^/    | /'
		return
	fi
	expect_contains "$desc (exit $rc)" "$out" "$want"
}
serve_fails "missing certificate file" "$T/nope.pem" \
	--tls-cert "$T/nope.pem" --tls-key "$C/srv.key"
serve_fails "key of another pair" "does not match the certificate $C/srv.pem" \
	--tls-cert "$C/srv.pem" --tls-key "$C/ca.key"
serve_fails "a key where the certificate goes" "$C/srv.key" \
	--tls-cert "$C/srv.key" --tls-key "$C/srv.key"
serve_fails "certificate without key" "tls_key" --tls-cert "$C/srv.pem"
if [ -d "$T/bad-data/meta" ]; then
	fail "a failed TLS start created the pool in $T/bad-data (should fail before)"
fi

# ---- a node on HTTPS ----
cairn_start --tls-cert "$C/srv.pem" --tls-key "$C/srv.key" || finish
expect_contains "ready line says https" "$(grep 'cairn ready' "$CAIRN_LOG")" \
	"S3 https://127.0.0.1:$S3_PORT"
expect_contains "start log says https" "$(grep 'S3 listening' "$CAIRN_LOG")" "(https,"
if grep -q 'PRIVATE KEY' "$CAIRN_LOG"; then
	fail "the server log shows key material"
fi
ENDPOINT=https://localhost:$S3_PORT
export AWS_CA_BUNDLE=$C/ca.pem
B=tls-$RANDOM$RANDOM

check "aws s3 mb over https" aws_ s3 mb "s3://$B"
rand_file "$F/small" 100000
rand_file "$F/big" $((20 * 1024 * 1024 + 5))
check "aws s3 cp small" aws_ s3 cp "$F/small" "s3://$B/small"
check "aws s3 cp 20 MiB (multipart)" aws_ s3 cp "$F/big" "s3://$B/big"
ls_out=$(aws_ s3 ls "s3://$B/" 2>&1)
expect_contains "aws s3 ls lists small" "$ls_out" " 100000 small"
expect_contains "aws s3 ls lists big" "$ls_out" " $((20 * 1024 * 1024 + 5)) big"
check "aws s3 cp back small, byte-exact" \
	bash -c "'$AWS_BIN' --endpoint-url '$ENDPOINT' s3 cp 's3://$B/small' '$F/small.got' && cmp '$F/small' '$F/small.got'"
check "aws s3 cp back 20 MiB, byte-exact" \
	bash -c "'$AWS_BIN' --endpoint-url '$ENDPOINT' s3 cp 's3://$B/big' '$F/big.got' && cmp '$F/big' '$F/big.got'"
# Without the CA the client must refuse the certificate (the test's CA is
# what makes it trusted, not a lax client).
check_fails "awscli without the CA bundle refuses the certificate" \
	env -u AWS_CA_BUNDLE "$AWS_BIN" --endpoint-url "$ENDPOINT" s3 ls "s3://$B/" &&
	expect_contains "  ... with a certificate error" "$OUT" "CERTIFICATE_VERIFY_FAILED"

# ---- curl with its own SigV4 ----
# curl_s3 OUT ARGS...: prints the HTTP status
curl_s3() {
	local out=$1
	shift
	/usr/bin/curl -s --cacert "$C/ca.pem" --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -o "$out" -w '%{http_code}' "$@"
}
rand_file "$F/curl" $((3 * 1024 * 1024 + 7))
sha=$(sha256sum "$F/curl" | cut -d' ' -f1)
st=$(curl_s3 "$T/curl.out" -T "$F/curl" -H "x-amz-content-sha256: $sha" "$ENDPOINT/$B/curl")
expect_eq "curl PUT over https" "$st" 200
st=$(curl_s3 "$F/curl.got" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$ENDPOINT/$B/curl")
expect_eq "curl GET over https" "$st" 200
check "curl round trip byte-exact" cmp "$F/curl" "$F/curl.got"
hdrs=$(/usr/bin/curl -s -I --cacert "$C/ca.pem" --aws-sigv4 "aws:amz:us-east-1:s3" \
	--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$ENDPOINT/$B/curl" 2>&1)
expect_contains "curl HEAD over https -> 200" "$hdrs" "HTTP/1.1 200"
expect_contains "curl HEAD Content-Length" "$hdrs" "Content-Length: $((3 * 1024 * 1024 + 7))"
st=$(curl_s3 "$T/curl.out" --resolve "cairn.test:$S3_PORT:127.0.0.1" \
	"https://cairn.test:$S3_PORT/$B/curl")
expect_eq "curl to a name not in the certificate fails (no status)" "$st" 000

# ---- plain HTTP to the HTTPS port ----
st=$(/usr/bin/curl -s -m 20 -o "$T/plain.out" -w '%{http_code}' "http://127.0.0.1:$S3_PORT/" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then
	fail "plain HTTP to the HTTPS port got an HTTP answer (status $st)"
else
	echo "ok: plain HTTP to the HTTPS port fails (curl exit $rc)"
fi
st=$(curl_s3 "$F/curl.again" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$ENDPOINT/$B/curl")
expect_eq "the node still serves https after the plain HTTP client" "$st" 200
check "  ... byte-exact" cmp "$F/curl" "$F/curl.again"
if ! kill -0 "$CAIRN_PID" 2>/dev/null; then
	fail "cairn died after a plain HTTP request"
fi

# ---- boto3 (Debian's) over https with a CRC32 checksum ----
check "boto3 put_object ChecksumAlgorithm=CRC32 over https, read back" \
	"$PY" - "$ENDPOINT" "$B" "$C/ca.pem" <<'PY'
import sys, zlib, base64, boto3
from botocore.config import Config
ep, bucket, ca = sys.argv[1:4]
s3 = boto3.session.Session().client("s3", endpoint_url=ep, region_name="us-east-1", verify=ca,
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
body = bytes(range(256)) * 4099
want = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
r = s3.put_object(Bucket=bucket, Key="crc", Body=body, ChecksumAlgorithm="CRC32")
got = r.get("ChecksumCRC32")
if got is not None and got != want:
    sys.exit(f"PutObject returned ChecksumCRC32 {got}, want {want}")
data = s3.get_object(Bucket=bucket, Key="crc")["Body"].read()
if data != body:
    sys.exit(f"read back {len(data)} bytes that differ from the {len(body)} sent "
             f"(first 40: {data[:40]!r})")
r = s3.put_object(Bucket=bucket, Key="plain", Body=b"x" * 1000)
if s3.get_object(Bucket=bucket, Key="plain")["Body"].read() != b"x" * 1000:
    sys.exit("plain put_object read back differs")
print("ok")
PY

check "aws s3 rm --recursive" aws_ s3 rm --recursive "s3://$B/"
check "aws s3 rb" aws_ s3 rb "s3://$B"
finish
