#!/usr/bin/python3
# LABELS: registry
# TIMEOUT: 300
"""248-tenant-images: in a [pool] dedup_domain = tenant pool an image's
bytes dedup only within its OWNER's domain (issue 7), as S3 PUTs do.

alice uploads an image (PUT .../file); bob uploads the same bytes: they are
stored again (unique bytes double) and neither image reports shared bytes
(cairn_shared_bytes would reveal that another tenant holds this content).
alice's own S3 PUT of the bytes, and an image the admin makes for owner alice
through stage + glance-direct, store nothing new (her domain, not the
uploader's). carol's qcow2 of the bytes grows the pool by about the bytes
once: its raw view dedups against her qcow2 in her domain (not against
alice's, and not stored a second time in another domain)."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import reglib  # noqa: E402

MIB = 1 << 20
N = 3 * MIB
SLACK = 256 * 1024
t = lib.Test()
t.catch_exceptions()
srv = reglib.server(t, config={"pool": {"dedup_domain": "tenant"}})
g = reglib.Glance(t, srv)
ADM = g.admin
tok = {u: g.token(u) for u in ("alice", "bob", "carol")}


def unique():
    rc, out = srv.cli("df", "--json", check=False)
    return json.loads(out)["pool"]["unique_bytes"] if rc == 0 else -1


def image(token, owner=None, fmt="raw"):
    body = {"name": "img", "disk_format": fmt, "container_format": "bare"}
    if owner:
        body["owner"] = owner
    r = g.req("POST", "/v2/images", token, json_body=body)
    t.check("create -> 201", r.status_code == 201, r.text[:300])
    return r.json()["id"]


def upload(token, iid, data, path="file"):
    r = g.req("PUT", f"/v2/images/{iid}/{path}", token, data=data,
              headers={"Content-Type": "application/octet-stream"})
    g.expect_status(f"PUT .../{path}", r, 204)


data = reglib.pattern_bytes(N, "248")
u0 = unique()
ia = image(tok["alice"])
upload(tok["alice"], ia, data)
u1 = unique()
t.check("alice's image is stored (unique bytes grow by its size)", abs((u1 - u0) - N) <= SLACK,
        f"{u0} -> {u1}")

ib = image(tok["bob"])
upload(tok["bob"], ib, data)
u2 = unique()
t.check("bob's equal image is stored apart (unique bytes grow by its size again)",
        abs((u2 - u1) - N) <= SLACK, f"{u1} -> {u2}")
for who, iid in (("alice", ia), ("bob", ib)):
    img = g.show(iid, tok[who]) or {}
    t.check(f"{who}'s image reports no shared bytes (nothing of another tenant shows)",
            0 <= img.get("cairn_shared_bytes", -1) <= SLACK and
            img.get("cairn_unique_bytes", 0) >= N - SLACK,
            f"unique {img.get('cairn_unique_bytes')} shared {img.get('cairn_shared_bytes')}")

kid, sec = g.user("alice")
s3a = srv.client(key=kid, secret=sec)
s3a.create_bucket(Bucket="alice-b")
s3a.put_object(Bucket="alice-b", Key="same", Body=data)
u3 = unique()
t.check("alice's S3 PUT of the bytes dedups against her image (same domain)",
        abs(u3 - u2) <= SLACK, f"{u2} -> {u3}")

ic = image(ADM, owner="alice")
upload(ADM, ic, data, path="stage")
r = g.req("POST", f"/v2/images/{ic}/import", ADM, json_body={"method": {"name": "glance-direct"}})
g.expect_status("import glance-direct", r, 202)
img = g.wait_status(ic, "active", ADM) or {}
t.check("the staged image is active", img.get("status") == "active", img)
u4 = unique()
t.check("an image the admin stages for owner alice dedups in alice's domain",
        abs(u4 - u3) <= SLACK, f"{u3} -> {u4}")

if shutil.which("qemu-img"):
    raw = os.path.join(t.dir, "d.raw")
    q = os.path.join(t.dir, "d.qcow2")
    with open(raw, "wb") as f:
        f.write(data)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, q], check=True)
    with open(q, "rb") as f:
        qdata = f.read()
    iq = image(tok["carol"], fmt="qcow2")
    upload(tok["carol"], iq, qdata)
    img = g.show(iq, tok["carol"]) or {}
    t.check("carol's qcow2 image is active", img.get("status") == "active", img)
    u5 = unique()
    t.check("carol's qcow2 and its raw view are stored once in her domain "
            "(unique bytes grow by about the bytes, not 0 and not twice)",
            N - SLACK <= u5 - u4 <= N + 2 * SLACK, f"{u4} -> {u5}")
else:
    t.log("note: no qemu-img: the qcow2 raw view part is skipped")

rc, out = srv.cli("fsck", check=False)
t.check("fsck clean", rc == 0, out)
srv.stop()
t.finish()
