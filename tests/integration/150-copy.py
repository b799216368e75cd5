#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""150-copy: CopyObject (issue 4) as a metadata operation.

Copies within a bucket and across buckets read back byte-exact; the metadata
directive COPY keeps the source's content type and x-amz-meta-*, REPLACE takes
the request's; a copy to itself is refused without REPLACE and changes the
metadata with it; every x-amz-copy-source-if-* header both ways (412 when it
fails); missing source bucket/key, a bucket of another user (403), bad
copy-source headers; the destination's If-None-Match / If-Match; a 64 MiB copy
adds no stored bytes and no manifest (pool stats), survives the source's
deletion and a gc; awscli `s3api copy-object` and `s3 cp s3://.. s3://..`."""
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

MIB = 1 << 20
t = lib.Test()
srv = t.server()
srv.start()
s3 = srv.client()
B, B2 = "copysrc", "copydst"
s3.create_bucket(Bucket=B)
s3.create_bucket(Bucket=B2)


def body_of(bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def pool_stats():
    req = lib.build_request("GET", "/admin/v1/pool/stats", srv.api_port)
    st, _, rb = lib.raw_request(srv.api_port, req)
    if st != 200:
        raise RuntimeError(f"pool stats: {st} {rb[:200]!r}")
    return json.loads(rb)["pool"]


# ---- basic copies ----
data = os.urandom(300 * 1024 + 7)
put = s3.put_object(Bucket=B, Key="src/a b+c?.bin", Body=data, ContentType="image/x-test",
                    Metadata={"colour": "blue", "n": "1"}, CacheControl="max-age=60")
etag = put["ETag"]
r = t.attempt("copy within a bucket (key with space, + and ?)", lambda: s3.copy_object(
    Bucket=B, Key="dst/same", CopySource={"Bucket": B, "Key": "src/a b+c?.bin"}))
if r:
    res = r.get("CopyObjectResult", {})
    t.expect_eq("CopyObjectResult ETag is the source's", res.get("ETag"), etag)
    lm = res.get("LastModified")
    t.check("CopyObjectResult has LastModified", isinstance(lm, datetime.datetime), repr(lm))
t.check("copy within a bucket reads back byte-exact", body_of(B, "dst/same") == data)
h = s3.head_object(Bucket=B, Key="dst/same")
t.expect_eq("COPY (default) keeps the content type", h["ContentType"], "image/x-test")
t.expect_eq("COPY keeps x-amz-meta-*", h["Metadata"], {"colour": "blue", "n": "1"})
t.expect_eq("COPY keeps Cache-Control", h.get("CacheControl"), "max-age=60")
t.expect_eq("copy has the source's ETag", h["ETag"], etag)

# (botocore URL-encodes a string CopySource itself)
t.attempt("copy across buckets, source as a string with a leading '/'", lambda: s3.copy_object(
    Bucket=B2, Key="x/y", CopySource="/" + B + "/src/a b+c?.bin"))
t.check("copy across buckets reads back byte-exact", body_of(B2, "x/y") == data)
t.attempt("copy source with ?versionId=null", lambda: s3.copy_object(
    Bucket=B2, Key="vnull", CopySource={"Bucket": B, "Key": "src/a b+c?.bin",
                                         "VersionId": "null"}))
t.check("versionId=null copy reads back", body_of(B2, "vnull") == data)
t.expect_error("copy source with another versionId -> InvalidArgument", lambda: s3.copy_object(
    Bucket=B2, Key="v1", CopySource={"Bucket": B, "Key": "src/a b+c?.bin", "VersionId": "3HL4"}),
    "InvalidArgument", 400)

t.attempt("copy with REPLACE", lambda: s3.copy_object(
    Bucket=B2, Key="repl", CopySource={"Bucket": B, "Key": "src/a b+c?.bin"},
    MetadataDirective="REPLACE", ContentType="text/plain", Metadata={"shape": "round"}))
h = s3.head_object(Bucket=B2, Key="repl")
t.expect_eq("REPLACE takes the request's content type", h["ContentType"], "text/plain")
t.expect_eq("REPLACE takes the request's metadata only", h["Metadata"], {"shape": "round"})
t.check("REPLACE drops the source's Cache-Control", "CacheControl" not in h, str(h))
t.check("REPLACE copy reads back byte-exact", body_of(B2, "repl") == data)
t.attempt("COPY ignores the request's metadata", lambda: s3.copy_object(
    Bucket=B2, Key="copyign", CopySource={"Bucket": B, "Key": "src/a b+c?.bin"},
    MetadataDirective="COPY", ContentType="text/plain", Metadata={"shape": "round"}))
h = s3.head_object(Bucket=B2, Key="copyign")
t.check("COPY with request headers keeps the source's metadata",
        h["ContentType"] == "image/x-test" and h["Metadata"] == {"colour": "blue", "n": "1"},
        str(h))
st, _, rb = lib.raw_request(srv.s3_port, lib.build_request(
    "PUT", f"/{B2}/baddir", srv.s3_port,
    headers={"x-amz-copy-source": f"/{B}/src/a%20b%2Bc%3F.bin",
             "x-amz-metadata-directive": "MERGE"}))
t.check("unknown metadata directive -> 400 InvalidArgument",
        st == 400 and lib.error_code(rb) == "InvalidArgument", f"{st} {rb[:300]!r}")

# a copy is a new object: its own Last-Modified
time.sleep(1.1)
s3.copy_object(Bucket=B2, Key="later", CopySource={"Bucket": B, "Key": "src/a b+c?.bin"})
t.check("the copy's Last-Modified is the copy's time, not the source's",
        s3.head_object(Bucket=B2, Key="later")["LastModified"] >
        s3.head_object(Bucket=B, Key="src/a b+c?.bin")["LastModified"])

# overwrite: the destination's old object goes
s3.put_object(Bucket=B2, Key="over", Body=b"old contents")
s3.copy_object(Bucket=B2, Key="over", CopySource={"Bucket": B, "Key": "src/a b+c?.bin"})
t.check("copy over an existing key replaces it", body_of(B2, "over") == data)

# empty and inline-sized objects
s3.put_object(Bucket=B, Key="empty", Body=b"")
s3.put_object(Bucket=B, Key="tiny", Body=b"tiny body")
s3.copy_object(Bucket=B2, Key="empty", CopySource={"Bucket": B, "Key": "empty"})
s3.copy_object(Bucket=B2, Key="tiny", CopySource={"Bucket": B, "Key": "tiny"})
t.check("empty object copies", body_of(B2, "empty") == b"")
t.check("inline-sized object copies", body_of(B2, "tiny") == b"tiny body")

# ---- copy to itself ----
t.expect_error("copy to itself without REPLACE -> 400 InvalidRequest", lambda: s3.copy_object(
    Bucket=B, Key="tiny", CopySource={"Bucket": B, "Key": "tiny"}), "InvalidRequest", 400)
try:
    s3.copy_object(Bucket=B, Key="tiny", CopySource={"Bucket": B, "Key": "tiny"})
except Exception as e:  # noqa: BLE001
    t.check("the self-copy refusal says why", "copy an object to itself" in str(e), str(e))
h0 = s3.head_object(Bucket=B, Key="tiny")
t.attempt("copy to itself with REPLACE", lambda: s3.copy_object(
    Bucket=B, Key="tiny", CopySource={"Bucket": B, "Key": "tiny"},
    MetadataDirective="REPLACE", Metadata={"foo": "bar"}, ContentType="text/x-new"))
h = s3.head_object(Bucket=B, Key="tiny")
t.expect_eq("self-copy with REPLACE changed the metadata", h["Metadata"], {"foo": "bar"})
t.expect_eq("self-copy with REPLACE changed the content type", h["ContentType"], "text/x-new")
t.check("self-copy keeps the bytes", body_of(B, "tiny") == b"tiny body")
t.check("self-copy moved Last-Modified on (or kept it within the second)",
        h["LastModified"] >= h0["LastModified"], f"{h0['LastModified']} -> {h['LastModified']}")

# ---- copy-source conditions ----
src = {"Bucket": B, "Key": "src/a b+c?.bin"}
lm = s3.head_object(Bucket=B, Key="src/a b+c?.bin")["LastModified"]
past = lm - datetime.timedelta(days=1)
future = lm + datetime.timedelta(days=1)
cases = [
    ("if-match right", dict(CopySourceIfMatch=etag), True),
    ("if-match bare etag", dict(CopySourceIfMatch=etag.strip('"')), True),
    ("if-match wrong", dict(CopySourceIfMatch='"0123456789abcdef0123456789abcdef"'), False),
    ("if-none-match other", dict(CopySourceIfNoneMatch="ABCORZ"), True),
    ("if-none-match same", dict(CopySourceIfNoneMatch=etag), False),
    ("if-modified-since past", dict(CopySourceIfModifiedSince=past), True),
    ("if-modified-since future", dict(CopySourceIfModifiedSince=future), False),
    ("if-unmodified-since future", dict(CopySourceIfUnmodifiedSince=future), True),
    ("if-unmodified-since past", dict(CopySourceIfUnmodifiedSince=past), False),
    # S3: if-match true wins over a false if-unmodified-since...
    ("if-match true + if-unmodified-since false",
     dict(CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=past), True),
    # ...and a false if-none-match fails whatever if-modified-since says
    ("if-none-match false + if-modified-since true",
     dict(CopySourceIfNoneMatch=etag, CopySourceIfModifiedSince=past), False),
]
for i, (name, kw, ok) in enumerate(cases):
    key = f"cond{i}"
    fn = (lambda kw=kw, key=key: s3.copy_object(Bucket=B2, Key=key, CopySource=src, **kw))
    if ok:
        t.attempt(f"copy-source {name}: copied", fn)
        t.check(f"copy-source {name}: reads back", body_of(B2, key) == data)
    else:
        t.expect_error(f"copy-source {name}: 412", fn, "PreconditionFailed", 412)
        t.expect_error(f"copy-source {name}: nothing written", lambda key=key: s3.head_object(
            Bucket=B2, Key=key), ("404", "NoSuchKey"), 404)

# ---- destination write conditions ----
st, _, rb = lib.raw_request(srv.s3_port, lib.build_request(
    "PUT", f"/{B2}/tiny", srv.s3_port,
    headers={"x-amz-copy-source": f"/{B}/tiny", "If-None-Match": "*"}))
t.check("copy with If-None-Match: * onto an existing key -> 412",
        st == 412 and lib.error_code(rb) == "PreconditionFailed", f"{st} {rb[:300]!r}")
st, _, rb = lib.raw_request(srv.s3_port, lib.build_request(
    "PUT", f"/{B2}/fresh", srv.s3_port,
    headers={"x-amz-copy-source": f"/{B}/tiny", "If-None-Match": "*"}))
t.check("copy with If-None-Match: * onto a new key -> 200", st == 200, f"{st} {rb[:300]!r}")
st, _, rb = lib.raw_request(srv.s3_port, lib.build_request(
    "PUT", f"/{B2}/nokey", srv.s3_port,
    headers={"x-amz-copy-source": f"/{B}/tiny", "If-Match": '"abc"'}))
t.check("copy with If-Match onto a missing key -> 404 NoSuchKey",
        st == 404 and lib.error_code(rb) == "NoSuchKey", f"{st} {rb[:300]!r}")
cur = s3.head_object(Bucket=B2, Key="fresh")["ETag"]
st, _, rb = lib.raw_request(srv.s3_port, lib.build_request(
    "PUT", f"/{B2}/fresh", srv.s3_port,
    headers={"x-amz-copy-source": f"/{B}/empty", "If-Match": '"ffff"'}))
t.check("copy with a wrong If-Match -> 412", st == 412, f"{st} {rb[:300]!r}")
st, _, rb = lib.raw_request(srv.s3_port, lib.build_request(
    "PUT", f"/{B2}/fresh", srv.s3_port,
    headers={"x-amz-copy-source": f"/{B}/empty", "If-Match": cur}))
t.check("copy with the right If-Match -> 200", st == 200, f"{st} {rb[:300]!r}")
t.check("... and replaced the destination", body_of(B2, "fresh") == b"")

# ---- errors ----
t.expect_error("missing source key -> 404 NoSuchKey", lambda: s3.copy_object(
    Bucket=B2, Key="k", CopySource={"Bucket": B, "Key": "no-such-key"}), "NoSuchKey", 404)
t.expect_error("missing source bucket -> 404 NoSuchBucket", lambda: s3.copy_object(
    Bucket=B2, Key="k", CopySource={"Bucket": "no-such-bucket", "Key": "x"}), "NoSuchBucket", 404)
t.expect_error("missing destination bucket -> 404 NoSuchBucket", lambda: s3.copy_object(
    Bucket="no-such-dst", Key="k", CopySource=src), "NoSuchBucket", 404)
for hv, why in [("nobucketkey", "no '/'"), ("/" + B + "/", "empty key"), ("/" + B, "no key"),
                ("/Bad_Bucket/k", "bad bucket name"), ("/" + B + "/k%zz", "bad %XX")]:
    st, _, rb = lib.raw_request(srv.s3_port, lib.build_request(
        "PUT", f"/{B2}/k", srv.s3_port, headers={"x-amz-copy-source": hv}))
    t.check(f"bad x-amz-copy-source ({why}) -> 400", st == 400 and lib.error_code(rb) in (
        "InvalidArgument", "InvalidBucketName"), f"{st} {rb[:300]!r}")
st, _, rb = lib.raw_request(srv.s3_port, lib.build_request(
    "PUT", f"/{B2}/k", srv.s3_port,
    headers={"x-amz-copy-source": f"/{B}/tiny", "x-amz-copy-source-range": "bytes=0-1"}))
t.check("x-amz-copy-source-range on CopyObject -> 400 InvalidArgument",
        st == 400 and lib.error_code(rb) == "InvalidArgument", f"{st} {rb[:300]!r}")

# another user's bucket, either side
kid, sec = srv.create_user_key("mallory")
m3 = srv.client(key=kid, secret=sec)
m3.create_bucket(Bucket="mallorys")
m3.put_object(Bucket="mallorys", Key="m", Body=b"mallory's")
t.expect_error("copy from a bucket the caller does not own -> 403", lambda: m3.copy_object(
    Bucket="mallorys", Key="stolen", CopySource=src), "AccessDenied", 403)
t.expect_error("copy into a bucket the caller does not own -> 403", lambda: s3.copy_object(
    Bucket="mallorys", Key="pushed", CopySource=src), "AccessDenied", 403)
t.expect_error("... and nothing was written", lambda: m3.head_object(
    Bucket="mallorys", Key="stolen"), ("404", "NoSuchKey"), 404)

# ---- 64 MiB copy: no bytes stored, survives the source's deletion ----
big = os.urandom(64 * MIB)
big_md5 = hashlib.md5(big).hexdigest()
s3.put_object(Bucket=B, Key="big", Body=big)
p0 = pool_stats()
r = t.attempt("copy 64 MiB", lambda: s3.copy_object(
    Bucket=B2, Key="big-copy", CopySource={"Bucket": B, "Key": "big"}))
p1 = pool_stats()
t.expect_eq("a 64 MiB copy adds no unique bytes", p1["unique_bytes"], p0["unique_bytes"])
t.expect_eq("a 64 MiB copy adds no stored bytes", p1["stored_bytes"], p0["stored_bytes"])
t.check("a 64 MiB copy adds no physical bytes", p1["physical_bytes"] <= p0["physical_bytes"],
        f"{p0['physical_bytes']} -> {p1['physical_bytes']}")
t.expect_eq("a copy adds no manifest (one more reference)", p1["manifests"], p0["manifests"])
s3.delete_object(Bucket=B, Key="big")
rc, out = srv.cli("gc", check=False)
t.check("cairn gc after deleting the source", rc == 0, out)
got = body_of(B2, "big-copy")
t.check("the copy reads back byte-exact after the source is deleted and gc ran",
        hashlib.md5(got).hexdigest() == big_md5, f"{len(got)} bytes")
p2 = pool_stats()
t.check("the copy's bytes are still live after gc", p2["unique_bytes"] >= 64 * MIB, str(p2))
s3.delete_object(Bucket=B2, Key="big-copy")
p3 = pool_stats()
t.check("deleting the last reference frees the bytes",
        p2["unique_bytes"] - p3["unique_bytes"] >= 64 * MIB - 4096, f"{p2} -> {p3}")
rc, out = srv.cli("fsck", check=False)
t.check("cairn fsck is clean after copies (refcounts agree)",
        rc == 0 and "result: clean" in out, out)

# ---- awscli ----
if os.access("/usr/bin/aws", os.X_OK):
    env = dict(os.environ)
    aws = ["/usr/bin/aws", "--endpoint-url", srv.endpoint, "--region", lib.REGION]

    def run(*args):
        r = subprocess.run(aws + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env, timeout=120)
        return r.returncode, r.stdout.decode(errors="replace")

    rc, out = run("s3api", "copy-object", "--bucket", B2, "--key", "cli/copied",
                  "--copy-source", f"{B}/src/a b+c?.bin")
    t.check("aws s3api copy-object exits 0", rc == 0, out)
    t.check("aws s3api copy-object prints the ETag", etag.strip('"') in out, out)
    t.check("aws s3api copy-object result reads back", body_of(B2, "cli/copied") == data)
    s3.put_object(Bucket=B, Key="cli-small", Body=b"small for s3 cp" * 100)
    rc, out = run("s3", "cp", f"s3://{B}/cli-small", f"s3://{B2}/cli/small")
    t.check("aws s3 cp s3:// s3:// exits 0", rc == 0, out)
    t.check("aws s3 cp s3:// s3:// copied byte-exact",
            body_of(B2, "cli/small") == b"small for s3 cp" * 100)
    t.check("aws s3 cp reports a server-side copy", re.search(r"copy: s3://", out), out)
else:
    print("note: /usr/bin/aws missing; awscli checks skipped")

t.finish()
