#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""100-multipart: multipart uploads through awscli (s3 cp of 100+ MiB, s3api) and
boto3: part ETags and the md5-of-md5s ETag, ListParts and ListMultipartUploads
paging, GetObject partNumber, every Complete error S3 defines, re-uploaded and
unused parts, Abort, composite and full-object checksums, completion storing
no byte twice, and the expiry of abandoned uploads giving their space back."""
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

MIB = 1 << 20
t = lib.Test()
srv = t.server()
srv.start()
s3 = srv.client()
B = "mpu"
s3.create_bucket(Bucket=B)


def md5(b):
    return hashlib.md5(b).hexdigest()


def mp_etag(parts):
    return '"%s-%d"' % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(),
                        len(parts))


def api_stats():
    req = lib.build_request("GET", "/admin/v1/pool/stats", srv.api_port)
    st, _, rb = lib.raw_request(srv.api_port, req)
    return json.loads(rb)["pool"] if st == 200 else {}


def gc():
    rc, out = srv.cli("gc", "--json", check=False)
    return rc == 0


def aws(*args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=lib.ROOT_KEY, AWS_SECRET_ACCESS_KEY=lib.ROOT_SECRET,
               AWS_DEFAULT_REGION=lib.REGION)
    quiet = ["--only-show-errors"] if args[0] == "s3" else []
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url", srv.endpoint, *args, *quiet], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=240)
    return r.returncode, r.stdout.decode(errors="replace")


# ---- awscli: s3 cp of 100+ MiB (multipart above 8 MiB) ----
big = os.urandom(101 * MIB + 12345)
src = os.path.join(t.dir, "big.bin")
with open(src, "wb") as f:
    f.write(big)
rc, out = aws("s3", "cp", src, f"s3://{B}/big.bin")
t.check("aws s3 cp of 101 MiB (multipart) succeeds", rc == 0, out)
h = s3.head_object(Bucket=B, Key="big.bin")
parts8 = [big[i:i + 8 * MIB] for i in range(0, len(big), 8 * MIB)]
t.expect_eq("the object's ETag is the MD5 of the part MD5s, -N", h["ETag"], mp_etag(parts8))
t.expect_eq("the object's size", h["ContentLength"], len(big))
dst = os.path.join(t.dir, "big.out")
rc, out = aws("s3", "cp", f"s3://{B}/big.bin", dst)
with open(dst, "rb") as f:
    t.check("aws s3 cp back gives the same bytes", rc == 0 and f.read() == big, out)
os.unlink(dst)
r = s3.get_object(Bucket=B, Key="big.bin", PartNumber=3)
body = r["Body"].read()
t.check("GetObject partNumber=3 is the third 8 MiB part (206, Content-Range, parts count)",
        body == parts8[2] and r["ResponseMetadata"]["HTTPStatusCode"] == 206 and
        r.get("PartsCount") == len(parts8) and
        r["ContentRange"] == f"bytes {16 * MIB}-{24 * MIB - 1}/{len(big)}", r.get("ContentRange"))
r = s3.head_object(Bucket=B, Key="big.bin", PartNumber=len(parts8))
t.expect_eq("HeadObject of the last part: its size", r["ContentLength"], len(parts8[-1]))
t.expect_error("partNumber beyond the parts -> InvalidPartNumber 416",
               lambda: s3.get_object(Bucket=B, Key="big.bin", PartNumber=len(parts8) + 1),
               "InvalidPartNumber", 416)
t.expect_error("partNumber 0 -> InvalidArgument",
               lambda: s3.get_object(Bucket=B, Key="big.bin", PartNumber=0), "InvalidArgument")
t.expect_error("partNumber with a Range -> InvalidRequest",
               lambda: s3.get_object(Bucket=B, Key="big.bin", PartNumber=1, Range="bytes=0-1"),
               "InvalidRequest", 400)
os.unlink(src)
del big, parts8

# ---- awscli s3api, step by step ----
rc, out = aws("s3api", "create-multipart-upload", "--bucket", B, "--key", "api/one",
              "--content-type", "text/x-parts", "--metadata", "color=green")
uid = json.loads(out)["UploadId"] if rc == 0 else ""
t.check("s3api create-multipart-upload returns an UploadId", rc == 0 and len(uid) == 32, out)
pa, pb = os.urandom(5 * MIB), os.urandom(1000)
fa, fb = os.path.join(t.dir, "pa"), os.path.join(t.dir, "pb")
open(fa, "wb").write(pa)
open(fb, "wb").write(pb)
rc1, o1 = aws("s3api", "upload-part", "--bucket", B, "--key", "api/one", "--upload-id", uid,
              "--part-number", "1", "--body", fa)
rc2, o2 = aws("s3api", "upload-part", "--bucket", B, "--key", "api/one", "--upload-id", uid,
              "--part-number", "2", "--body", fb)
t.check("s3api upload-part x2", rc1 == 0 and rc2 == 0, o1 + o2)
e1 = json.loads(o1)["ETag"] if rc1 == 0 else ""
e2 = json.loads(o2)["ETag"] if rc2 == 0 else ""
t.expect_eq("a part's ETag is its MD5", (e1, e2), (f'"{md5(pa)}"', f'"{md5(pb)}"'))
rc, out = aws("s3api", "list-parts", "--bucket", B, "--key", "api/one", "--upload-id", uid)
lp = json.loads(out) if rc == 0 else {}
t.check("s3api list-parts shows both parts with sizes",
        [(p["PartNumber"], p["Size"], p["ETag"]) for p in lp.get("Parts", [])] ==
        [(1, len(pa), e1), (2, len(pb), e2)], out)
mp = json.dumps({"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
rc, out = aws("s3api", "complete-multipart-upload", "--bucket", B, "--key", "api/one",
              "--upload-id", uid, "--multipart-upload", mp)
t.check("s3api complete-multipart-upload", rc == 0 and json.loads(out)["ETag"] ==
        mp_etag([pa, pb]), out)
h = s3.head_object(Bucket=B, Key="api/one")
t.check("metadata and content type of the upload are the object's",
        h["ContentType"] == "text/x-parts" and h["Metadata"] == {"color": "green"}, h)
t.check("object bytes", s3.get_object(Bucket=B, Key="api/one")["Body"].read() == pa + pb)
rc, out = aws("s3api", "list-parts", "--bucket", B, "--key", "api/one", "--upload-id", uid)
t.check("the upload is gone after Complete (NoSuchUpload)", rc != 0 and "NoSuchUpload" in out,
        out)

# ---- boto3: errors of Complete ----
K = "errs"
u = s3.create_multipart_upload(Bucket=B, Key=K)["UploadId"]
small = os.urandom(1 * MIB)
p5 = os.urandom(5 * MIB)
et = {}
et[1] = s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=1, Body=small)["ETag"]
et[2] = s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=2, Body=p5)["ETag"]
et[3] = s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=3, Body=b"tail")["ETag"]


def complete(parts, key=K, upload=None):
    return s3.complete_multipart_upload(
        Bucket=B, Key=key, UploadId=upload or u,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})


t.expect_error("a part under 5 MiB that is not the last -> EntityTooSmall",
               lambda: complete([(1, et[1]), (2, et[2])]), "EntityTooSmall", 400)
t.expect_error("a wrong part ETag -> InvalidPart",
               lambda: complete([(2, '"' + "0" * 32 + '"')]), "InvalidPart", 400)
t.expect_error("a part never uploaded -> InvalidPart",
               lambda: complete([(2, et[2]), (7, et[3])]), "InvalidPart", 400)
t.expect_error("parts out of order -> InvalidPartOrder",
               lambda: complete([(3, et[3]), (2, et[2])]), "InvalidPartOrder", 400)
t.expect_error("the same part twice -> InvalidPartOrder",
               lambda: complete([(2, et[2]), (2, et[2])]), "InvalidPartOrder", 400)
t.expect_error("an unknown upload id -> NoSuchUpload",
               lambda: complete([(2, et[2])], upload="0" * 32), "NoSuchUpload", 404)
t.expect_error("an upload id of another key -> NoSuchUpload",
               lambda: complete([(2, et[2])], key="other"), "NoSuchUpload", 404)
t.expect_error("UploadPart to an unknown upload -> NoSuchUpload",
               lambda: s3.upload_part(Bucket=B, Key=K, UploadId="f" * 32, PartNumber=1,
                                      Body=b"x"), "NoSuchUpload", 404)
t.expect_error("part number 10001 -> InvalidArgument",
               lambda: s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=10001, Body=b"x"),
               "InvalidArgument", 400)
t.expect_error("part number 0 -> InvalidArgument",
               lambda: s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=0, Body=b"x"),
               ("InvalidArgument",), 400)
req = lib.build_request("POST", f"/{B}/{K}?uploadId={u}", srv.s3_port, body=b"<Complete")
st, _, rb = lib.raw_request(srv.s3_port, req)
t.check("malformed Complete XML -> MalformedXML", st == 400 and
        lib.error_code(rb) == "MalformedXML", rb[:300])
req = lib.build_request("POST", f"/{B}/{K}?uploadId={u}", srv.s3_port,
                        body=b"<CompleteMultipartUpload></CompleteMultipartUpload>")
st, _, rb = lib.raw_request(srv.s3_port, req)
t.check("Complete without parts -> MalformedXML", st == 400 and
        lib.error_code(rb) == "MalformedXML", rb[:300])
# part 2 uploaded again: the last upload wins; part 1 and 3 are left out
p5b = os.urandom(5 * MIB)
et[2] = s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=2, Body=p5b)["ETag"]
r = complete([(2, et[2])])
t.check("Complete with a subset: ETag of that part", r["ETag"] == mp_etag([p5b]), r["ETag"])
t.check("the re-uploaded part won", s3.get_object(Bucket=B, Key=K)["Body"].read() == p5b)
r2 = t.attempt("Complete again (a retry, as S3) -> 200", lambda: complete([(2, et[2])]))
t.check("...with the same ETag", r2 is not None and r2["ETag"] == r["ETag"], r2)
t.expect_error("Complete again with another part list -> NoSuchUpload",
               lambda: complete([(1, et[1]), (2, et[2])]), "NoSuchUpload", 404)
t.expect_error("Complete with an upload id that never existed, same parts -> NoSuchUpload",
               lambda: complete([(2, et[2])], upload=u[:16] + "0" * 16), "NoSuchUpload", 404)
t.check("a completed upload is not listed",
        u not in [x["UploadId"] for x in s3.list_multipart_uploads(Bucket=B).get("Uploads", [])])
t.expect_error("ListParts of a completed upload -> NoSuchUpload",
               lambda: s3.list_parts(Bucket=B, Key=K, UploadId=u), "NoSuchUpload", 404)

# ---- conditional Complete: If-None-Match: * as a lock, racing ----
import threading  # noqa: E402


def complete_cond(key, upload, parts, header, value, out):
    def hook(request, **kw):
        request.headers[header] = value
    c = srv.client()
    c.meta.events.register("before-sign.s3.CompleteMultipartUpload", hook)
    try:
        c.complete_multipart_upload(Bucket=B, Key=key, UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
        out.append(200)
    except Exception as e:  # noqa: BLE001
        out.append(getattr(e, "response", {}).get("ResponseMetadata", {})
                   .get("HTTPStatusCode", str(e)))


ups = []
for i in range(4):
    u_ = s3.create_multipart_upload(Bucket=B, Key="lock")["UploadId"]
    e_ = s3.upload_part(Bucket=B, Key="lock", UploadId=u_, PartNumber=1,
                        Body=b"winner %d" % i)["ETag"]
    ups.append((u_, e_))
res = []
ths = [threading.Thread(target=complete_cond, args=("lock", u_, [(1, e_)], "If-None-Match", "*",
                                                    res)) for u_, e_ in ups]
for th in ths:
    th.start()
for th in ths:
    th.join()
t.check("4 racing Completes with If-None-Match: * on a new key: one 200, three 412",
        sorted(res, key=str) == [200, 412, 412, 412], res)
body = s3.get_object(Bucket=B, Key="lock")["Body"].read()
t.check("the object is one winner's bytes", body in [b"winner %d" % i for i in range(4)], body)
res = []
u_, e_ = ups[0]
etag = s3.head_object(Bucket=B, Key="lock")["ETag"]
u2 = s3.create_multipart_upload(Bucket=B, Key="lock")["UploadId"]
e2 = s3.upload_part(Bucket=B, Key="lock", UploadId=u2, PartNumber=1, Body=b"next")["ETag"]
complete_cond("lock", u2, [(1, e2)], "If-Match", '"0123"', res)
complete_cond("lock", u2, [(1, e2)], "If-Match", etag, res)
t.expect_eq("Complete with a stale If-Match -> 412; with the current ETag -> 200", res,
            [412, 200])

# ---- ListParts paging; Abort ----
K = "paged"
u = s3.create_multipart_upload(Bucket=B, Key=K)["UploadId"]
for n in range(1, 8):
    s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=n, Body=b"p%d" % n)
r = s3.list_parts(Bucket=B, Key=K, UploadId=u, MaxParts=0)
t.check("ListParts with max-parts=0: no parts and not truncated (no endless paging)",
        not r.get("Parts") and r["IsTruncated"] is False, r)
seen, marker, pages = [], 0, 0
while True:
    r = s3.list_parts(Bucket=B, Key=K, UploadId=u, MaxParts=3, PartNumberMarker=marker)
    seen += [p["PartNumber"] for p in r.get("Parts", [])]
    pages += 1
    if not r["IsTruncated"]:
        break
    marker = r["NextPartNumberMarker"]
t.check("ListParts pages of 3 give parts 1..7 in 3 pages", seen == list(range(1, 8)) and
        pages == 3, f"{seen} in {pages} pages")
s3.abort_multipart_upload(Bucket=B, Key=K, UploadId=u)
t.expect_error("ListParts after Abort -> NoSuchUpload",
               lambda: s3.list_parts(Bucket=B, Key=K, UploadId=u), "NoSuchUpload", 404)
t.expect_error("Abort again -> NoSuchUpload",
               lambda: s3.abort_multipart_upload(Bucket=B, Key=K, UploadId=u), "NoSuchUpload",
               404)

# ---- ListMultipartUploads: prefix, delimiter, markers ----
B2 = "mpu-list"
s3.create_bucket(Bucket=B2)
ids = {}
for k in ["a/1", "a/2", "b/1", "c", "c", "d"]:
    ids.setdefault(k, []).append(s3.create_multipart_upload(Bucket=B2, Key=k)["UploadId"])
    time.sleep(0.002)
r = s3.list_multipart_uploads(Bucket=B2)
got = [(x["Key"], x["UploadId"]) for x in r.get("Uploads", [])]
want = [(k, i) for k in ["a/1", "a/2", "b/1", "c", "d"] for i in ids[k]]
t.expect_eq("ListMultipartUploads: every upload, by key then initiation", got, want)
r = s3.list_multipart_uploads(Bucket=B2, Prefix="a/")
t.expect_eq("prefix a/", [x["Key"] for x in r.get("Uploads", [])], ["a/1", "a/2"])
r = s3.list_multipart_uploads(Bucket=B2, Delimiter="/")
t.check("delimiter / folds a/ and b/",
        [x["Prefix"] for x in r.get("CommonPrefixes", [])] == ["a/", "b/"] and
        [x["Key"] for x in r.get("Uploads", [])] == ["c", "c", "d"], r)
got, km, um, pages = [], "", "", 0
while pages < 10:
    kw = {"KeyMarker": km, "UploadIdMarker": um} if km else {}
    r = s3.list_multipart_uploads(Bucket=B2, MaxUploads=2, **kw)
    got += [(x["Key"], x["UploadId"]) for x in r.get("Uploads", [])]
    pages += 1
    if not r["IsTruncated"]:
        break
    km, um = r["NextKeyMarker"], r["NextUploadIdMarker"]
t.check("paging by 2 with key and upload-id markers lists each upload once",
        got == want and pages == 3, f"{got} in {pages}")
req = lib.build_request("GET", f"/{B2}?uploads&encoding-type=url&prefix=a%2F", srv.s3_port)
st, _, rb = lib.raw_request(srv.s3_port, req)
t.check("encoding-type=url keeps '/' in keys and prefix, as object listings do",
        st == 200 and b"<Key>a/1</Key>" in rb and b"<Prefix>a/</Prefix>" in rb, rb[:600])
for k, v in ids.items():
    for i in v:
        s3.abort_multipart_upload(Bucket=B2, Key=k, UploadId=i)
t.expect_eq("no uploads left after aborts",
            s3.list_multipart_uploads(Bucket=B2).get("Uploads", []), [])
u = s3.create_multipart_upload(Bucket=B2, Key="x")["UploadId"]
s3.upload_part(Bucket=B2, Key="x", UploadId=u, PartNumber=1, Body=b"abandoned")
s3.delete_bucket(Bucket=B2)
s3.create_bucket(Bucket=B2)
t.expect_eq("a bucket made again does not inherit the uploads of the deleted one",
            s3.list_multipart_uploads(Bucket=B2).get("Uploads", []), [])
s3.delete_bucket(Bucket=B2)

# ---- completion stores no byte twice; abort gives space back ----
gc()
s0 = api_stats()
K = "nocopy"
u = s3.create_multipart_upload(Bucket=B, Key=K)["UploadId"]
parts = [os.urandom(6 * MIB) for _ in range(3)] + [os.urandom(100)]
ets = [s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=i + 1, Body=p)["ETag"]
       for i, p in enumerate(parts)]
s1 = api_stats()
complete(list(zip(range(1, 5), ets)), key=K, upload=u)
s2 = api_stats()
# (physical bytes may move meanwhile: the sealer turns full stripes' copies into parity)
t.check("Complete writes no data: chunks, unique and stored bytes unchanged",
        all(s2.get(k) == s1.get(k) for k in ("chunks", "unique_bytes", "stored_bytes")),
        f"{s1} -> {s2}")
t.check("the object's bytes", s3.get_object(Bucket=B, Key=K)["Body"].read() == b"".join(parts))
t.expect_eq("logical bytes grew by the object once",
            s2.get("logical_bytes", 0) - s0.get("logical_bytes", 0), sum(map(len, parts)))
s3.delete_object(Bucket=B, Key=K)
u = s3.create_multipart_upload(Bucket=B, Key="aborted")["UploadId"]
for i in range(3):
    s3.upload_part(Bucket=B, Key="aborted", UploadId=u, PartNumber=i + 1, Body=os.urandom(5 * MIB))
s3.abort_multipart_upload(Bucket=B, Key="aborted", UploadId=u)
gc()
s3_ = api_stats()
t.check("after delete, abort and gc the stored bytes are back where they were",
        s3_.get("stored_bytes") == s0.get("stored_bytes"), f"{s0} -> {s3_}")

# ---- UploadPartCopy ----
srcb = os.urandom(12 * MIB + 333)
s3.put_object(Bucket=B, Key="src", Body=srcb)
gc()
c0 = api_stats()
u = s3.create_multipart_upload(Bucket=B, Key="pc")["UploadId"]
r1 = s3.upload_part_copy(Bucket=B, Key="pc", UploadId=u, PartNumber=1,
                         CopySource={"Bucket": B, "Key": "src"})
r2 = s3.upload_part_copy(Bucket=B, Key="pc", UploadId=u, PartNumber=2,
                         CopySource={"Bucket": B, "Key": "src"},
                         CopySourceRange="bytes=1000-2000999")
t.check("UploadPartCopy answers CopyPartResult ETags (whole object, range)",
        r1["CopyPartResult"]["ETag"] == f'"{md5(srcb)}"' and
        r2["CopyPartResult"]["ETag"] == f'"{md5(srcb[1000:2001000])}"', (r1, r2))
c1 = api_stats()
t.check("copying a whole object as a part stores (almost) nothing new: dedup",
        c1.get("unique_bytes", 0) - c0.get("unique_bytes", 0) < 1 * MIB, f"{c0} -> {c1}")
t.expect_error("a copy range beyond the source -> InvalidArgument",
               lambda: s3.upload_part_copy(Bucket=B, Key="pc", UploadId=u, PartNumber=3,
                                           CopySource={"Bucket": B, "Key": "src"},
                                           CopySourceRange=f"bytes=0-{len(srcb)}"),
               ("InvalidArgument", "InvalidRange"))
t.expect_error("a missing copy source -> NoSuchKey",
               lambda: s3.upload_part_copy(Bucket=B, Key="pc", UploadId=u, PartNumber=3,
                                           CopySource={"Bucket": B, "Key": "nope"}),
               "NoSuchKey", 404)
t.expect_error("copy-source-if-match that fails -> PreconditionFailed",
               lambda: s3.upload_part_copy(Bucket=B, Key="pc", UploadId=u, PartNumber=3,
                                           CopySource={"Bucket": B, "Key": "src"},
                                           CopySourceIfMatch='"' + "1" * 32 + '"'),
               "PreconditionFailed", 412)
complete([(1, r1["CopyPartResult"]["ETag"]), (2, r2["CopyPartResult"]["ETag"])], key="pc",
         upload=u)
t.check("the copied parts read back", s3.get_object(Bucket=B, Key="pc")["Body"].read() ==
        srcb + srcb[1000:2001000])
rc, out = aws("s3", "cp", f"s3://{B}/src", f"s3://{B}/src-copy")
t.check("aws s3 cp s3://.. s3://.. of 12 MiB (UploadPartCopy in awscli)", rc == 0 and
        s3.get_object(Bucket=B, Key="src-copy")["Body"].read() == srcb, out)

# ---- checksums ----
K = "ck"


def crc32_b64(b):
    return base64.b64encode(zlib.crc32(b).to_bytes(4, "big")).decode()


def crc64nvme(b):
    poly, crc = 0x9A6C9329AC4BC9B5, 0xFFFFFFFFFFFFFFFF
    tbl = crc64nvme.tbl if hasattr(crc64nvme, "tbl") else None
    if tbl is None:
        tbl = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ poly if c & 1 else c >> 1
            tbl.append(c)
        crc64nvme.tbl = tbl
    for x in b:
        crc = tbl[(crc ^ x) & 0xFF] ^ (crc >> 8)
    return base64.b64encode((crc ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")).decode()


pc = [os.urandom(5 * MIB), os.urandom(777)]
u = s3.create_multipart_upload(Bucket=B, Key=K, ChecksumAlgorithm="CRC32")["UploadId"]
res = [s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=i + 1, Body=p,
                      ChecksumAlgorithm="CRC32") for i, p in enumerate(pc)]
t.check("parts answer their CRC32", [r.get("ChecksumCRC32") for r in res] ==
        [crc32_b64(p) for p in pc], [r.get("ChecksumCRC32") for r in res])
lp = s3.list_parts(Bucket=B, Key=K, UploadId=u)
t.check("ListParts shows the parts' CRC32 and the upload's algorithm",
        [p.get("ChecksumCRC32") for p in lp["Parts"]] == [crc32_b64(p) for p in pc] and
        lp.get("ChecksumAlgorithm") == "CRC32", lp)
t.expect_error("a part checksum in Complete that does not match -> InvalidPart",
               lambda: s3.complete_multipart_upload(
                   Bucket=B, Key=K, UploadId=u, MultipartUpload={"Parts": [
                       {"PartNumber": 1, "ETag": res[0]["ETag"], "ChecksumCRC32": "AAAAAA=="},
                       {"PartNumber": 2, "ETag": res[1]["ETag"],
                        "ChecksumCRC32": res[1]["ChecksumCRC32"]}]}), "InvalidPart", 400)
comp = base64.b64encode(zlib.crc32(b"".join(zlib.crc32(p).to_bytes(4, "big") for p in pc))
                        .to_bytes(4, "big")).decode() + "-2"
mp_list = {"Parts": [{"PartNumber": i + 1, "ETag": x["ETag"], "ChecksumCRC32": x["ChecksumCRC32"]}
                     for i, x in enumerate(res)]}


def complete_hdrs(hdrs):
    def hook(request, **kw):
        for k_, v_ in hdrs.items():
            request.headers[k_] = v_
    c = srv.client()
    c.meta.events.register("before-sign.s3.CompleteMultipartUpload", hook)
    return c.complete_multipart_upload(Bucket=B, Key=K, UploadId=u, MultipartUpload=mp_list)


t.expect_error("Complete with a whole-object CRC32 that is not what the parts make -> BadDigest",
               lambda: complete_hdrs({"x-amz-checksum-crc32": "AAAAAA==-2"}), "BadDigest", 400)
t.expect_error("Complete with x-amz-checksum-type FULL_OBJECT on a COMPOSITE upload -> "
               "InvalidRequest",
               lambda: complete_hdrs({"x-amz-checksum-type": "FULL_OBJECT"}), "InvalidRequest",
               400)
t.expect_error("Complete with a wrong x-amz-mp-object-size -> InvalidRequest",
               lambda: complete_hdrs({"x-amz-mp-object-size": "12"}), "InvalidRequest", 400)
r = complete_hdrs({"x-amz-checksum-crc32": comp, "x-amz-checksum-type": "COMPOSITE",
                   "x-amz-mp-object-size": str(sum(map(len, pc)))})
t.expect_eq("Complete answers the COMPOSITE CRC32 (-2)", r.get("ChecksumCRC32"), comp)
h = s3.head_object(Bucket=B, Key=K, ChecksumMode="ENABLED")
t.expect_eq("HeadObject with checksum mode returns it", h.get("ChecksumCRC32"), comp)

# FULL_OBJECT CRC32 (boto3 1.26 does not know ChecksumType: add the header)


def add_header(name, value):
    def hook(request, **kw):
        request.headers[name] = value
    return hook


hook = add_header("x-amz-checksum-type", "FULL_OBJECT")
s3.meta.events.register("before-sign.s3.CreateMultipartUpload", hook)
u = s3.create_multipart_upload(Bucket=B, Key=K, ChecksumAlgorithm="CRC32")["UploadId"]
s3.meta.events.unregister("before-sign.s3.CreateMultipartUpload", hook)
res = [s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=i + 1, Body=p,
                      ChecksumAlgorithm="CRC32") for i, p in enumerate(pc)]
r = s3.complete_multipart_upload(Bucket=B, Key=K, UploadId=u, MultipartUpload={"Parts": [
    {"PartNumber": i + 1, "ETag": x["ETag"]} for i, x in enumerate(res)]})
t.expect_eq("FULL_OBJECT CRC32: the CRC32 of the whole object, combined from the parts",
            r.get("ChecksumCRC32"), crc32_b64(b"".join(pc)))
# no algorithm: CRC64NVME of the whole object, as S3 does
u = s3.create_multipart_upload(Bucket=B, Key=K)["UploadId"]
res = [s3.upload_part(Bucket=B, Key=K, UploadId=u, PartNumber=i + 1, Body=p)
       for i, p in enumerate(pc)]
s3.complete_multipart_upload(Bucket=B, Key=K, UploadId=u, MultipartUpload={"Parts": [
    {"PartNumber": i + 1, "ETag": x["ETag"]} for i, x in enumerate(res)]})
req = lib.build_request("HEAD", f"/{B}/{K}", srv.s3_port,
                        headers={"x-amz-checksum-mode": "ENABLED"})
st, hdrs, _ = lib.raw_request(srv.s3_port, req, head_only=True)
hd = {k.lower(): v for k, v in hdrs.items()} if isinstance(hdrs, dict) else {}
t.expect_eq("no algorithm asked: the object gets a full-object CRC64NVME",
            hd.get("x-amz-checksum-crc64nvme"), crc64nvme(b"".join(pc)))

# ---- abandoned uploads expire ----
for x in s3.list_multipart_uploads(Bucket=B).get("Uploads", []):
    s3.abort_multipart_upload(Bucket=B, Key=x["Key"], UploadId=x["UploadId"])
srv.stop()
conf = os.path.join(t.dir, "expiry.conf")
with open(conf, "w") as f:
    f.write("[s3]\nmultipart_expiry = 3\n")
srv.start(extra=["--config", conf])
s3 = srv.client()
gc()
s0 = api_stats()
u = s3.create_multipart_upload(Bucket=B, Key="left")["UploadId"]
s3.upload_part(Bucket=B, Key="left", UploadId=u, PartNumber=1, Body=os.urandom(5 * MIB))
t.check("the abandoned upload is listed at first",
        [x["UploadId"] for x in s3.list_multipart_uploads(Bucket=B).get("Uploads", [])] == [u])
deadline = time.time() + 30
while time.time() < deadline and s3.list_multipart_uploads(Bucket=B).get("Uploads"):
    time.sleep(0.5)
t.check("an upload older than multipart_expiry is aborted by the server",
        not s3.list_multipart_uploads(Bucket=B).get("Uploads"))
t.check("the server log says so", "aborted 1 multipart upload" in srv.log_text())
gc()
s1 = api_stats()
t.check("its part's space is back after gc", s1.get("stored_bytes") == s0.get("stored_bytes"),
        f"{s0} -> {s1}")
rc, out = srv.cli("fsck", check=False)
t.check("cairn fsck is clean after all of it", rc == 0 and "result: clean" in out, out)
t.finish()
