#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""165-s3-conformance: behaviours found wrong against S3 while measuring cairn
with the areas of Ceph's s3-tests (multipart, copy, presign, SigV4 failures,
conditional writes), each checked the way AWS S3 answers:

- CompleteMultipartUpload retried after it succeeded answers 200 with the
  same ETag and checksum (clients retry a Complete whose reply was lost),
  also when the retry carries If-None-Match: *; a retry whose part list is
  not the completed one, or after the key was overwritten, is NoSuchUpload.
- Complete with If-Match on a key that has no object: 404 NoSuchKey.
- GetObject/HeadObject partNumber=1 of a single-PUT object is a range of the
  whole object: 206 with Content-Range, no parts count; part 2: 416.
- A header-signed request without a valid X-Amz-Date or Date: 403
  AccessDenied, not a malformed-header 400."""
import base64
import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

MIB = 1 << 20
t = lib.Test()
srv = t.server()
srv.start()
s3 = srv.client()
B = "conf"
s3.create_bucket(Bucket=B)


def with_headers(op, headers, fn):
    hook = (lambda **kw: kw["params"]["headers"].update(headers))
    s3.meta.events.register(f"before-call.s3.{op}", hook)
    try:
        return fn()
    finally:
        s3.meta.events.unregister(f"before-call.s3.{op}", hook)


def upload(key, bodies, algo=None):
    kw = {"ChecksumAlgorithm": algo} if algo else {}
    u = s3.create_multipart_upload(Bucket=B, Key=key, **kw)["UploadId"]
    parts = []
    for i, b in enumerate(bodies):
        r = s3.upload_part(Bucket=B, Key=key, UploadId=u, PartNumber=i + 1, Body=b, **kw)
        p = {"ETag": r["ETag"], "PartNumber": i + 1}
        if algo:
            p["Checksum" + algo] = r["Checksum" + algo]
        parts.append(p)
    return u, parts


def complete(key, u, parts):
    return s3.complete_multipart_upload(Bucket=B, Key=key, UploadId=u,
                                        MultipartUpload={"Parts": parts})


# ---- a retried Complete ----
p1, p2 = os.urandom(5 * MIB), os.urandom(1000)
u, parts = upload("retry", [p1, p2], algo="SHA256")
r1 = complete("retry", u, parts)
r2 = t.attempt("Complete retried after success -> 200", lambda: complete("retry", u, parts))
t.check("the retry answers the same ETag and composite checksum",
        r2 is not None and (r2["ETag"], r2.get("ChecksumSHA256")) ==
        (r1["ETag"], r1["ChecksumSHA256"]) and r1["ChecksumSHA256"].endswith("-2"),
        f"{r1.get('ETag')} {r1.get('ChecksumSHA256')} / {r2 and r2.get('ETag')}")
t.check("the object is the upload's bytes, once",
        s3.get_object(Bucket=B, Key="retry")["Body"].read() == p1 + p2)
t.expect_error("a retry listing only part 1 -> NoSuchUpload",
               lambda: complete("retry", u, parts[:1]), "NoSuchUpload", 404)
t.expect_error("a retry with a part ETag changed -> NoSuchUpload",
               lambda: complete("retry", u, [parts[0], dict(parts[1], ETag='"' + "0" * 32 + '"')]),
               "NoSuchUpload", 404)
t.expect_error("a retry under another key -> NoSuchUpload",
               lambda: s3.complete_multipart_upload(Bucket=B, Key="other", UploadId=u,
                                                    MultipartUpload={"Parts": parts}),
               "NoSuchUpload", 404)
t.expect_error("ListParts of the completed upload is still NoSuchUpload",
               lambda: s3.list_parts(Bucket=B, Key="retry", UploadId=u), "NoSuchUpload", 404)

u, parts = upload("lockretry", [b"only part"])
r1 = with_headers("CompleteMultipartUpload", {"If-None-Match": "*"},
                  lambda: complete("lockretry", u, parts))
r2 = t.attempt("a Complete with If-None-Match: * retried -> 200 (the write it guarded is done)",
               lambda: with_headers("CompleteMultipartUpload", {"If-None-Match": "*"},
                                    lambda: complete("lockretry", u, parts)))
t.check("...with the same ETag", r2 is not None and r2["ETag"] == r1["ETag"], r2)
u2, parts2 = upload("lockretry", [b"only part"])
t.expect_error("another upload of the same bytes with If-None-Match: * -> 412",
               lambda: with_headers("CompleteMultipartUpload", {"If-None-Match": "*"},
                                    lambda: complete("lockretry", u2, parts2)),
               "PreconditionFailed", 412)
s3.abort_multipart_upload(Bucket=B, Key="lockretry", UploadId=u2)

u, parts = upload("overwritten", [b"v1"])
complete("overwritten", u, parts)
s3.put_object(Bucket=B, Key="overwritten", Body=b"a later PUT")
t.expect_error("a retry after the key was overwritten -> NoSuchUpload",
               lambda: complete("overwritten", u, parts), "NoSuchUpload", 404)
t.check("...and the later PUT stays",
        s3.get_object(Bucket=B, Key="overwritten")["Body"].read() == b"a later PUT")

# ---- Complete If-Match on a missing key ----
u, parts = upload("nokey", [b"x"])
t.expect_error("Complete with If-Match on a key without an object -> NoSuchKey",
               lambda: with_headers("CompleteMultipartUpload",
                                    {"If-Match": '"0123456789abcdef0123456789abcdef"'},
                                    lambda: complete("nokey", u, parts)),
               "NoSuchKey", 404)
t.expect_error("...and nothing was written",
               lambda: s3.head_object(Bucket=B, Key="nokey"), "404", 404)
t.attempt("...the upload is still there to complete",
          lambda: complete("nokey", u, parts))

# ---- partNumber of a single-PUT object ----
s3.put_object(Bucket=B, Key="single", Body=b"0123456789")
r = s3.get_object(Bucket=B, Key="single", PartNumber=1)
st = r["ResponseMetadata"]["HTTPStatusCode"]
t.check("GET partNumber=1 of a single-PUT object: 206, the whole object, Content-Range",
        st == 206 and r["Body"].read() == b"0123456789" and
        r.get("ContentRange") == "bytes 0-9/10" and r.get("PartsCount") is None,
        f"{st} {r.get('ContentRange')} {r.get('PartsCount')}")
h = s3.head_object(Bucket=B, Key="single", PartNumber=1)
t.check("HEAD partNumber=1: 206, Content-Length 10",
        h["ResponseMetadata"]["HTTPStatusCode"] == 206 and h["ContentLength"] == 10,
        h["ResponseMetadata"])
t.expect_error("GET partNumber=2 of a single-PUT object -> InvalidPartNumber",
               lambda: s3.get_object(Bucket=B, Key="single", PartNumber=2),
               "InvalidPartNumber", 416)
s3.put_object(Bucket=B, Key="empty", Body=b"")
r = s3.get_object(Bucket=B, Key="empty", PartNumber=1)
t.check("GET partNumber=1 of an empty object: 200, no Content-Range",
        r["ResponseMetadata"]["HTTPStatusCode"] == 200 and r.get("ContentRange") is None,
        r["ResponseMetadata"])

# ---- header auth without a valid request time ----
port = srv.s3_port


def no_date(req):
    return re.sub(rb"x-amz-date: [^\r]*\r\n", b"", req)


def bad_date(req):
    return re.sub(rb"x-amz-date: [^\r]*\r\n", b"x-amz-date: Bad Date\r\n", req)


for desc, edit in (("no X-Amz-Date nor Date", no_date), ("an X-Amz-Date that is no date",
                                                          bad_date)):
    req = edit(lib.build_request("PUT", f"/{B}/dated", port, body=b"x"))
    st, _, rb = lib.raw_request(port, req)
    t.check(f"a signed PUT with {desc} -> 403 AccessDenied",
            st == 403 and lib.error_code(rb) == "AccessDenied" and
            b"valid Date or x-amz-date" in rb, f"{st} {rb[:300]!r}")
t.expect_error("...and stored nothing", lambda: s3.head_object(Bucket=B, Key="dated"), "404", 404)
req = lib.build_request("GET", f"/{B}/single", port, headers={"Date": "Thu, 01 Jan 1970 00:00:00 GMT"})
st, _, rb = lib.raw_request(port, req)
t.check("a valid X-Amz-Date still signs (Date beside it is ignored)", st == 200, f"{st} {rb[:200]!r}")
t.check("the server still serves", s3.head_bucket(Bucket=B)["ResponseMetadata"]["HTTPStatusCode"]
        == 200)

t.finish()
