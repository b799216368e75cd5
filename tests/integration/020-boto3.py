#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""020-boto3: the S3 core through boto3 (Debian's python3-boto3): buckets,
objects, metadata, conditional GETs, response overrides, ranges, presigned
URLs fetched with curl, auth failures, odd and long keys, listings v1/v2,
multi-delete, and two users kept apart."""
import datetime
import hashlib
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

lib.requires("/usr/bin/curl")
import botocore.exceptions  # noqa: E402

t = lib.Test()
conf = os.path.join(t.dir, "vhost.conf")
with open(conf, "w") as f:
    f.write("[s3]\ndomain = s3.localhost\n")
srv = t.server(extra=["--config", conf])
srv.start()
s3 = srv.client()
B = f"boto-{os.getpid()}-{int(time.time()) % 100000}"


def md5(b):
    return hashlib.md5(b).hexdigest()


def curl(url, *extra):
    """curl URL; returns (status, body)."""
    out = os.path.join(t.dir, "curl.out")
    r = subprocess.run(["/usr/bin/curl", "-s", "-o", out, "-w", "%{http_code}", *extra, url],
                       stdout=subprocess.PIPE, timeout=60)
    with open(out, "rb") as f:
        body = f.read()
    return int(r.stdout or 0), body


# ---- buckets ---------------------------------------------------------------
t.attempt("create_bucket", lambda: s3.create_bucket(Bucket=B))
names = [b["Name"] for b in (t.attempt("list_buckets", s3.list_buckets) or {}).get("Buckets", [])]
t.check("list_buckets has the bucket", B in names, f"got {names}")
r = t.attempt("head_bucket", lambda: s3.head_bucket(Bucket=B))
t.check("x-amz-request-id on a success", bool(r and r["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")),
        f"headers {r and r['ResponseMetadata']['HTTPHeaders']}")
r = t.attempt("get_bucket_versioning", lambda: s3.get_bucket_versioning(Bucket=B))
t.check("versioning never enabled: no Status", r is not None and "Status" not in r, f"{r}")
r = t.attempt("get_bucket_location", lambda: s3.get_bucket_location(Bucket=B))
t.check("location is us-east-1 (None) ", r is not None and r.get("LocationConstraint") in (None, "", "us-east-1"),
        f"got {r and r.get('LocationConstraint')!r}")

# ---- objects and metadata ----------------------------------------------------
body = os.urandom(300_000)
exp = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
r = t.attempt("put_object with all metadata", lambda: s3.put_object(
    Bucket=B, Key="obj", Body=body, ContentType="application/x-cairn",
    ContentEncoding="identity", ContentDisposition="inline", ContentLanguage="fr",
    CacheControl="no-cache", Expires=exp, Metadata={"Owner-Name": "zoe", "n": "1"}))
t.expect_eq("put ETag is MD5", r and r.get("ETag"), f'"{md5(body)}"')
g = t.attempt("get_object", lambda: s3.get_object(Bucket=B, Key="obj"))
if g:
    got = g["Body"].read()
    t.check("get byte-exact", got == body, f"len {len(got)} vs {len(body)}")
    t.expect_eq("get ETag", g.get("ETag"), f'"{md5(body)}"')
    t.expect_eq("ContentType", g.get("ContentType"), "application/x-cairn")
    t.expect_eq("ContentEncoding", g.get("ContentEncoding"), "identity")
    t.expect_eq("ContentDisposition", g.get("ContentDisposition"), "inline")
    t.expect_eq("ContentLanguage", g.get("ContentLanguage"), "fr")
    t.expect_eq("CacheControl", g.get("CacheControl"), "no-cache")
    t.expect_eq("Expires", g.get("Expires"), exp)
    t.expect_eq("user metadata (lower-cased name)", g.get("Metadata"),
                {"owner-name": "zoe", "n": "1"})
h = t.attempt("head_object", lambda: s3.head_object(Bucket=B, Key="obj"))
if h:
    t.expect_eq("head ContentLength", h.get("ContentLength"), len(body))
    t.expect_eq("head Metadata", h.get("Metadata"), {"owner-name": "zoe", "n": "1"})
    t.check("head has LastModified", isinstance(h.get("LastModified"), datetime.datetime))
t.expect_error("user metadata over 2 KB -> MetadataTooLarge",
               lambda: s3.put_object(Bucket=B, Key="bigmeta", Body=b"x",
                                     Metadata={"big": "v" * 2100}), "MetadataTooLarge", 400)
r = t.attempt("overwrite", lambda: s3.put_object(Bucket=B, Key="ow", Body=b"first version"))
r = t.attempt("overwrite 2", lambda: s3.put_object(Bucket=B, Key="ow", Body=b"second"))
g = t.attempt("get after overwrite", lambda: s3.get_object(Bucket=B, Key="ow")["Body"].read())
t.expect_eq("overwrite wins", g, b"second")

# ---- conditional GETs --------------------------------------------------------
etag = f'"{md5(body)}"'
lm = h["LastModified"] if h else datetime.datetime.now(datetime.timezone.utc)
t.attempt("IfMatch right etag -> 200", lambda: s3.get_object(Bucket=B, Key="obj", IfMatch=etag)["Body"].read())
t.expect_error("IfMatch wrong etag -> 412", lambda: s3.get_object(Bucket=B, Key="obj", IfMatch='"0000"'),
               "PreconditionFailed", 412)
t.expect_error("IfNoneMatch same etag -> 304", lambda: s3.get_object(Bucket=B, Key="obj", IfNoneMatch=etag),
               "304", 304)
t.attempt("IfNoneMatch other etag -> 200",
          lambda: s3.get_object(Bucket=B, Key="obj", IfNoneMatch='"abc"')["Body"].read())
t.expect_error("IfModifiedSince=LastModified -> 304",
               lambda: s3.get_object(Bucket=B, Key="obj", IfModifiedSince=lm), "304", 304)
t.attempt("IfModifiedSince an hour before -> 200",
          lambda: s3.get_object(Bucket=B, Key="obj",
                                IfModifiedSince=lm - datetime.timedelta(hours=1))["Body"].read())
t.expect_error("IfUnmodifiedSince a day before -> 412",
               lambda: s3.get_object(Bucket=B, Key="obj", IfUnmodifiedSince=lm - datetime.timedelta(days=1)),
               "PreconditionFailed", 412)
t.attempt("IfUnmodifiedSince=LastModified -> 200",
          lambda: s3.get_object(Bucket=B, Key="obj", IfUnmodifiedSince=lm)["Body"].read())
t.expect_error("HEAD IfNoneMatch same etag -> 304",
               lambda: s3.head_object(Bucket=B, Key="obj", IfNoneMatch=etag), "304", 304)

# ---- response overrides --------------------------------------------------------
g = t.attempt("get with response-* overrides", lambda: s3.get_object(
    Bucket=B, Key="obj", ResponseContentType="text/plain", ResponseContentLanguage="en",
    ResponseContentDisposition='attachment; filename="x.txt"', ResponseCacheControl="max-age=5",
    ResponseContentEncoding="gzip", ResponseExpires=datetime.datetime(2040, 1, 1, tzinfo=datetime.timezone.utc)))
if g:
    g["Body"].read()
    t.expect_eq("override ContentType", g.get("ContentType"), "text/plain")
    t.expect_eq("override ContentLanguage", g.get("ContentLanguage"), "en")
    t.expect_eq("override ContentDisposition", g.get("ContentDisposition"), 'attachment; filename="x.txt"')
    t.expect_eq("override CacheControl", g.get("CacheControl"), "max-age=5")
    t.expect_eq("override ContentEncoding", g.get("ContentEncoding"), "gzip")
    t.expect_eq("override Expires", g.get("Expires"), datetime.datetime(2040, 1, 1, tzinfo=datetime.timezone.utc))

# ---- ranges -----------------------------------------------------------------------
ten = b"0123456789"
t.attempt("put 10-byte object", lambda: s3.put_object(Bucket=B, Key="ten", Body=ten))
for rng, want, cr in [("bytes=0-0", b"0", "bytes 0-0/10"), ("bytes=9-9", b"9", "bytes 9-9/10"),
                      ("bytes=3-5", b"345", "bytes 3-5/10"), ("bytes=5-", b"56789", "bytes 5-9/10"),
                      ("bytes=-1", b"9", "bytes 9-9/10"), ("bytes=-100", ten, "bytes 0-9/10"),
                      ("bytes=8-1000", b"89", "bytes 8-9/10")]:
    g = t.attempt(f"range {rng}", lambda: s3.get_object(Bucket=B, Key="ten", Range=rng))
    if g:
        got = g["Body"].read()
        t.check(f"range {rng} -> 206 {want!r} {cr}",
                got == want and g.get("ContentRange") == cr and
                g["ResponseMetadata"]["HTTPStatusCode"] == 206,
                f"got {g['ResponseMetadata']['HTTPStatusCode']} {got!r} {g.get('ContentRange')}")
t.expect_error("range bytes=10-20 on 10 bytes -> 416", lambda: s3.get_object(Bucket=B, Key="ten", Range="bytes=10-20"),
               "InvalidRange", 416)

# ---- empty object ---------------------------------------------------------------------
r = t.attempt("put empty object", lambda: s3.put_object(Bucket=B, Key="empty", Body=b""))
t.expect_eq("empty ETag", r and r.get("ETag"), '"d41d8cd98f00b204e9800998ecf8427e"')
g = t.attempt("get empty", lambda: s3.get_object(Bucket=B, Key="empty"))
if g:
    t.expect_eq("empty body", g["Body"].read(), b"")
    t.expect_eq("empty ContentLength", g.get("ContentLength"), 0)
t.expect_error("range bytes=0-0 on an empty object -> 416",
               lambda: s3.get_object(Bucket=B, Key="empty", Range="bytes=0-0"), "InvalidRange", 416)
t.expect_error("range bytes=0- on an empty object -> 416",
               lambda: s3.get_object(Bucket=B, Key="empty", Range="bytes=0-"), "InvalidRange", 416)

# ---- odd keys ------------------------------------------------------------------------------
odd = ["with space", "plus+sign", "percent%25and%", "unicode-ü-日本-🚀", "a/b//c", "tilde~star*quote'",
       "question?hash#amp&eq=", "brackets[]{}<>", "semi;colon:comma,", "dollar$at@", " lead and trail ",
       "back\\slash", "caret^pipe|`tick", "dot/./dotdot/../x", "tab\there"]
for k in odd:
    key = "odd/" + k
    data = key.encode() * 3
    if not t.attempt(f"put key {key!r}", lambda: s3.put_object(Bucket=B, Key=key, Body=data)):
        continue
    g = t.attempt(f"get key {key!r}", lambda: s3.get_object(Bucket=B, Key=key)["Body"].read())
    t.expect_eq(f"key {key!r} round trip", g, data)
r = t.attempt("list odd/ (botocore asks encoding-type=url and decodes)",
              lambda: s3.list_objects_v2(Bucket=B, Prefix="odd/"))
if r:
    t.expect_eq("listed odd keys", sorted(o["Key"] for o in r.get("Contents", [])), sorted("odd/" + k for k in odd))
r = t.attempt("list odd/ EncodingType=url explicit (no client decoding)",
              lambda: s3.list_objects_v2(Bucket=B, Prefix="odd/", EncodingType="url"))
if r:
    t.expect_eq("EncodingType echoed", r.get("EncodingType"), "url")
    raw = [o["Key"] for o in r.get("Contents", [])]
    t.expect_eq("url-encoded keys decode to the originals",
                sorted(urllib.parse.unquote(k) for k in raw), sorted("odd/" + k for k in odd))
    t.check("url-encoded keys are encoded (no raw space)", all(" " not in k for k in raw), f"got {raw}")
r = t.attempt("list v1 odd/ EncodingType=url explicit",
              lambda: s3.list_objects(Bucket=B, Prefix="odd/", EncodingType="url"))
if r:
    t.expect_eq("v1 url-encoded keys decode", sorted(urllib.parse.unquote(o["Key"]) for o in r.get("Contents", [])),
                sorted("odd/" + k for k in odd))

# ---- key length --------------------------------------------------------------------------------
for name, key, ok in [("1024 ASCII bytes", "k" * 1024, True), ("1025 ASCII bytes", "k" * 1025, False),
                      ("1024 UTF-8 bytes", "é" * 512, True), ("1025 UTF-8 bytes", "é" * 512 + "x", False)]:
    if ok:
        t.attempt(f"put key of {name}", lambda: s3.put_object(Bucket=B, Key=key, Body=b"long"))
        g = t.attempt(f"get key of {name}", lambda: s3.get_object(Bucket=B, Key=key)["Body"].read())
        t.expect_eq(f"key of {name} round trip", g, b"long")
        t.attempt(f"delete key of {name}", lambda: s3.delete_object(Bucket=B, Key=key))
    else:
        t.expect_error(f"key of {name} -> KeyTooLongError",
                       lambda: s3.put_object(Bucket=B, Key=key, Body=b"x"), "KeyTooLongError", 400)

# ---- listings: v1 marker, v2 continuation, delimiter, owner ---------------------------------------
keys = [f"lst/{c}{i}" for c in "ab" for i in range(5)] + ["lst/dir/x", "lst/dir/y", "lst/z/1"]
for k in keys:
    s3.put_object(Bucket=B, Key=k, Body=b"L")
r = t.attempt("list v1 MaxKeys=4", lambda: s3.list_objects(Bucket=B, Prefix="lst/", MaxKeys=4))
if r:
    t.expect_eq("v1 page 1 keys", [o["Key"] for o in r.get("Contents", [])], sorted(keys)[:4])
    t.expect_eq("v1 IsTruncated", r.get("IsTruncated"), True)
    t.check("v1 lists Owner", all("Owner" in o for o in r.get("Contents", [])), f"{r.get('Contents')}")
    r2 = t.attempt("list v1 Marker", lambda: s3.list_objects(Bucket=B, Prefix="lst/", Marker=sorted(keys)[3]))
    if r2:
        t.expect_eq("v1 after marker", [o["Key"] for o in r2.get("Contents", [])], sorted(keys)[4:])
        t.expect_eq("v1 last page not truncated", r2.get("IsTruncated"), False)
r = t.attempt("list v1 delimiter MaxKeys=3", lambda: s3.list_objects(Bucket=B, Prefix="lst/", Delimiter="/", MaxKeys=3))
if r:
    t.check("v1 truncated listing with delimiter gives NextMarker", bool(r.get("NextMarker")), f"{r}")
allk, tok, pages = [], None, 0
while True:
    kw = dict(Bucket=B, Prefix="lst/", MaxKeys=3)
    if tok:
        kw["ContinuationToken"] = tok
    r = t.attempt(f"list v2 page {pages + 1}", lambda: s3.list_objects_v2(**kw))
    if not r:
        break
    pages += 1
    t.check(f"v2 page {pages} KeyCount", r.get("KeyCount") == len(r.get("Contents", [])), f"{r.get('KeyCount')}")
    allk += [o["Key"] for o in r.get("Contents", [])]
    if not r.get("IsTruncated"):
        break
    tok = r.get("NextContinuationToken")
    if not tok or pages > 10:
        t.fail("v2 truncated page without NextContinuationToken (or too many pages)")
        break
t.expect_eq("v2 continuation walks every key once", allk, sorted(keys))
t.expect_eq("v2 pages of 3", pages, 5)
r = t.attempt("list v2 delimiter", lambda: s3.list_objects_v2(Bucket=B, Prefix="lst/", Delimiter="/"))
if r:
    t.expect_eq("v2 CommonPrefixes", [p["Prefix"] for p in r.get("CommonPrefixes", [])], ["lst/dir/", "lst/z/"])
    t.expect_eq("v2 Contents beside prefixes", [o["Key"] for o in r.get("Contents", [])],
                sorted(k for k in keys if k.count("/") == 1))
    t.check("v2 without FetchOwner has no Owner", all("Owner" not in o for o in r.get("Contents", [])))
r = t.attempt("list v2 FetchOwner", lambda: s3.list_objects_v2(Bucket=B, Prefix="lst/", FetchOwner=True))
if r:
    t.check("v2 FetchOwner lists Owner.ID", all(o.get("Owner", {}).get("ID") for o in r.get("Contents", [])),
            f"{r.get('Contents', [])[:1]}")
r = t.attempt("list v2 MaxKeys=0", lambda: s3.list_objects_v2(Bucket=B, Prefix="lst/", MaxKeys=0))
if r:
    t.check("v2 MaxKeys=0: no keys and not truncated (as AWS)",
            not r.get("Contents") and r.get("IsTruncated") is False, f"{r}")
r = t.attempt("list v2 StartAfter", lambda: s3.list_objects_v2(Bucket=B, Prefix="lst/", StartAfter="lst/b3"))
if r:
    t.expect_eq("v2 StartAfter", [o["Key"] for o in r.get("Contents", [])], [k for k in sorted(keys) if k > "lst/b3"])

# ---- multi-delete -------------------------------------------------------------------------------------
r = t.attempt("delete_objects", lambda: s3.delete_objects(
    Bucket=B, Delete={"Objects": [{"Key": "lst/a0"}, {"Key": "lst/a1"}, {"Key": "odd/with space"}]}))
if r:
    t.expect_eq("delete_objects Deleted", sorted(d["Key"] for d in r.get("Deleted", [])),
                ["lst/a0", "lst/a1", "odd/with space"])
r = t.attempt("delete_objects Quiet", lambda: s3.delete_objects(
    Bucket=B, Delete={"Objects": [{"Key": "lst/a2"}], "Quiet": True}))
t.check("quiet: no Deleted entries", r is not None and not r.get("Deleted"), f"{r}")
t.expect_error("deleted object is gone", lambda: s3.get_object(Bucket=B, Key="lst/a2"), "NoSuchKey", 404)
t.expect_error("delete_objects of 1001 keys -> MalformedXML", lambda: s3.delete_objects(
    Bucket=B, Delete={"Objects": [{"Key": f"m{i}"} for i in range(1001)]}), "MalformedXML", 400)

# ---- presigned URLs with curl ----------------------------------------------------------------------------
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "obj"}, ExpiresIn=300)
st, got = curl(url)
t.check("presigned GET with curl -> 200 byte-exact", st == 200 and got == body, f"status {st}, {len(got)} bytes")
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "odd/unicode-ü-日本-🚀"}, ExpiresIn=300)
st, got = curl(url)
t.check("presigned GET of a unicode key", st == 200 and got == ("odd/unicode-ü-日本-🚀".encode() * 3),
        f"status {st}, {got[:200]!r}")
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "obj"}, ExpiresIn=1)
time.sleep(2.5)
st, got = curl(url)
t.check("expired presigned URL -> 403 AccessDenied", st == 403 and lib.error_code(got) == "AccessDenied",
        f"status {st}, body {got[:300]!r}")
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "obj"}, ExpiresIn=300)
sig = url.split("X-Amz-Signature=")[1][:64]
flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
st, got = curl(url.replace(sig, flipped))
t.check("presigned URL with one signature digit changed -> 403 SignatureDoesNotMatch",
        st == 403 and lib.error_code(got) == "SignatureDoesNotMatch", f"status {st}, {got[:300]!r}")
st, got = curl(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
t.check("presigned signature of 65 digits -> 4xx S3 error", st in (400, 403) and lib.error_code(got) in (
    "SignatureDoesNotMatch", "AuthorizationQueryParametersError", "AccessDenied"), f"status {st}, {got[:300]!r}")
st, got = curl(url.replace(f"/{B}/obj", f"/{B}/ten"))
t.check("presigned URL used for another key -> 403 SignatureDoesNotMatch",
        st == 403 and lib.error_code(got) == "SignatureDoesNotMatch", f"status {st}, {got[:300]!r}")

# ---- auth failures ------------------------------------------------------------------------------------------
bad = srv.client(secret=lib.ROOT_SECRET[:-1] + "X")
t.expect_error("wrong secret -> SignatureDoesNotMatch", lambda: bad.list_objects_v2(Bucket=B),
               "SignatureDoesNotMatch", 403)
t.expect_error("wrong secret on PUT -> SignatureDoesNotMatch",
               lambda: bad.put_object(Bucket=B, Key="nope", Body=b"123"), "SignatureDoesNotMatch", 403)
unk = srv.client(key="AKUNKNOWNUNKNOWN0000")
t.expect_error("unknown key -> InvalidAccessKeyId", lambda: unk.list_buckets(), "InvalidAccessKeyId", 403)
try:
    e_resp = None
    bad.get_object(Bucket=B, Key="obj")
except botocore.exceptions.ClientError as e:
    e_resp = e.response
t.check("x-amz-request-id on an error", bool(e_resp and e_resp["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")))
skew = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
st, hd, bd = lib.raw_request(srv.s3_port, lib.build_request("GET", f"/{B}/ten", srv.s3_port, when=skew))
t.check("clock skew 20 min -> 403 RequestTimeTooSkewed", st == 403 and lib.error_code(bd) == "RequestTimeTooSkewed",
        f"got {st} {bd[:300]!r}")
ok_when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
st, hd, bd = lib.raw_request(srv.s3_port, lib.build_request("GET", f"/{B}/ten", srv.s3_port, when=ok_when))
t.check("clock skew 10 min is accepted", st == 200 and bd == ten, f"got {st} {bd[:300]!r}")
st, hd, bd = lib.raw_request(srv.s3_port, lib.build_request("GET", f"/{B}/ten", srv.s3_port, sign=False))
t.check("anonymous GET of a private object -> 403 AccessDenied", st == 403 and lib.error_code(bd) == "AccessDenied",
        f"got {st} {bd[:300]!r}")

# ---- users kept apart --------------------------------------------------------------------------------------
creds = t.attempt("cairn user create + key create alice", lambda: srv.create_user_key("alice"))
if creds:
    kid, sec = creds
    al = srv.client(key=kid, secret=sec)
    r = t.attempt("alice list_buckets", lambda: al.list_buckets())
    t.check("alice does not see root's bucket", r is not None and B not in [b["Name"] for b in r.get("Buckets", [])],
            f"{r}")
    t.expect_error("alice GET root's object -> AccessDenied", lambda: al.get_object(Bucket=B, Key="obj"),
                   "AccessDenied", 403)
    t.expect_error("alice PUT into root's bucket -> AccessDenied",
                   lambda: al.put_object(Bucket=B, Key="intruder", Body=b"x"), "AccessDenied", 403)
    t.expect_error("alice lists root's bucket -> AccessDenied", lambda: al.list_objects_v2(Bucket=B),
                   "AccessDenied", 403)
    t.expect_error("alice deletes root's object -> AccessDenied", lambda: al.delete_object(Bucket=B, Key="obj"),
                   "AccessDenied", 403)
    t.expect_error("alice deletes root's bucket -> AccessDenied", lambda: al.delete_bucket(Bucket=B),
                   "AccessDenied", 403)
    t.expect_error("alice HEADs root's bucket -> 403", lambda: al.head_bucket(Bucket=B), "403", 403)
    t.expect_error("alice creates root's bucket name -> BucketAlreadyExists",
                   lambda: al.create_bucket(Bucket=B), "BucketAlreadyExists", 409)
    try:
        s3.create_bucket(Bucket=B)
        t.check("root re-creates its own bucket: us-east-1 legacy 200", True)
    except botocore.exceptions.ClientError as e:
        t.check("root re-creates its own bucket -> BucketAlreadyOwnedByYou",
                e.response["Error"]["Code"] == "BucketAlreadyOwnedByYou" and
                e.response["ResponseMetadata"]["HTTPStatusCode"] == 409, f"{e}")
    AB = B + "-alice"
    t.attempt("alice creates her own bucket", lambda: al.create_bucket(Bucket=AB))
    t.attempt("alice puts into her bucket", lambda: al.put_object(Bucket=AB, Key="mine", Body=b"alice data"))
    g = t.attempt("alice reads her object", lambda: al.get_object(Bucket=AB, Key="mine")["Body"].read())
    t.expect_eq("alice's object", g, b"alice data")
    r = t.attempt("alice list_buckets again", lambda: al.list_buckets())
    t.expect_eq("alice sees only her bucket", r and [b["Name"] for b in r["Buckets"]], [AB])
    rc, out = srv.cli("key", "list", "alice", check=False)
    t.check("cairn key list alice shows the key id", rc == 0 and kid in out, out)
    t.check("cairn key list never prints the secret", sec not in out, out)
    rc, out = srv.cli("user", "list", check=False)
    t.check("cairn user list shows alice", rc == 0 and "alice" in out, out)
    t.check("server log never contains alice's secret", sec not in srv.log_text())
    t.check("server log never contains root's secret", lib.ROOT_SECRET not in srv.log_text())
    rc, out = srv.cli("user", "delete", "alice", check=False)
    t.check("cairn user delete refuses while alice owns a bucket", rc != 0, f"rc {rc}: {out}")
    t.attempt("alice empties her bucket", lambda: al.delete_object(Bucket=AB, Key="mine"))
    t.attempt("alice deletes her bucket", lambda: al.delete_bucket(Bucket=AB))
    rc, out = srv.cli("key", "delete", kid, check=False)
    t.check("cairn key delete", rc == 0, out)
    t.expect_error("deleted key -> InvalidAccessKeyId", lambda: al.list_buckets(), "InvalidAccessKeyId", 403)
    rc, out = srv.cli("user", "delete", "alice", check=False)
    t.check("cairn user delete alice", rc == 0, out)

# ---- virtual-host-style addressing (BUCKET.s3.localhost) --------------------------------------------
import socket  # noqa: E402
_gai = socket.getaddrinfo


def _gai_localhost(host, *a, **kw):
    """*.localhost is loopback (RFC 6761); glibc does not resolve it by itself."""
    if isinstance(host, str) and (host == "localhost" or host.endswith(".localhost")):
        host = "127.0.0.1"
    return _gai(host, *a, **kw)


socket.getaddrinfo = _gai_localhost
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
vh = boto3.session.Session().client(
    "s3", endpoint_url=f"http://s3.localhost:{srv.s3_port}", aws_access_key_id=lib.ROOT_KEY,
    aws_secret_access_key=lib.ROOT_SECRET, region_name=lib.REGION,
    config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"},
                  retries={"total_max_attempts": 1}))
VB = B + "-vh"
t.attempt("virtual host: create_bucket", lambda: vh.create_bucket(Bucket=VB))
t.attempt("virtual host: put_object", lambda: vh.put_object(Bucket=VB, Key="dir/v h+1", Body=b"virtual"))
g = t.attempt("path style reads the virtual-host upload",
              lambda: s3.get_object(Bucket=VB, Key="dir/v h+1")["Body"].read())
t.expect_eq("virtual-host object seen path style", g, b"virtual")
g = t.attempt("virtual host: get_object of a path-style upload",
              lambda: vh.get_object(Bucket=B, Key="ten")["Body"].read())
t.expect_eq("path-style object seen through the virtual host", g, ten)
r = t.attempt("virtual host: list_objects_v2", lambda: vh.list_objects_v2(Bucket=VB, Prefix="dir/"))
t.expect_eq("virtual host listing", r and [o["Key"] for o in r.get("Contents", [])], ["dir/v h+1"])
t.attempt("virtual host: head_bucket", lambda: vh.head_bucket(Bucket=VB))
t.check("access log names the bucket of a virtual-host request",
        f" HEAD /{VB} 200 " in srv.log_text() or f" HEAD /{VB}/ 200 " in srv.log_text(),
        [l for l in srv.log_text().splitlines() if "HeadBucket" in l][-1:])
t.expect_error("virtual host: missing key -> NoSuchKey",
               lambda: vh.get_object(Bucket=VB, Key="nope"), "NoSuchKey", 404)
t.attempt("virtual host: delete_object", lambda: vh.delete_object(Bucket=VB, Key="dir/v h+1"))
t.attempt("virtual host: delete_bucket", lambda: vh.delete_bucket(Bucket=VB))
socket.getaddrinfo = _gai

# ---- bucket errors and clean-up ---------------------------------------------------------------------------
t.expect_error("delete non-empty bucket -> BucketNotEmpty", lambda: s3.delete_bucket(Bucket=B), "BucketNotEmpty", 409)
t.expect_error("missing bucket -> NoSuchBucket", lambda: s3.list_objects_v2(Bucket=B + "-none"), "NoSuchBucket", 404)
t.expect_error("missing key -> NoSuchKey", lambda: s3.get_object(Bucket=B, Key="none"), "NoSuchKey", 404)
t.expect_error("head missing key -> 404", lambda: s3.head_object(Bucket=B, Key="none"), "404", 404)
t.expect_error("bad bucket name -> InvalidBucketName", lambda: s3.create_bucket(Bucket="UPPER"),
               "InvalidBucketName", 400)
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=B):
    objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
    if objs:
        s3.delete_objects(Bucket=B, Delete={"Objects": objs, "Quiet": True})
t.attempt("delete the emptied bucket", lambda: s3.delete_bucket(Bucket=B))
t.expect_error("deleted bucket -> NoSuchBucket", lambda: s3.head_bucket(Bucket=B), "404", 404)
t.finish()
