#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""110-aws-chunked: streaming uploads and flexible checksums (issue 4).

Hand-framed aws-chunked PUTs over raw sockets in all three modes (per-chunk
signed, signed with a signed trailer, unsigned with a trailer): several chunk
sizes, empty and 20 MiB bodies, every trailer algorithm; GET returns exactly
the decoded bytes (framing and trailer never stored) and, with
x-amz-checksum-mode, the checksum. Bad chunk signatures, bad trailer
checksums, bad framing and truncated streams get their S3 errors, store
nothing, and leave the server serving. Then boto3 put_object with
ChecksumAlgorithm, get_object(ChecksumMode), get_object_attributes, header
checksums, conflicting/absent checksums, and a presigned URL that carries an
empty body's checksum."""
import base64
import datetime
import hashlib
import hmac
import os
import socket
import struct
import sys
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import build_request, raw_request, read_response, error_code, Closed  # noqa: E402

t = lib.Test()
srv = t.server()
srv.start()
P = srv.s3_port
s3 = srv.client()
B = "chunked"
s3.create_bucket(Bucket=B)


# ---- checksums (pure Python; small bodies only for the table CRCs) ----

def _table(poly, width):
    tab = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        tab.append(c)
    return tab


_T32C = _table(0x82F63B78, 32)
_T64 = _table(0x9A6C9329AC4BC9B5, 64)


def _crc(tab, mask, data):
    c = mask
    for b in data:
        c = (c >> 8) ^ tab[(c ^ b) & 0xFF]
    return c ^ mask


def checksum(algo, data):
    if algo == "crc32":
        d = struct.pack(">I", zlib.crc32(data))
    elif algo == "crc32c":
        d = struct.pack(">I", _crc(_T32C, 0xFFFFFFFF, data))
    elif algo == "crc64nvme":
        d = struct.pack(">Q", _crc(_T64, 0xFFFFFFFFFFFFFFFF, data))
    elif algo == "sha1":
        d = hashlib.sha1(data).digest()
    else:
        d = hashlib.sha256(data).digest()
    return base64.b64encode(d).decode()


t.expect_eq("CRC64NVME check value", checksum("crc64nvme", b"123456789"),
            base64.b64encode(bytes.fromhex("ae8b14860a799888")).decode())
t.expect_eq("CRC32C check value", checksum("crc32c", b"123456789"),
            base64.b64encode(bytes.fromhex("e3069283")).decode())


# ---- aws-chunked framing and signing ----

def _hm(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256)


SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TR = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TR = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY = hashlib.sha256(b"").hexdigest()
SHORT = {SIGNED: "signed", SIGNED_TR: "signed-tr", UNSIGNED_TR: "unsigned-tr"}


