#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""092-full: a full device or a full metadata map is a clean 507
InsufficientStorage (S3 XML) that harms nothing.

Devices: DATA/devices is a 64 MiB tmpfs (needs root and mount; skipped
otherwise). Objects go in until a PUT answers 507; then the 507 comes with an
S3 XML body, earlier objects still read back byte-exact, the server keeps
serving (list, an inline PUT, /health), deletes work, and after `cairn gc` the
space comes back (free bytes up, a large PUT fits again).

Metadata: a node with a 16 MiB LMDB map and 64 KiB inline objects fills its
map with inline PUTs until 507; earlier objects read back, deletes work, and
after `cairn gc` a PUT fits again."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

t = lib.Test()
MIB = 1 << 20


def gc(srv):
    rc, out = srv.cli("gc", "--json", check=False)
    try:
        j = json.loads(out[out.index("{"):])
    except ValueError:
        j = {}
    t.check("cairn gc exits 0", rc == 0 and j.get("state") == "done", out)
    return j


def raw_put(srv, bucket, key, body):
    req = lib.build_request("PUT", f"/{bucket}/{key}", srv.s3_port, body=body)
    return lib.raw_request(srv.s3_port, req, timeout=60)


def health(srv):
    try:
        with urllib.request.urlopen(srv.api_endpoint + "/health", timeout=10) as r:
            return r.status
    except Exception as e:  # noqa: BLE001
        return str(e)


def fill(srv, s3, bucket, size, limit):
    """PUTs random objects until one answers 507; returns (keys stored,
    the 507 count, other errors)."""
    import botocore.exceptions
    stored, other = [], []
    for i in range(limit):
        key = f"fill-{i:04d}"
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(size))
            stored.append(key)
        except botocore.exceptions.ClientError as e:
            st = e.response["ResponseMetadata"]["HTTPStatusCode"]
            code = e.response.get("Error", {}).get("Code")
            if st == 507 and code == "InsufficientStorage":
                return stored, True, other
            other.append(f"{key}: {st} {code}")
        except Exception as e:  # noqa: BLE001
            other.append(f"{key}: {type(e).__name__}: {e}")
        if len(other) > 3:
            break
    return stored, False, other


def harmless(srv, s3, bucket, early, what):
    """After a 507: the XML, earlier objects, listing, inline PUT, health."""
    st, hd, body = raw_put(srv, bucket, "one-more", os.urandom(2 * MIB))
    t.check(f"{what}: a PUT answers 507 with an S3 XML error",
            st == 507 and lib.error_code(body) == "InsufficientStorage" and
            "xml" in hd.get("content-type", ""), f"{st} {hd.get('content-type')} {body[:300]!r}")
    bad = [k for k, h in early.items()
           if hashlib.md5(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest() != h]
    t.check(f"{what}: earlier objects read back byte-exact", not bad, str(bad))
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in p.get("Contents", [])]
    t.check(f"{what}: listing works and shows no half-written object",
            "one-more" not in keys and all(k in keys for k in early), str(keys[:20]))
    t.check(f"{what}: /health is still 200", health(srv) == 200)


# ---- a full device ----
if os.geteuid() != 0 or not shutil.which("mount"):
    print("SKIP part: device full needs root to mount a tmpfs")
else:
    srv = t.server()
    devs = os.path.join(srv.data, "devices")
    os.makedirs(devs, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", devs],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        print(f"SKIP part: cannot mount a tmpfs: {r.stdout.decode().strip()}")
    else:
        try:
            srv.start()
            s3 = srv.client()
            s3.create_bucket(Bucket="full")
            early = {}
            for i in range(2):
                b = os.urandom(1 * MIB + i)
                s3.put_object(Bucket="full", Key=f"early{i}", Body=b)
                early[f"early{i}"] = hashlib.md5(b).hexdigest()
            stored, hit, other = fill(srv, s3, "full", 3 * MIB, 40)
            t.check("device full: PUTs end in 507 InsufficientStorage", hit,
                    f"{len(stored)} stored; other errors: {other}")
            t.check("device full: no other error on the way", not other, str(other))
            harmless(srv, s3, "full", early, "device full")
            t.attempt("device full: an inline PUT (metadata only) still works",
                      lambda: s3.put_object(Bucket="full", Key="tiny", Body=b"tiny"))
            st = os.statvfs(devs)
            free0 = st.f_bavail * st.f_frsize
            for k in stored:
                s3.delete_object(Bucket="full", Key=k)
            t.check("device full: deletes work",
                    all(k not in [o["Key"] for o in s3.list_objects_v2(Bucket="full").get("Contents", [])]
                        for k in stored[:3]))
            gc(srv)
            st = os.statvfs(devs)
            free1 = st.f_bavail * st.f_frsize
            t.check("device full: gc gave space back (>= 8 MiB more free)",
                             free1 - free0 >= 8 * MIB, f"free {free0} -> {free1}")
            try:
                s3.put_object(Bucket="full", Key="after-gc", Body=os.urandom(3 * MIB))
                ok = True
            except Exception as e:  # noqa: BLE001
                ok, err = False, e
            t.check("device full: a 3 MiB PUT fits again after gc", ok,
                             "" if ok else str(err))
            harmless_after = s3.get_object(Bucket="full", Key="early0")["Body"].read()
            t.check("device full: early0 still exact at the end",
                    hashlib.md5(harmless_after).hexdigest() == early["early0"])
            srv.stop()
        finally:
            srv.stop()
            subprocess.run(["umount", devs])

# ---- a full metadata map ----
conf = os.path.join(t.dir, "small-map.ini")
with open(conf, "w") as f:
    f.write("[pool]\nmap_size = 16M\nchunking = fixed\nchunk_size = 64K\ninline_max = 64K\n")
srv = t.server(data=os.path.join(t.dir, "data-map"), extra=["--config", conf])
srv.start()
s3 = srv.client()
s3.create_bucket(Bucket="map")
early = {}
for i in range(3):
    b = os.urandom(60000)
    s3.put_object(Bucket="map", Key=f"early{i}", Body=b)
    early[f"early{i}"] = hashlib.md5(b).hexdigest()
stored, hit, other = fill(srv, s3, "map", 60000, 600)
t.check("map full: inline PUTs end in 507 InsufficientStorage", hit,
        f"{len(stored)} stored; other errors: {other}")
t.check("map full: no other error on the way", not other, str(other))
harmless(srv, s3, "map", early, "map full")
for k in stored:
    s3.delete_object(Bucket="map", Key=k)
t.check("map full: deletes work", not [o for o in s3.list_objects_v2(Bucket="map").get("Contents", [])
                                       if o["Key"].startswith("fill-")])
gc(srv)
try:
    s3.put_object(Bucket="map", Key="after-gc", Body=os.urandom(60000))
    ok = True
except Exception as e:  # noqa: BLE001
    ok, err = False, e
t.check("map full: a PUT fits again after deletes and gc", ok, "" if ok else str(err))
bad = [k for k, h in early.items()
       if hashlib.md5(s3.get_object(Bucket="map", Key=k)["Body"].read()).hexdigest() != h]
t.check("map full: earlier objects still exact at the end", not bad, str(bad))
rc, out = srv.cli("fsck", check=False)
t.check("map full: fsck clean", rc == 0, out)
t.finish()
