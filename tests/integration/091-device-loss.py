#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""091-device-loss: losing m (2) device folders loses no object, and
`cairn repair` restores full redundancy.

Uploads objects of many sizes (inline, one chunk, several stripes), stops the
node, deletes DATA/devices/d0 and d1, starts it: /metrics and `cairn df` say
the two devices are missing, every object reads back byte-exact (boto3, MD5).
`cairn repair` prints progress and exits 0; the lost folders hold their units
again. Then two OTHER folders go (chosen so that without the repair some
units would have no copy left): every object still reads back, which only
holds if the repair rebuilt what d0 and d1 had. fsck is clean."""
import hashlib
import json
import os
import re
import shutil
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

t = lib.Test()
srv = t.server()
srv.start()
s3 = srv.client()
B = "loss"
KIB, MIB = 1 << 10, 1 << 20
sizes = [0, 100, 4096, 4097, 65536, 100 * KIB, 1 * MIB, 1 * MIB + 7, 3 * MIB, 5 * MIB + 123,
         9 * MIB]
s3.create_bucket(Bucket=B)
md5 = {}
for i, n in enumerate(sizes):
    body = os.urandom(n)
    key = f"o{i:02d}-{n}"
    s3.put_object(Bucket=B, Key=key, Body=body)
    md5[key] = hashlib.md5(body).hexdigest()
# a duplicate of a multi-stripe object: dedup must survive the loss too
s3.put_object(Bucket=B, Key="dup-of-9M", Body=b"")  # replaced below
big = s3.get_object(Bucket=B, Key=f"o10-{9 * MIB}")["Body"].read()
s3.put_object(Bucket=B, Key="dup-of-9M", Body=big)
md5["dup-of-9M"] = md5[f"o10-{9 * MIB}"]



def read_all(desc, check=t.check):
    bad = []
    for key, want in sorted(md5.items()):
        try:
            b = s3.get_object(Bucket=B, Key=key)["Body"].read()
            if hashlib.md5(b).hexdigest() != want:
                bad.append(f"{key}: {len(b)} bytes, wrong MD5")
        except Exception as e:  # noqa: BLE001
            bad.append(f"{key}: {type(e).__name__}: {e}")
    return check(f"{desc}: all {len(md5)} objects read back byte-exact", not bad,
                 "; ".join(bad[:8]))


def df():
    rc, out = srv.cli("df", "--json", check=False)
    try:
        return json.loads(out)
    except ValueError:
        return {"devices": [], "raw": out}


def dev(d, name):
    return next((x for x in d["devices"] if x["name"] == name), {})


def metrics():
    with urllib.request.urlopen(srv.api_endpoint + "/metrics", timeout=30) as r:
        return r.read().decode()


read_all("before any loss")
devdir = os.path.join(srv.data, "devices")


def unit_copies():
    """(stripe file stem, unit) -> set of devices holding a copy."""
    where = {}
    for dv in sorted(os.listdir(devdir)):
        for root, _, files in os.walk(os.path.join(devdir, dv)):
            for f in files:
                if re.match(r"^[0-9a-f]{16}\.[up]\d+$", f):
                    where.setdefault(f, set()).add(dv)
    return where


copies = unit_copies()
t.check("unit files found under the device folders", len(copies) > 0, str(os.listdir(devdir)))
srv.stop()
for name in ("d0", "d1"):
    shutil.rmtree(os.path.join(devdir, name))
srv.start()
s3 = srv.client()
m = metrics()
t.check("/metrics says d0 is missing", 'cairn_device_present{device="d0"} 0' in m,
        "\n".join(ln for ln in m.splitlines() if "device_present" in ln))
t.check("/metrics says d2 is present", 'cairn_device_present{device="d2"} 1' in m)
d = df()
t.check("cairn df --json: d1 missing", dev(d, "d1").get("present") is False, str(d)[:800])
rc, out = srv.cli("df", check=False)
t.check("cairn df shows MISSING", rc == 0 and re.search(r"^d0\s+MISSING", out, re.M), out)
read_all("with d0 and d1 gone")
m = metrics()
fb = re.search(r"^cairn_pool_read_fallbacks_total (\d+)", m, re.M)
t.check("reads fell back to other copies (cairn_pool_read_fallbacks_total > 0)",
        fb and int(fb.group(1)) > 0, fb.group(0) if fb else "no such metric")

# A missing folder may be an unmounted disk: a write must not make it again
# on the filesystem underneath; it fails cleanly until `cairn repair`.
try:
    s3.put_object(Bucket=B, Key="during-loss", Body=os.urandom(3 * 1024 * 1024))
    put_err = None
except Exception as e:  # botocore ClientError
    put_err = getattr(e, "response", {}).get("Error", {}).get("Code", str(e))
t.check("a PUT while d0/d1 are missing answers 503 ServiceUnavailable (S3 XML)",
        put_err == "ServiceUnavailable", str(put_err))
t.check("the missing folders were not made again by writes",
        not os.path.exists(os.path.join(devdir, "d0")) and
        not os.path.exists(os.path.join(devdir, "d1")), str(os.listdir(devdir)))

rc, out = srv.cli("repair", "--json", check=False)
try:
    job = json.loads(out[out.index("{"):])
except ValueError:
    job = {}
t.check("cairn repair exits 0", rc == 0 and job.get("state") == "done", out)
t.check("cairn repair printed progress lines on stderr", re.search(r"^repair: ", out, re.M), out)
t.check("repair rebuilt data (report bytes > 0)",
                 job.get("report", {}).get("bytes", 0) > 0 and
                 job.get("report", {}).get("fixed", 0) > 0, str(job))
d = df()
for name in ("d0", "d1"):
    t.check(f"{name} holds units again after repair",
                     dev(d, name).get("present") and dev(d, name).get("used_bytes", 0) > 1 * MIB,
                     str(dev(d, name)))
rc, out = srv.cli("repair", check=False)
t.check("a second repair exits 0 with a text report", rc == 0 and "result: clean" in out, out)
read_all("after repair")

# The other two: the pair that, together with d0 and d1, holds every copy of
# the most units as they were before the repair, so a repair that rebuilt
# nothing cannot pass the reads below by luck.
others = sorted(n for n in os.listdir(devdir) if n not in ("d0", "d1"))
best, best_n = tuple(others[:2]), -1
for i in range(len(others)):
    for j in range(i + 1, len(others)):
        lost = {"d0", "d1", others[i], others[j]}
        n = sum(1 for devs in copies.values() if devs <= lost)
        if n > best_n:
            best, best_n = (others[i], others[j]), n
t.log(f"second loss: {best}; without a repair {best_n} of {len(copies)} units "
      "would have no copy left")
srv.stop()
for name in best:
    shutil.rmtree(os.path.join(devdir, name))
srv.start()
s3 = srv.client()
read_all(f"after losing {best[0]} and {best[1]} too (needs the repair of d0 and d1)",
         check=t.check)
rc, out = srv.cli("repair", check=False)
t.check("the second repair exits 0", rc == 0, out)
rc, out = srv.cli("fsck", check=False)
t.check("fsck is clean", rc == 0, out)
t.finish()
