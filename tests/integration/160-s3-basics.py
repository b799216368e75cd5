#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""160-s3-basics: the basic S3 surface measured against the areas of
ceph/s3-tests (buckets, objects, metadata, request headers, multi-object
delete, ListObjects v1/v2, ranges, conditional reads), with the regressions
found there (issue 4):

- encoding-type=url keeps '/' as it is and encodes the rest of a name like a
  URL path ("foo+1/" lists as "foo%2B1/", "quux ab/" as "quux%20ab/"), in
  Key, CommonPrefixes, Prefix, Delimiter, Marker/StartAfter;
- an empty continuation-token starts the listing over and is echoed;
- an x-amz-meta-* header with an empty value is stored and returned empty
  (libmicrohttpd refuses empty header values: cairn sends one space);
- an x-amz-meta-* value with control characters is refused (400);
- an empty Authorization header is anonymous: 403 AccessDenied, not 400.

The rest pins behaviour that already passed so it stays that way: delimiter
and prefix paging with markers and tokens, max-keys edge cases, fetch-owner,
bucket name rules, multi-object delete and its 1000-key limit, ranges, GET
and HEAD with If-Match / If-None-Match / If-(Un)Modified-Since, Expect and
Content-Length edge cases, presigned URL expiry."""
import hashlib
import os
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

t = lib.Test()
srv = t.server()
srv.start()
s3 = srv.client(max_pool_connections=16)
_n = [0]


def bucket(keys=()):
    _n[0] += 1
    b = f"basics-{_n[0]}"
    s3.create_bucket(Bucket=b)
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    return b


def keys(r):
    return [o["Key"] for o in r.get("Contents", [])]


def prefixes(r):
    return [p["Prefix"] for p in r.get("CommonPrefixes", [])]


def raw(method, target, headers=None, body=b"", sign=True, content_length="auto"):
    """A hand-made request; returns (status, headers, body)."""
    host = f"127.0.0.1:{srv.s3_port}"
    h = dict(headers or {})
    path, _, query = target.partition("?")
    if sign:
        h.update(lib.sigv4_headers(method, path, query, host, h, lib.sha256(body)))
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in h.items()]
    if content_length == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return lib.raw_request(srv.s3_port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


# ---- encoding-type=url (regression) ----
b = bucket(["foo+1/bar", "foo/bar/xyzzy", "quux ab/thud", "asdf+b"])
for name, fn in (("v1", s3.list_objects), ("v2", s3.list_objects_v2)):
    # An explicit EncodingType: botocore hands back the values as sent.
    r = fn(Bucket=b, Delimiter="/", EncodingType="url")
    t.expect_eq(f"{name} url: Delimiter '/' is not encoded", r.get("Delimiter"), "/")
    t.expect_eq(f"{name} url: '+' is %2B in a key", keys(r), ["asdf%2Bb"])
    t.expect_eq(f"{name} url: common prefixes keep '/', encode '+' and ' '", prefixes(r),
                ["foo%2B1/", "foo/", "quux%20ab/"])
    r = fn(Bucket=b, Prefix="foo/", EncodingType="url")
    t.expect_eq(f"{name} url: Prefix keeps '/'", r.get("Prefix"), "foo/")
r = s3.list_objects(Bucket=b, Marker="foo+1/bar", EncodingType="url")
t.expect_eq("v1 url: Marker is encoded the same way", r.get("Marker"), "foo%2B1/bar")
r = s3.list_objects_v2(Bucket=b, StartAfter="quux ab/", EncodingType="url")
t.expect_eq("v2 url: StartAfter is encoded the same way", r.get("StartAfter"), "quux%20ab/")
# boto3's own list_objects sets encoding-type=url and decodes: names round-trip.
r = s3.list_objects(Bucket=b, Delimiter="/")
t.expect_eq("v1 auto-encoded listing round-trips names", (keys(r), prefixes(r)),
            (["asdf+b"], ["foo+1/", "foo/", "quux ab/"]))
# Raw body: no "%2F" anywhere for names that contain '/'.
st, _, body = raw("GET", f"/{b}?encoding-type=url&prefix=foo%2F")
t.check("raw v1 url listing has no %2F", st == 200 and b"%2F" not in body, body[:300])

# ---- ListObjectsV2 continuation tokens (empty token is a regression) ----
kn = ["bar", "baz", "foo", "quxx"]
b = bucket(kn)
r = t.attempt("v2 empty continuation-token is accepted (regression)",
              lambda: s3.list_objects_v2(Bucket=b, ContinuationToken="")) or {}
t.expect_eq("v2 empty continuation-token lists from the start and is echoed",
            (r.get("ContinuationToken"), r.get("IsTruncated"), keys(r)), ("", False, kn))
tok = s3.list_objects_v2(Bucket=b, MaxKeys=1)["NextContinuationToken"]
r = s3.list_objects_v2(Bucket=b, ContinuationToken=tok)
t.expect_eq("v2 token resumes after the first key", (r["ContinuationToken"], keys(r)),
            (tok, kn[1:]))
tok = s3.list_objects_v2(Bucket=b, StartAfter="bar", MaxKeys=1)["NextContinuationToken"]
r = s3.list_objects_v2(Bucket=b, StartAfter="bar", ContinuationToken=tok)
t.expect_eq("v2 token wins over start-after, which is echoed",
            (r.get("StartAfter"), keys(r)), ("bar", ["foo", "quxx"]))
r = s3.list_objects_v2(Bucket=b, StartAfter="")
t.expect_eq("v2 empty start-after lists everything", keys(r), kn)
t.expect_error("v2 garbage continuation-token: 400 InvalidArgument",
               lambda: s3.list_objects_v2(Bucket=b, ContinuationToken="@@not-a-token@@"),
               "InvalidArgument", 400)
for name, fn, mk in (("v1", s3.list_objects, "Marker"), ("v2", s3.list_objects_v2, "StartAfter")):
    for mark, want in (("\n", kn), ("blah", ["foo", "quxx"]), ("zzz", [])):
        r = fn(Bucket=b, **{mk: mark})
        t.expect_eq(f"{name} {mk}={mark!r}", (r.get(mk), r["IsTruncated"], keys(r)),
                    (mark, False, want))
    r = fn(Bucket=b, MaxKeys=0)
    t.expect_eq(f"{name} max-keys=0: empty, not truncated", (keys(r), r["IsTruncated"]), ([], False))
    r = fn(Bucket=b)
    t.expect_eq(f"{name} default MaxKeys is 1000", r["MaxKeys"], 1000)
r = s3.list_objects(Bucket=b)
t.expect_eq("v1 Marker is present and empty without one", r.get("Marker"), "")
c = srv.client()
c.meta.events.register("before-call.s3.ListObjects",
                       lambda **kw: kw["params"].__setitem__("url", kw["params"]["url"] + "&max-keys=blah"))
t.expect_error("max-keys=blah: 400 InvalidArgument", lambda: c.list_objects(Bucket=b),
               "InvalidArgument", 400)

# ---- delimiter / prefix paging, v1 markers and v2 tokens ----
b = bucket(["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla"])


def page1(prefix, marker, mx):
    r = s3.list_objects(Bucket=b, Delimiter="/", Prefix=prefix, Marker=marker, MaxKeys=mx)
    return r["IsTruncated"], r.get("NextMarker"), keys(r), prefixes(r)


t.expect_eq("v1 page 1/3", page1("", "", 1), (True, "asdf", ["asdf"], []))
t.expect_eq("v1 page 2/3 (NextMarker is the common prefix)", page1("", "asdf", 1),
            (True, "boo/", [], ["boo/"]))
t.expect_eq("v1 page 3/3 (marker on a common prefix skips it)", page1("", "boo/", 1),
            (False, None, [], ["cquux/"]))
t.expect_eq("v1 prefix boo/ max 2", page1("boo/", "", 2), (False, None, ["boo/bar"], ["boo/baz/"]))
pages, tok = [], None
while True:
    kw = {"ContinuationToken": tok} if tok else {}
    r = s3.list_objects_v2(Bucket=b, Delimiter="/", MaxKeys=1, **kw)
    pages.append((keys(r), prefixes(r), r["KeyCount"]))
    tok = r.get("NextContinuationToken")
    if not r["IsTruncated"]:
        t.check("v2 last page has no NextContinuationToken", tok is None, repr(r))
        break
t.expect_eq("v2 pages of one", pages, [(["asdf"], [], 1), ([], ["boo/"], 1), ([], ["cquux/"], 1)])
for d, ks, want_k, want_p in (("a", ["bar", "baz", "cab", "foo"], ["foo"], ["ba", "ca"]),
                              ("%", ["b%ar", "b%az", "c%ab", "foo"], ["foo"], ["b%", "c%"]),
                              (" ", ["b ar", "b az", "c ab", "foo"], ["foo"], ["b ", "c "]),
                              ("\n", ["bar", "baz"], ["bar", "baz"], [])):
    bb = bucket(ks)
    r = s3.list_objects_v2(Bucket=bb, Delimiter=d)
    t.expect_eq(f"v2 delimiter {d!r}", (r.get("Delimiter"), keys(r), prefixes(r)), (d, want_k, want_p))
r = s3.list_objects(Bucket=bb, Delimiter="")
t.check("empty delimiter is not echoed", "Delimiter" not in r, repr(r.get("Delimiter")))
bb = bucket(["bar", "bazar", "cab", "foo"])
r = s3.list_objects_v2(Bucket=bb, Delimiter="a", Prefix="ba")
t.expect_eq("v2 prefix ba delimiter a", (keys(r), prefixes(r)), (["bar"], ["baza"]))
r = s3.list_objects_v2(Bucket=bb, FetchOwner=True)
t.check("v2 fetch-owner=true returns Owner", "Owner" in r["Contents"][0], repr(r["Contents"][0]))
r = s3.list_objects_v2(Bucket=bb)
t.check("v2 without fetch-owner has no Owner", "Owner" not in r["Contents"][0], repr(r["Contents"][0]))
h = s3.head_object(Bucket=bb, Key="bar")
o = [x for x in s3.list_objects(Bucket=bb)["Contents"] if x["Key"] == "bar"][0]
t.expect_eq("listing agrees with HEAD (ETag, size, mtime)",
            (o["ETag"], o["Size"], o["LastModified"].replace(microsecond=0)),
            (h["ETag"], h["ContentLength"], h["LastModified"]))

# ---- buckets ----
t.expect_error("list a missing bucket: 404 NoSuchBucket",
               lambda: s3.list_objects_v2(Bucket="no-such-bucket-x"), "NoSuchBucket", 404)
t.expect_error("delete a non-empty bucket: 409 BucketNotEmpty",
               lambda: s3.delete_bucket(Bucket=bb), "BucketNotEmpty", 409)
for name in ("a", "aa", "192.168.5.123", "foo..bar", "foo-", "foo_bar", "Foo"):
    st, _, body = raw("PUT", f"/{name}")
    t.expect_eq(f"bucket name {name!r}: 400 InvalidBucketName", (st, lib.error_code(body)),
                (400, "InvalidBucketName"))
for name in ("aaa.111", "aaa-111", "0basics", "b" * 63):
    t.attempt(f"bucket name {name!r} is accepted", lambda name=name: s3.create_bucket(Bucket=name))
names = [x["Name"] for x in s3.list_buckets()["Buckets"]]
t.check("ListBuckets lists what was created", {"aaa.111", "b" * 63} <= set(names), repr(names))
t.check("HEAD of a missing bucket is 404",
        raw("HEAD", "/no-such-bucket-x")[0] == 404)

# ---- objects, metadata, request headers ----
b = bucket()
s3.put_object(Bucket=b, Key="m", Body=b"bar", Metadata={"empty": "", "full": "v"})
for op in ("get_object", "head_object"):
    md = getattr(s3, op)(Bucket=b, Key="m")["Metadata"]
    t.expect_eq(f"{op}: an empty x-amz-meta value comes back empty (regression)", md,
                {"empty": "", "full": "v"})
for v in ("\x04mymeta", "h\x04", "h\x04w"):
    t.expect_error(f"x-amz-meta value {v!r} with a control character: 400 (regression)",
                   lambda v=v: s3.put_object(Bucket=b, Key="bad", Body=b"x", Metadata={"m": v}),
                   "InvalidArgument", 400)
t.expect_error("refused metadata stores nothing", lambda: s3.head_object(Bucket=b, Key="bad"),
               "404", 404)
s3.put_object(Bucket=b, Key="m", Body=b"bar")
t.expect_eq("a rewrite replaces the metadata", s3.get_object(Bucket=b, Key="m")["Metadata"], {})
s3.put_object(Bucket=b, Key="cc", Body=b"bar", CacheControl="public, max-age=14400")
t.expect_eq("Cache-Control round-trips",
            s3.head_object(Bucket=b, Key="cc")["ResponseMetadata"]["HTTPHeaders"].get("cache-control"),
            "public, max-age=14400")
r = s3.get_object(Bucket=b, Key="cc", ResponseContentType="foo/bar", ResponseContentDisposition="bla",
                  ResponseContentLanguage="esperanto", ResponseContentEncoding="aaa",
                  ResponseCacheControl="no-cache")
hh = r["ResponseMetadata"]["HTTPHeaders"]
t.expect_eq("response-* overrides", [hh.get(k) for k in ("content-type", "content-disposition",
                                                          "content-language", "content-encoding",
                                                          "cache-control")],
            ["foo/bar", "bla", "esperanto", "aaa", "no-cache"])
st, _, body = raw("PUT", f"/{b}/authz", {"Authorization": ""}, body=b"bar", sign=False)
t.expect_eq("empty Authorization on PutObject: 403 AccessDenied (regression)",
            (st, lib.error_code(body)), (403, "AccessDenied"))
st, _, body = raw("PUT", "/basics-anon", {"Authorization": " "}, sign=False)
t.expect_eq("blank Authorization on CreateBucket: 403 AccessDenied (regression)",
            (st, lib.error_code(body)), (403, "AccessDenied"))
st, _, body = raw("PUT", f"/{b}/nolen", body=b"", content_length=None)
t.expect_eq("PUT without Content-Length: 411 MissingContentLength", (st, lib.error_code(body)),
            (411, "MissingContentLength"))
st, _, _ = raw("PUT", "/basics-nolen", content_length=None)
t.expect_eq("CreateBucket without Content-Length is fine", st, 200)
for exp in ("200", ""):
    st, _, _ = raw("PUT", f"/{b}/expect", {"Expect": exp}, body=b"bar")
    t.expect_eq(f"PUT with Expect: {exp!r} succeeds", st, 200)
st, _, body = raw("PUT", f"/{b}/md5", {"Content-MD5": ""}, body=b"bar")
t.expect_eq("empty Content-MD5: 400 InvalidDigest", (st, lib.error_code(body)), (400, "InvalidDigest"))
st, _, body = raw("PUT", f"/{b}/md5", {"Content-MD5": "rL0Y20xC+Fzt72VPzMSk2A=="}, body=b"bar")
t.expect_eq("wrong Content-MD5: 400 BadDigest", (st, lib.error_code(body)), (400, "BadDigest"))
with lib.socket.create_connection(("127.0.0.1", srv.s3_port), timeout=10) as sk:
    sk.sendall(f"PUT /{b}/cont HTTP/1.1\r\nHost: x\r\nContent-Length: 123\r\n"
               "Expect: 100-continue\r\n\r\n".encode())
    st, _, _ = lib.read_response(sk)
t.expect_eq("unsigned PUT with Expect: 100-continue is refused before the body", st, 403)
s3.put_object(Bucket=b, Key="zero", Body=b"")
t.expect_eq("zero-byte object", s3.head_object(Bucket=b, Key="zero")["ContentLength"], 0)
t.expect_eq("ETag is the MD5", s3.put_object(Bucket=b, Key="e", Body=b"bar")["ETag"],
            '"37b51d194a7513e45b56f6524f2d51f2"')
special = [" ", '"', "$", "%", "&", "'", "<", ">", "_", "_ ", "_ _", "__"]
for k in special:
    s3.put_object(Bucket=b, Key=k, Body=k.encode())
bs = s3.list_objects(Bucket=b)
t.check("special key names list back", set(special) <= set(keys(bs)), repr(keys(bs)))
t.check("special key names read back",
        all(s3.get_object(Bucket=b, Key=k)["Body"].read() == k.encode() for k in special))
for k, exp in (("pre", 1), ("put", 1)):
    method = "get_object" if k == "pre" else "put_object"
    u = s3.generate_presigned_url(method, Params={"Bucket": b, "Key": "e"}, ExpiresIn=exp)
    time.sleep(exp + 1.2)
    rr = requests.get(u) if k == "pre" else requests.put(u, data=b"x")
    t.expect_eq(f"expired presigned {method}: 403", rr.status_code, 403)

# ---- multi-object delete ----
b = bucket(["key0", "key1", "key2"])
objs = {"Objects": [{"Key": k} for k in ("key0", "key1", "key2")]}
for rnd in (1, 2):
    r = s3.delete_objects(Bucket=b, Delete=objs)
    t.expect_eq(f"DeleteObjects round {rnd}: 3 deleted, no errors",
                (len(r.get("Deleted", [])), "Errors" in r), (3, False))
t.check("bucket is empty after DeleteObjects", "Contents" not in s3.list_objects_v2(Bucket=b))
t.expect_error("DeleteObjects with 1001 keys: 400",
               lambda: s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": f"k{i}"}
                                                                       for i in range(1001)]}),
               "MalformedXML", 400)

# ---- ranges and conditional reads ----
b = bucket()
e = s3.put_object(Bucket=b, Key="t", Body=b"testcontent")["ETag"]
for rng, body, cr in (("bytes=4-7", b"cont", "bytes 4-7/11"), ("bytes=4-", b"content", "bytes 4-10/11"),
                      ("bytes=-7", b"content", "bytes 4-10/11")):
    r = s3.get_object(Bucket=b, Key="t", Range=rng)
    t.expect_eq(f"Range {rng}", (r["ResponseMetadata"]["HTTPStatusCode"], r["Body"].read(),
                                 r["ResponseMetadata"]["HTTPHeaders"].get("content-range")),
                (206, body, cr))
t.expect_error("Range past the end: 416 InvalidRange",
               lambda: s3.get_object(Bucket=b, Key="t", Range="bytes=40-50"), "InvalidRange", 416)
s3.put_object(Bucket=b, Key="empty", Body=b"")
t.expect_error("Range on an empty object: 416 InvalidRange",
               lambda: s3.get_object(Bucket=b, Key="empty", Range="bytes=40-50"), "InvalidRange", 416)
OLD, NEW = "Sat, 29 Oct 1994 19:43:31 GMT", "Sat, 29 Oct 2100 19:43:31 GMT"
for op in ("get_object", "head_object"):
    f = getattr(s3, op)
    t.attempt(f"{op} If-Match right ETag", lambda f=f: f(Bucket=b, Key="t", IfMatch=e))
    t.expect_error(f"{op} If-Match wrong ETag: 412", lambda f=f: f(Bucket=b, Key="t", IfMatch='"ABCORZ"'),
                   ("PreconditionFailed", "412"), 412)
    t.expect_error(f"{op} If-None-Match current ETag: 304",
                   lambda f=f: f(Bucket=b, Key="t", IfNoneMatch=e), ("304", "Not Modified"), 304)
    t.attempt(f"{op} If-None-Match other ETag", lambda f=f: f(Bucket=b, Key="t", IfNoneMatch="ABCORZ"))
    t.attempt(f"{op} If-Modified-Since past", lambda f=f: f(Bucket=b, Key="t", IfModifiedSince=OLD))
    t.expect_error(f"{op} If-Modified-Since future: 304",
                   lambda f=f: f(Bucket=b, Key="t", IfModifiedSince=NEW), ("304", "Not Modified"), 304)
    t.expect_error(f"{op} If-Unmodified-Since past: 412",
                   lambda f=f: f(Bucket=b, Key="t", IfUnmodifiedSince=OLD),
                   ("PreconditionFailed", "412"), 412)
    t.attempt(f"{op} If-Unmodified-Since future", lambda f=f: f(Bucket=b, Key="t", IfUnmodifiedSince=NEW))
    t.attempt(f"{op} If-Match true wins over If-Unmodified-Since false",
              lambda f=f: f(Bucket=b, Key="t", IfMatch=e, IfUnmodifiedSince=OLD))
    t.expect_error(f"{op} If-None-Match false wins over If-Modified-Since true: 304",
                   lambda f=f: f(Bucket=b, Key="t", IfNoneMatch=e, IfModifiedSince=OLD),
                   ("304", "Not Modified"), 304)
try:
    s3.get_object(Bucket=b, Key="t", IfNoneMatch=e)
    t.fail("GET If-None-Match current ETag succeeded")
except Exception as ex:  # noqa: BLE001
    t.expect_eq("304 reads as 'Not Modified'",
                getattr(ex, "response", {}).get("Error", {}).get("Message"), "Not Modified")

# ---- atomic overwrite: a reader sees one version whole ----
b = bucket()
size = 4 << 20
s3.put_object(Bucket=b, Key="a", Body=b"A" * size)
got = []


def reader():
    for _ in range(6):
        d = srv.client().get_object(Bucket=b, Key="a")["Body"].read()
        got.append(len(d) == size and d in (b"A" * size, b"B" * size))


th = threading.Thread(target=reader)
th.start()
s3.put_object(Bucket=b, Key="a", Body=b"B" * size)
th.join()
t.check("concurrent reads see all-A or all-B, never a mix", got and all(got), repr(got))
t.expect_eq("last write wins", hashlib.md5(s3.get_object(Bucket=b, Key="a")["Body"].read()).hexdigest(),
            hashlib.md5(b"B" * size).hexdigest())
t.finish()
