#!/usr/bin/python3
# LABELS: registry
# TIMEOUT: 300
"""246-glance-owner-name: an image owner must be a cairn user name (issue 7).

The system bucket links an image's bytes under its owner, and an object
owner must be a valid user name: an image created (or PATCHed) with owner
"my project" could never get data (every upload 400). So create and PATCH
refuse such an owner with 400 and a message naming the rule; a valid name
(even of a user that does not exist yet) and null are accepted, and an image
of a valid owner takes data."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import reglib  # noqa: E402

t = lib.Test()
t.catch_exceptions()
srv = reglib.server(t)
g = reglib.Glance(t, srv)
ADM = g.admin
base = {"disk_format": "raw", "container_format": "bare"}

for bad in ("my project", "", "x" * 65, "a/b", "caf\u00e9"):
    r = g.req("POST", "/v2/images", ADM, json_body=dict(base, name="bad", owner=bad))
    g.expect_error(f"create with owner {bad[:20]!r}", r, 400, r"owner.*cairn user name")
    if r.status_code == 201:
        g.req("DELETE", f"/v2/images/{r.json()['id']}", ADM)
r = g.req("GET", "/v2/images", ADM)
t.check("no image was left behind by the refused creates",
        r.status_code == 200 and not [i for i in r.json()["images"] if i.get("name") == "bad"],
        r.text[:300])

r = g.req("POST", "/v2/images", ADM, json_body=dict(base, name="ok", owner="proj-1.a@b"))
t.check("create with a valid user name that is no user yet -> 201", r.status_code == 201,
        r.text[:300])
img = r.json() if r.status_code == 201 else {}
iid = img.get("id")
t.check("the owner is kept", img.get("owner") == "proj-1.a@b", img)

r = g.patch(iid, ADM, [{"op": "replace", "path": "/owner", "value": "my project"}])
g.expect_error("PATCH /owner to 'my project'", r, 400, r"owner.*cairn user name")
t.check("the refused PATCH changed nothing", (g.show(iid) or {}).get("owner") == "proj-1.a@b")
r = g.patch(iid, ADM, [{"op": "replace", "path": "/owner", "value": "alice"}])
g.expect_status("PATCH /owner to 'alice'", r, 200)

data = reglib.pattern_bytes(300 * 1024, "246")
r = g.req("PUT", f"/v2/images/{iid}/file", ADM, data=data,
          headers={"Content-Type": "application/octet-stream"})
g.expect_status("upload into the image of a valid owner", r, 204)
shown = g.show(iid) or {}
t.check("the image is active with the bytes' checksum",
        shown.get("status") == "active" and shown.get("checksum") == reglib.md5(data), shown)
rc, out = srv.cli("fsck", check=False)
t.check("fsck clean", rc == 0, out)
srv.stop()
t.finish()