def chunked_request(key, data, mode, chunk=65536, trailer=None, trailer_value=None,
                    tamper=None, extra_headers=None, content_encoding="aws-chunked",
                    decoded_length=None, http_chunked=False):
    """Returns the bytes of an aws-chunked PUT of data. trailer: algorithm
    name for x-amz-trailer (its value computed unless trailer_value given).
    tamper: "chunk-sig" flips a chunk signature, "trailer-sig" the trailer
    signature, "data" one data byte after signing."""
    host = f"127.0.0.1:{P}"
    now = datetime.datetime.now(datetime.timezone.utc)
    amz = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    hdrs = {"Content-Encoding": content_encoding,
            "x-amz-decoded-content-length": str(len(data) if decoded_length is None
                                                else decoded_length)}
    if trailer:
        hdrs["x-amz-trailer"] = f"x-amz-checksum-{trailer}"
    hdrs.update(extra_headers or {})
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    # the wire length must be known up front: build the body first with
    # placeholder signatures of the right length, sign after
    signed = mode != UNSIGNED_TR
    path = f"/{B}/{urllib.parse.quote(key)}"

    def body_with(seed, kd):
        out = []
        prev = seed
        for p in pieces + [b""]:
            if signed:
                sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz, f"{day}/{lib.REGION}/s3/aws4_request",
                                 prev, EMPTY, hashlib.sha256(p).hexdigest()])
                sig = _hm(kd, sts).hexdigest() if kd else "0" * 64
                if tamper == "chunk-sig" and p is pieces[0]:
                    sig = ("1" if sig[0] != "1" else "2") + sig[1:]
                prev = sig
                out.append(f"{len(p):x};chunk-signature={sig}\r\n".encode())
            else:
                out.append(f"{len(p):x}\r\n".encode())
            if p:
                out.append((p[:-1] + bytes([p[-1] ^ 1]) if tamper == "data" and p is pieces[0]
                            else p) + b"\r\n")
        if trailer:
            val = trailer_value if trailer_value is not None else checksum(trailer, data)
            line = f"x-amz-checksum-{trailer}:{val}"
            out.append(line.encode() + b"\r\n")
            if mode == SIGNED_TR:
                th = hashlib.sha256((line + "\n").encode()).hexdigest()
                sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz,
                                 f"{day}/{lib.REGION}/s3/aws4_request", prev, th])
                tsig = _hm(kd, sts).hexdigest() if kd else "0" * 64
                if tamper == "trailer-sig":
                    tsig = ("1" if tsig[0] != "1" else "2") + tsig[1:]
                out.append(f"x-amz-trailer-signature:{tsig}\r\n".encode())
        elif mode == SIGNED_TR:
            th = hashlib.sha256(b"").hexdigest()
            sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz,
                             f"{day}/{lib.REGION}/s3/aws4_request", prev, th])
            tsig = _hm(kd, sts).hexdigest() if kd else "0" * 64
            out.append(f"x-amz-trailer-signature:{tsig}\r\n".encode())
        out.append(b"\r\n")
        return b"".join(out)

    wire_len = len(body_with("0" * 64, None))
    if not http_chunked:
        hdrs["Content-Length"] = str(wire_len)
    auth = lib.sigv4_headers("PUT", path, "", host, hdrs, mode, when=now)
    seed = auth["Authorization"].rsplit("Signature=", 1)[1]
    kd = _hm(("AWS4" + lib.ROOT_SECRET).encode(), day).digest()
    for part in (lib.REGION, "s3", "aws4_request"):
        kd = _hm(kd, part).digest()
    body = body_with(seed, kd)
    assert len(body) == wire_len
    hdrs.pop("Content-Length", None)
    hdrs.update(auth)
    lines = [f"PUT {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in hdrs.items()]
    if http_chunked:
        lines.append("Transfer-Encoding: chunked")
        body = b"".join(b"%x\r\n" % len(body[i:i + 5000]) + body[i:i + 5000] + b"\r\n"
                        for i in range(0, len(body), 5000)) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {wire_len}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def put_chunked(key, data, mode, **kw):
    return raw_request(P, chunked_request(key, data, mode, **kw), timeout=120)


def get(key, mode=False):
    h = {"x-amz-checksum-mode": "ENABLED"} if mode else {}
    return raw_request(P, build_request("GET", f"/{B}/{urllib.parse.quote(key)}", P,
                                        headers=h), timeout=120)


def absent(key):
    st, _, body = get(key)
    return st == 404 and error_code(body) == "NoSuchKey"


def alive(desc):
    try:
        st, _, body = get("alive")
        t.check(f"{desc}: server still serves", st == 200 and body == b"ok", f"status {st}")
    except Closed as e:
        t.fail(f"{desc}: server still serves", str(e))


s3.put_object(Bucket=B, Key="alive", Body=b"ok")
rnd = os.urandom(300000)

# ---- valid bodies: all modes, chunk sizes, sizes ----
for mode in (SIGNED, SIGNED_TR, UNSIGNED_TR):
    for size, chunk in ((0, 65536), (1, 8192), (8192, 8192), (100000, 8192), (300000, 65536),
                        (70000, 1000)):
        data = rnd[:size]
        key = f"{SHORT[mode]}-{size}-{chunk}"
        tr = "crc32" if mode != SIGNED else None
        st, h, body = put_chunked(key, data, mode, chunk=chunk, trailer=tr)
        if not t.check(f"{mode} {size} B in {chunk} B chunks -> 200", st == 200,
                       f"status {st} {body[:300]!r}"):
            continue
        t.expect_eq(f"{mode} {size} B: ETag is MD5 of decoded bytes", h.get("etag"),
                    f'"{hashlib.md5(data).hexdigest()}"')
        st, h, got = get(key)
        t.check(f"{mode} {size} B: GET returns exactly the decoded bytes",
                st == 200 and got == data, f"status {st}, {len(got)} bytes")
        t.check(f"{mode} {size} B: no aws-chunked Content-Encoding stored",
                "content-encoding" not in h, str(h.get("content-encoding")))

# 20 MiB, signed per chunk (1 MiB chunks), through the pipeline thread
big = os.urandom(20 << 20)
st, h, body = put_chunked("big", big, SIGNED, chunk=1 << 20)
t.check("20 MiB signed aws-chunked PUT -> 200", st == 200, f"status {st} {body[:300]!r}")
st, h, got = get("big", mode=True)
t.check("20 MiB GET byte-exact", st == 200 and hashlib.sha256(got).digest() ==
        hashlib.sha256(big).digest(), f"status {st}, {len(got)} bytes")
t.check("20 MiB: default CRC64NVME checksum returned",
        h.get("x-amz-checksum-crc64nvme") is not None and
        h.get("x-amz-checksum-type") == "FULL_OBJECT", str(h))
# 20 MiB with an unsigned CRC32 trailer
st, h, body = put_chunked("big-tr", big, UNSIGNED_TR, chunk=65536, trailer="crc32")
t.check("20 MiB unsigned-trailer PUT -> 200", st == 200, f"status {st} {body[:300]!r}")
t.expect_eq("20 MiB: PUT response carries the CRC32", h.get("x-amz-checksum-crc32"),
            checksum("crc32", big))
del big

# each trailer algorithm, signed and unsigned; value returned on GET/HEAD
small = rnd[:5000]
for algo in ("crc32", "crc32c", "crc64nvme", "sha1", "sha256"):
    for mode in (SIGNED_TR, UNSIGNED_TR):
        key = f"tr-{algo}-{SHORT[mode]}"
        st, h, body = put_chunked(key, small, mode, chunk=2048, trailer=algo)
        t.check(f"{algo} trailer ({mode}) -> 200", st == 200, f"status {st} {body[:300]!r}")
        t.expect_eq(f"{algo} trailer: PUT returns the checksum",
                    h.get(f"x-amz-checksum-{algo}"), checksum(algo, small))
        st, h, got = get(key, mode=True)
        t.check(f"{algo} trailer: GET bytes exact", got == small)
        t.expect_eq(f"{algo}: GET with checksum mode returns it",
                    h.get(f"x-amz-checksum-{algo}"), checksum(algo, small))
        r = s3.head_object(Bucket=B, Key=key, ChecksumMode="ENABLED")
        t.expect_eq(f"{algo}: HEAD with checksum mode returns it",
                    r["ResponseMetadata"]["HTTPHeaders"].get(f"x-amz-checksum-{algo}"),
                    checksum(algo, small))
# no checksum mode -> no checksum; a range read -> no checksum
st, h, _ = get("tr-crc32-unsigned-tr")
t.check("GET without checksum mode: no checksum header",
        st == 200 and not any(k.startswith("x-amz-checksum-") for k in h), f"{st} {h}")
st, h, _ = raw_request(P, build_request("GET", f"/{B}/tr-crc32-unsigned-tr", P,
                                        headers={"x-amz-checksum-mode": "ENABLED",
                                                 "Range": "bytes=0-9"}))
t.check("range GET: no checksum header", st == 206 and "x-amz-checksum-crc32" not in h,
        f"{st} {h}")

# an aws-chunked body inside HTTP Transfer-Encoding: chunked (streams of
# unknown length)
st, h, rb = raw_request(P, chunked_request("te", rnd[:70000], UNSIGNED_TR, chunk=8192,
                                          trailer="crc32c", http_chunked=True))
t.check("aws-chunked inside Transfer-Encoding: chunked -> 200", st == 200, f"{st} {rb[:300]!r}")
st, h, got = get("te")
t.check("... GET returns the decoded bytes", st == 200 and got == rnd[:70000], f"{st}")

# aws-chunked,gzip keeps gzip
st, _, body = put_chunked("gz", b"zz", UNSIGNED_TR, content_encoding="aws-chunked,gzip")
st, h, _ = get("gz")
t.expect_eq("aws-chunked,gzip stores Content-Encoding gzip", h.get("content-encoding"), "gzip")

# ---- failures: the error, nothing stored, server still serving ----
data = rnd[:50000]


def refused(desc, key, code, status, **kw):
    try:
        st, _, body = put_chunked(key, data, kw.pop("mode", SIGNED), chunk=8192, **kw)
    except Closed as e:
        t.fail(f"{desc} -> {code}", f"connection closed: {e}")
        return
    t.check(f"{desc} -> {status} {code}", st == status and error_code(body) == code,
            f"status {st} {body[:400]!r}")
    t.check(f"{desc}: key absent", absent(key))


refused("wrong chunk signature", "bad-sig", "SignatureDoesNotMatch", 403, tamper="chunk-sig")
refused("data changed under its signature", "bad-data", "SignatureDoesNotMatch", 403,
        tamper="data")
refused("wrong trailer signature", "bad-tsig", "SignatureDoesNotMatch", 403, mode=SIGNED_TR,
        trailer="crc32", tamper="trailer-sig")
refused("wrong trailer checksum (signed)", "bad-ck", "BadDigest", 400, mode=SIGNED_TR,
        trailer="crc32c", trailer_value=checksum("crc32c", b"other"))
refused("wrong trailer checksum (unsigned)", "bad-ck2", "BadDigest", 400, mode=UNSIGNED_TR,
        trailer="sha256", trailer_value=checksum("sha256", b"other"))
refused("malformed trailer checksum", "bad-ck3", "InvalidRequest", 400, mode=UNSIGNED_TR,
        trailer="crc32", trailer_value="nope")
refused("decoded length too small", "bad-len", "IncompleteBody", 400, decoded_length=49999)
refused("decoded length too large", "bad-len2", "IncompleteBody", 400, decoded_length=50001)
alive("after refused bodies")

# bad framing: a size line that is not hex
req = chunked_request("bad-frame", b"abc", UNSIGNED_TR)
req = req.replace(b"\r\n\r\n3\r\n", b"\r\n\r\nz\r\n", 1)
st, _, body = raw_request(P, req)
t.check("non-hex chunk size -> 400 InvalidRequest",
        st == 400 and error_code(body) == "InvalidRequest", f"{st} {body[:300]!r}")
t.check("non-hex chunk size: key absent", absent("bad-frame"))

# no x-amz-decoded-content-length
req = chunked_request("no-dcl", b"abc", UNSIGNED_TR)
req = req.replace(b"x-amz-decoded-content-length: 3\r\n", b"", 1)
st, _, body = raw_request(P, req)
# the header is signed, so its absence fails the signature first unless
# unsigned: either way the upload must not land
t.check("missing x-amz-decoded-content-length refused", st in (403, 411),
        f"{st} {body[:300]!r}")
t.check("missing decoded length: key absent", absent("no-dcl"))

# truncated stream: half of the body, then close
req = chunked_request("trunc", rnd[:100000], SIGNED, chunk=8192)
with socket.create_connection(("127.0.0.1", P), timeout=30) as s:
    s.sendall(req[:len(req) // 2])
    s.shutdown(socket.SHUT_WR)
    try:
        st, _, body = read_response(s, 30)
        t.check("truncated stream: error status", st >= 400, f"{st}")
    except Closed:
        pass  # closing is an answer too
t.check("truncated stream: key absent", absent("trunc"))
alive("after a truncated stream")

# ---- boto3: ChecksumAlgorithm (headers over http with this botocore) ----
for algo in ("CRC32", "SHA1", "SHA256", "CRC32C"):
    key = f"boto-{algo}"
    try:
        r = s3.put_object(Bucket=B, Key=key, Body=small, ChecksumAlgorithm=algo)
    except Exception as e:  # CRC32C needs awscrt in this botocore
        if "awscrt" in str(e) or "MissingDependency" in type(e).__name__:
            t.log(f"boto3 {algo}: skipped ({type(e).__name__})")
            continue
        t.fail(f"boto3 put_object ChecksumAlgorithm={algo}", repr(e))
        continue
    t.expect_eq(f"boto3 {algo}: PUT returns the checksum", r.get(f"Checksum{algo}"),
                checksum(algo.lower(), small))
    r = s3.get_object(Bucket=B, Key=key, ChecksumMode="ENABLED")
    got = r["Body"].read()
    t.check(f"boto3 {algo}: get_object bytes exact", got == small)
    t.expect_eq(f"boto3 {algo}: get_object checksum", r.get(f"Checksum{algo}"),
                checksum(algo.lower(), small))
    a = s3.get_object_attributes(Bucket=B, Key=key,
                                 ObjectAttributes=["ETag", "Checksum", "ObjectSize",
                                                   "StorageClass", "ObjectParts"])
    t.expect_eq(f"boto3 {algo}: attributes ETag", a.get("ETag"), hashlib.md5(small).hexdigest())
    t.expect_eq(f"boto3 {algo}: attributes ObjectSize", a.get("ObjectSize"), len(small))
    t.expect_eq(f"boto3 {algo}: attributes StorageClass", a.get("StorageClass"), "STANDARD")
    t.expect_eq(f"boto3 {algo}: attributes checksum",
                a.get("Checksum", {}).get(f"Checksum{algo}"), checksum(algo.lower(), small))
    t.check(f"boto3 {algo}: single PUT has no ObjectParts", "ObjectParts" not in a, str(a))

# a plain put gets the CRC64NVME default
s3.put_object(Bucket=B, Key="plain", Body=small)
# this botocore predates CRC64NVME: read the XML itself
st, _, body = raw_request(P, build_request("GET", f"/{B}/plain?attributes", P,
                                           headers={"x-amz-object-attributes":
                                                    "Checksum,ObjectSize"}))
t.check("default checksum in GetObjectAttributes: CRC64NVME FULL_OBJECT",
        st == 200 and f"<ChecksumCRC64NVME>{checksum('crc64nvme', small)}</ChecksumCRC64NVME>"
        .encode() in body and b"<ChecksumType>FULL_OBJECT</ChecksumType>" in body
        and b"<ObjectSize>5000</ObjectSize>" in body, body[:500].decode(errors="replace"))
st, _, body = raw_request(P, build_request("GET", f"/{B}/plain?attributes", P,
                                           headers={"x-amz-object-attributes": "Bogus"}))
t.check("GetObjectAttributes with an unknown attribute -> 400 InvalidArgument",
        st == 400 and error_code(body) == "InvalidArgument", f"{st} {body[:300]!r}")
st, h, _ = get("plain", mode=True)
t.expect_eq("plain PUT: GET returns the CRC64NVME", h.get("x-amz-checksum-crc64nvme"),
            checksum("crc64nvme", small))
try:
    s3.get_object_attributes(Bucket=B, Key="nope", ObjectAttributes=["ETag"])
    t.fail("attributes of a missing key -> NoSuchKey", "no error")
except s3.exceptions.NoSuchKey:
    pass
except Exception as e:
    t.check("attributes of a missing key -> 404", "404" in str(e) or "NoSuchKey" in str(e), repr(e))


# ---- header checksums over a plain body ----
def put_hdr(key, body, headers):
    return raw_request(P, build_request("PUT", f"/{B}/{key}", P, headers=headers, body=body))


st, h, body = put_hdr("h-ok", small, {"x-amz-checksum-crc32c": checksum("crc32c", small),
                                      "x-amz-sdk-checksum-algorithm": "CRC32C"})
t.check("x-amz-checksum-crc32c header -> 200", st == 200, f"{st} {body[:300]!r}")
st, h, body = put_hdr("h-bad", small, {"x-amz-checksum-sha1": checksum("sha1", b"x")})
t.check("wrong x-amz-checksum-sha1 -> 400 BadDigest",
        st == 400 and error_code(body) == "BadDigest", f"{st} {body[:300]!r}")
t.check("wrong header checksum: key absent", absent("h-bad"))
st, h, body = put_hdr("h-two", small, {"x-amz-checksum-crc32": checksum("crc32", small),
                                       "x-amz-checksum-sha1": checksum("sha1", small)})
t.check("two checksum headers -> 400 InvalidRequest",
        st == 400 and error_code(body) == "InvalidRequest", f"{st} {body[:300]!r}")
st, h, body = put_hdr("h-sdk", small, {"x-amz-sdk-checksum-algorithm": "CRC32"})
t.check("sdk algorithm without a value -> 400 InvalidRequest",
        st == 400 and error_code(body) == "InvalidRequest", f"{st} {body[:300]!r}")
st, h, body = put_hdr("h-inv", small, {"x-amz-checksum-crc32": "AAAA"})
t.check("malformed checksum header -> 400 InvalidRequest",
        st == 400 and error_code(body) == "InvalidRequest", f"{st} {body[:300]!r}")
alive("after header checksum errors")


# ---- a presigned URL carrying the empty body's CRC32 (current SDK default) ----
def presign_put(key, extra_query):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    scope = f"{day}/{lib.REGION}/s3/aws4_request"
    q = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": f"{lib.ROOT_KEY}/{scope}",
         "X-Amz-Date": amz, "X-Amz-Expires": "300", "X-Amz-SignedHeaders": "host"}
    q.update(extra_query)
    enc = lambda s: urllib.parse.quote(s, safe="-_.~")  # noqa: E731
    cq = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(q.items()))
    path = f"/{B}/{key}"
    creq = "\n".join(["PUT", path, cq, f"host:127.0.0.1:{P}\n", "host", "UNSIGNED-PAYLOAD"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    kd = _hm(("AWS4" + lib.ROOT_SECRET).encode(), day).digest()
    for part in (lib.REGION, "s3", "aws4_request"):
        kd = _hm(kd, part).digest()
    return f"{path}?{cq}&X-Amz-Signature={_hm(kd, sts).hexdigest()}"


target = presign_put("pre", {"x-amz-checksum-crc32": "AAAAAA==",
                             "x-amz-sdk-checksum-algorithm": "CRC32"})
st, _, body = raw_request(P, build_request("PUT", target, P, body=small, sign=False))
t.check("presigned empty-body checksum + non-empty body -> 400 BadDigest",
        st == 400 and error_code(body) == "BadDigest", f"{st} {body[:400]!r}")
t.check("... whose message says the checksum is of an EMPTY body", b"EMPTY body" in body,
        body[:400].decode(errors="replace"))
t.check("presigned: key absent", absent("pre"))
target = presign_put("pre0", {"x-amz-checksum-crc32": "AAAAAA=="})
st, _, body = raw_request(P, build_request("PUT", target, P, body=b"", sign=False))
t.check("presigned empty-body checksum + empty body -> 200", st == 200, f"{st} {body[:300]!r}")
target = presign_put("pre1", {"x-amz-checksum-crc32": checksum("crc32", small)})
st, _, body = raw_request(P, build_request("PUT", target, P, body=small, sign=False))
t.check("presigned with the body's checksum -> 200", st == 200, f"{st} {body[:300]!r}")

# ---- DeleteObjects: Content-MD5 or a checksum required ----
delete_body = b"<Delete><Object><Key>plain</Key></Object></Delete>"
st, _, body = raw_request(P, build_request("POST", f"/{B}?delete", P, body=delete_body))
t.check("DeleteObjects without a digest -> 400 InvalidRequest",
        st == 400 and error_code(body) == "InvalidRequest", f"{st} {body[:300]!r}")
st, _, body = raw_request(P, build_request(
    "POST", f"/{B}?delete", P, body=delete_body,
    headers={"x-amz-checksum-crc32": checksum("crc32", delete_body)}))
t.check("DeleteObjects with x-amz-checksum-crc32 -> 200", st == 200, f"{st} {body[:300]!r}")
st, _, body = raw_request(P, build_request(
    "POST", f"/{B}?delete", P, body=delete_body,
    headers={"x-amz-checksum-crc32": checksum("crc32", b"nope")}))
t.check("DeleteObjects with a wrong checksum -> 400 BadDigest",
        st == 400 and error_code(body) == "BadDigest", f"{st} {body[:300]!r}")
r = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "h-ok"}]})
t.check("boto3 delete_objects (its own Content-MD5) works",
        r["ResponseMetadata"]["HTTPStatusCode"] == 200 and absent("h-ok"))

alive("at the end")
srv.stop()
t.finish()
