#!/usr/bin/python3
# LABELS: slow
# TIMEOUT: 300
"""101-multipart-crash: multipart uploads (create, parts, complete) on four
threads, kill -9 while they run, restart. Every acknowledged Complete reads
back byte-exact with its ETag; every acknowledged part of an upload not
completed is listed by ListParts with its ETag; an upload whose Complete was
not acknowledged is either whole (the object) or still open, never half.
Then every upload is aborted, gc runs and fsck is clean. Three cycles."""
import hashlib
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

MIB = 1 << 20
t = lib.Test()
srv = t.server()
srv.start()
B = "mpcrash"
srv.client().create_bucket(Bucket=B)
lock = threading.Lock()
completed = {}   # key -> (md5 of body, etag)   acknowledged Completes
parts_acked = {}  # (key, upload id) -> {part number: etag}
attempted = {}   # key -> (md5 of body, etag)   Completes sent, maybe not acknowledged
rng = random.Random(101)


def mp_etag(parts):
    return '"%s-%d"' % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts))
                        .hexdigest(), len(parts))


def worker(wid, cycle, stop):
    s3 = srv.client()
    n = 0
    while not stop.is_set():
        key = f"c{cycle}-w{wid}-{n}"
        n += 1
        parts = [os.urandom(5 * MIB) for _ in range(2)] + [os.urandom(rng.randrange(1, 300000))]
        body = b"".join(parts)
        try:
            u = s3.create_multipart_upload(Bucket=B, Key=key)["UploadId"]
            ets = []
            for i, p in enumerate(parts):
                e = s3.upload_part(Bucket=B, Key=key, UploadId=u, PartNumber=i + 1, Body=p)["ETag"]
                ets.append(e)
                with lock:
                    parts_acked.setdefault((key, u), {})[i + 1] = e
            with lock:
                attempted[key] = (hashlib.md5(body).hexdigest(), mp_etag(parts))
            r = s3.complete_multipart_upload(
                Bucket=B, Key=key, UploadId=u,
                MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e}
                                           for i, e in enumerate(ets)]})
            with lock:
                completed[key] = (hashlib.md5(body).hexdigest(), r["ETag"])
                parts_acked.pop((key, u), None)
        except Exception:  # noqa: BLE001 - the server was killed
            return


for cycle in range(3):
    stop = threading.Event()
    ths = [threading.Thread(target=worker, args=(w, cycle, stop)) for w in range(4)]
    for th in ths:
        th.start()
    time.sleep(1.5 + rng.random() * 2.5)
    srv.kill9()
    stop.set()
    for th in ths:
        th.join(60)
    srv.start()
    s3 = srv.client()
    bad = []
    for key, (md5, etag) in completed.items():
        try:
            r = s3.get_object(Bucket=B, Key=key)
            if hashlib.md5(r["Body"].read()).hexdigest() != md5 or r["ETag"] != etag:
                bad.append(key)
        except Exception as e:  # noqa: BLE001
            bad.append(f"{key}: {e}")
    t.check(f"cycle {cycle}: all {len(completed)} acknowledged Completes read back exactly",
            not bad, bad[:5])
    listed = {(x["Key"], x["UploadId"])
              for x in s3.list_multipart_uploads(Bucket=B).get("Uploads", [])}
    missing, half = [], []
    for (key, u), acked in list(parts_acked.items()):
        if key in attempted and (key, u) not in listed:
            # its Complete may have committed without the answer getting out
            try:
                r = s3.get_object(Bucket=B, Key=key)
                md5, etag = attempted[key]
                if hashlib.md5(r["Body"].read()).hexdigest() != md5 or r["ETag"] != etag:
                    half.append(key)
                parts_acked.pop((key, u))
                continue
            except Exception:  # noqa: BLE001
                pass
        if (key, u) not in listed:
            missing.append(key)
            continue
        got = {p["PartNumber"]: p["ETag"]
               for p in s3.list_parts(Bucket=B, Key=key, UploadId=u).get("Parts", [])}
        if any(got.get(n) != e for n, e in acked.items()):
            missing.append(f"{key}: {got} vs {acked}")
    t.check(f"cycle {cycle}: every acknowledged part of an open upload is listed with its ETag",
            not missing, missing[:5])
    t.check(f"cycle {cycle}: an unacknowledged Complete left the whole object or the open "
            "upload, never half", not half, half)

s3 = srv.client()
for x in s3.list_multipart_uploads(Bucket=B).get("Uploads", []):
    s3.abort_multipart_upload(Bucket=B, Key=x["Key"], UploadId=x["UploadId"])
t.expect_eq("no uploads left after aborting them", s3.list_multipart_uploads(Bucket=B)
            .get("Uploads", []), [])
rc, out = srv.cli("gc", check=False)
t.check("cairn gc after the crashes", rc == 0, out)
rc, out = srv.cli("fsck", check=False)
t.check("cairn fsck is clean after three kill -9 cycles", rc == 0 and "result: clean" in out, out)
t.finish()
