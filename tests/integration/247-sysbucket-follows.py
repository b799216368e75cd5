#!/usr/bin/python3
# LABELS: registry
# TIMEOUT: 300
"""247-sysbucket-follows: the system bucket object of an image follows
its owner and its status (issue 7).

An admin makes an image owned by alice: alice reads s3://cairn-images/ID
over S3 (boto3 with her keys), bob is refused. PATCH /owner alice->bob: now
bob reads it and alice is refused. Deactivate: the object is gone (the
owner no longer reads the bytes over S3; root sees NoSuchKey). PATCH the
owner back to alice while deactivated, reactivate: alice reads it again,
bob is refused. Deactivate again and delete: no object, and after gc the
pool holds no more unique bytes than before the image (no reference left
behind by the relinks, none dropped twice: fsck clean)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import reglib  # noqa: E402

MIB = 1 << 20
SYS = "cairn-images"
t = lib.Test()
t.catch_exceptions()
srv = reglib.server(t)
g = reglib.Glance(t, srv)
ADM = g.admin
g.token("alice")
g.token("bob")
s3 = {"alice": srv.client(*g.user("alice")), "bob": srv.client(*g.user("bob")),
      "root": srv.client()}


def unique():
    rc, out = srv.cli("df", "--json", check=False)
    return json.loads(out)["pool"]["unique_bytes"] if rc == 0 else -1


def s3_get(who, iid):
    """The object's bytes, or the S3 error code."""
    try:
        return s3[who].get_object(Bucket=SYS, Key=iid)["Body"].read()
    except Exception as e:  # botocore ClientError
        return getattr(e, "response", {}).get("Error", {}).get("Code", repr(e))


def readers(desc, iid, can, cannot, gone=False):
    for who in can:
        got = s3_get(who, iid)
        t.check(f"{desc}: {who} reads s3://{SYS}/ID byte-exact", got == data,
                got if not isinstance(got, bytes) else f"{len(got)} bytes")
    for who in cannot:
        got = s3_get(who, iid)
        t.check(f"{desc}: {who} is refused (AccessDenied)", got == "AccessDenied",
                got if not isinstance(got, bytes) else f"read {len(got)} bytes")
    if gone:
        got = s3_get("root", iid)
        t.check(f"{desc}: the object is gone (root: NoSuchKey)", got == "NoSuchKey",
                got if not isinstance(got, bytes) else f"read {len(got)} bytes")


u0 = unique()
data = reglib.pattern_bytes(2 * MIB, "247")
r = g.req("POST", "/v2/images", ADM, json_body={"name": "follows", "owner": "alice",
                                               "disk_format": "raw", "container_format": "bare"})
t.check("admin creates an image owned by alice -> 201", r.status_code == 201, r.text[:300])
iid = r.json()["id"]
r = g.req("PUT", f"/v2/images/{iid}/file", ADM, data=data,
          headers={"Content-Type": "application/octet-stream"})
g.expect_status("upload", r, 204)
readers("owner alice", iid, ["alice", "root"], ["bob"])

r = g.patch(iid, ADM, [{"op": "replace", "path": "/owner", "value": "bob"}])
g.expect_status("PATCH /owner alice -> bob", r, 200)
readers("after the owner became bob", iid, ["bob", "root"], ["alice"])
head = s3["root"].head_object(Bucket=SYS, Key=iid)
t.check("the relinked object keeps size and ETag",
        head["ContentLength"] == len(data) and head["ETag"].strip('"') == reglib.md5(data), head)

r = g.req("POST", f"/v2/images/{iid}/actions/deactivate", ADM)
g.expect_status("deactivate", r, 204)
readers("deactivated", iid, [], ["bob"], gone=True)
r = g.req("GET", f"/v2/images/{iid}/file", g.token("bob"))
t.check("deactivated: the owner cannot download over Glance either", r.status_code == 403,
        f"{r.status_code}")

r = g.patch(iid, ADM, [{"op": "replace", "path": "/owner", "value": "alice"}])
g.expect_status("PATCH /owner bob -> alice while deactivated", r, 200)
readers("still deactivated after the owner change", iid, [], [], gone=True)
r = g.req("POST", f"/v2/images/{iid}/actions/reactivate", ADM)
g.expect_status("reactivate", r, 204)
readers("reactivated (owner alice)", iid, ["alice", "root"], ["bob"])

r = g.req("POST", f"/v2/images/{iid}/actions/deactivate", ADM)
g.expect_status("deactivate again", r, 204)
r = g.req("DELETE", f"/v2/images/{iid}", ADM)
g.expect_status("delete the deactivated image", r, 204)
readers("deleted", iid, [], [], gone=True)
g.gc()
u1 = unique()
t.check("after delete and gc the image's bytes are freed (no reference left behind)",
        0 <= u1 <= u0 + 64 * 1024, f"before {u0}, after {u1}")
rc, out = srv.cli("fsck", check=False)
t.check("fsck clean", rc == 0, out)
srv.stop()
t.finish()
