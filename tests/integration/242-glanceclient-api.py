#!/usr/bin/python3
# LABELS: registry
# TIMEOUT: 300
"""242-glanceclient-api: every Glance v2 route through the glanceclient Python
API (Debian python3-glanceclient, `glanceclient.Client('2', endpoint, token)`),
with python3-requests where the status line and headers matter (issue 7).

Discovery (/, /versions, every schema: enums exact, extra properties strings,
cairn_unique_bytes/cairn_shared_bytes readOnly integers, no `stores`), auth
(no token / bad token 401), create with a client-chosen id (duplicate 409),
read-only and reserved fields 403, bad formats 400; list filters (name,
status, visibility, owner, formats, tags, size_min/max, checksum,
os_hash_value, an extra property, in: lists, gt:/lt: on created_at),
limit/marker pagination whose next link keeps the query, sort_key/sort_dir
and sort; PATCH with several add/replace/remove ops; tags; deactivate/
reactivate; members (share, accept, reject, delete) and the four
visibilities; data upload streamed by glanceclient (chunked) and download
(Content-MD5 hex, Range -> 206, no data -> 204); stage + import
glance-direct; web-download from a local http.server (allowed through
web_download_allow in a config file; refused for a host not allowed and for
the node's own admin port); s3-object import of an object uploaded with
awscli (no new chunks stored); the system bucket read over S3 by the owner
(awscli with the user's keys) and refused to another user; unique/shared
bytes of an image that extends another; delete (protected -> 403)."""
import datetime
import functools
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import reglib  # noqa: E402

MIB = 1 << 20
t = lib.Test()
t.catch_exceptions()
lib.requires("/usr/bin/aws", "qemu-img")
try:
    import glanceclient  # noqa: F401
    from glanceclient import exc as gexc
except ImportError:
    print("SKIP: requires python3-glanceclient")
    sys.exit(77)

WEB = os.path.join(t.dir, "web")
os.makedirs(WEB)
srv = reglib.server(t, config={"web_download_allow": "127.0.0.1", "max_image_size": "64M"})
g = reglib.Glance(t, srv)
ADM = g.admin
alice, bob, carol = g.token("alice"), g.token("bob"), g.token("carol")
ga, gb, gcl, gadm = g.client(alice), g.client(bob), g.client(carol), g.client(ADM)


def client_error(desc, fn, code):
    """fn() must raise glanceclient's HTTP exception with this status."""
    try:
        fn()
    except gexc.HTTPException as e:
        return t.check(f"{desc}: glanceclient raises {code}", getattr(e, "code", None) == code,
                       f"got {getattr(e, 'code', None)}: {e}")
    except Exception as e:  # noqa: BLE001
        return t.check(f"{desc}: glanceclient raises {code}", False, f"{type(e).__name__}: {e}")
    return t.check(f"{desc}: glanceclient raises {code}", False, "the call succeeded")


def names(images):
    return sorted(i["name"] for i in images)


def aws(key, secret, *args, data=None):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url", srv.endpoint] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


# ---- discovery -------------------------------------------------------------
r = g.req("GET", "/")
t.check("GET / -> 300 Multiple Choices", r.status_code == 300, f"{r.status_code} {r.text[:200]}")
try:
    vers = r.json().get("versions", [])
except ValueError:
    vers = []
t.check("GET /: a CURRENT v2.x version with a link", any(
    v.get("status") == "CURRENT" and str(v.get("id", "")).startswith("v2.") and v.get("links")
    for v in vers), r.text[:400])
r = g.req("GET", "/versions")
t.check("GET /versions -> 200 with the versions list", r.status_code == 200 and
        any(str(v.get("id", "")).startswith("v2") for v in r.json().get("versions", [])), r.text[:300])
schema = t.attempt("glanceclient schemas.get('image')", lambda: ga.schemas.get("image"))
raw_schema = g.req("GET", "/v2/schemas/image", alice).json()
props = raw_schema.get("properties", {})
t.check("image schema: no `stores` property (it crashes the glance CLI once cached)",
        "stores" not in props, sorted(props))
for k in ("cairn_unique_bytes", "cairn_shared_bytes"):
    p = props.get(k, {})
    t.check(f"image schema: {k} is a readOnly integer", p.get("readOnly") is True and
            "integer" in (p.get("type") if isinstance(p.get("type"), list) else [p.get("type")]), p)
t.check("image schema: extra properties are strings",
        raw_schema.get("additionalProperties", {}).get("type") == "string", raw_schema.get("additionalProperties"))
t.check("image schema: disk_format enum as Glance's (raw, qcow2, iso, ... and null)",
        {"raw", "qcow2", "iso", "vmdk", "vhd", "vdi", None} <= set(props.get("disk_format", {}).get("enum", [])),
        props.get("disk_format"))
t.check("image schema: container_format enum (bare, ovf, ... and null)",
        {"bare", "ovf", "ova", "docker", None} <= set(props.get("container_format", {}).get("enum", [])),
        props.get("container_format"))
t.check("image schema: visibility enum is exactly Glance's four",
        sorted(props.get("visibility", {}).get("enum", [])) == ["community", "private", "public", "shared"],
        props.get("visibility"))
t.check("image schema: status enum has queued/saving/active/killed/deactivated/uploading/importing",
        {"queued", "saving", "active", "killed", "deleted", "pending_delete", "deactivated", "uploading",
         "importing"} <= set(props.get("status", {}).get("enum", [])), props.get("status"))
t.check("glanceclient parsed the schema (its properties include name, tags)",
        schema is not None and "name" in schema.raw()["properties"] and "tags" in schema.raw()["properties"])
for sname in ("images", "member", "members", "task", "tasks"):
    r = g.req("GET", f"/v2/schemas/{sname}", alice)
    t.check(f"GET /v2/schemas/{sname} -> 200 JSON schema with a name",
            r.status_code == 200 and r.json().get("name") and "properties" in r.json(), r.text[:200])
t.attempt("glanceclient schemas.get('member')", lambda: ga.schemas.get("member"))
info = t.attempt("glanceclient images.get_import_info()", lambda: ga.images.get_import_info())
vals = (info or {}).get("import-methods", {}).get("value", [])
t.check("/v2/info/import: glance-direct, s3-object and web-download (allowed by config)",
        {"glance-direct", "s3-object", "web-download"} <= set(vals), info)

# ---- auth ---------------------------------------------------------------------
g.expect_error("GET /v2/images without a token", g.req("GET", "/v2/images"), 401)
g.expect_error("GET /v2/images with an unknown token", g.req("GET", "/v2/images", "0" * 64), 401)
client_error("glanceclient with a bad token", lambda: list(g.client("f" * 64).images.list()), 401)

# ---- create -----------------------------------------------------------------------
iid = str(uuid.uuid4())
img = t.attempt("create with a client-chosen id, tags and an extra property",
                lambda: ga.images.create(id=iid, name="first", disk_format="raw", container_format="bare",
                                         tags=["a", "b"], os_distro="debian", min_ram=64))
if img:
    t.expect_eq("create: id as chosen", img["id"], iid)
    t.expect_eq("create: status queued", img["status"], "queued")
    t.expect_eq("create: owner is the creating user", img["owner"], "alice")
    t.expect_eq("create: default visibility shared (Glance's)", img["visibility"], "shared")
    t.expect_eq("create: extra property is a string", img.get("os_distro"), "debian")
    t.expect_eq("create: tags", sorted(img["tags"]), ["a", "b"])
    t.expect_eq("create: min_ram", img["min_ram"], 64)
    t.check("create: protected false, size/checksum null, file and self links",
            img["protected"] is False and img.get("size") is None and img.get("checksum") is None and
            img.get("file") == f"/v2/images/{iid}/file", dict(img))
r = g.req("POST", "/v2/images", alice, json_body={"id": iid, "name": "again"})
g.expect_error("create with a taken id", r, 409)
client_error("glanceclient create with a taken id", lambda: ga.images.create(id=iid, name="x"), 409)
for field, val in (("status", "active"), ("checksum", "0" * 32), ("size", 5), ("created_at", "2020-01-01T00:00:00Z"),
                   ("self", "/x"), ("file", "/x"), ("schema", "/x"),
                   ("location", "http://x"), ("stores", "x")):
    g.expect_error(f"create with read-only/reserved {field!r}",
                   g.req("POST", "/v2/images", alice, json_body={"name": "ro", field: val}), 403)
g.expect_error("create with disk_format 'floppy'",
               g.req("POST", "/v2/images", alice, json_body={"name": "bad", "disk_format": "floppy"}), 400)
g.expect_error("create with container_format 'crate'",
               g.req("POST", "/v2/images", alice, json_body={"name": "bad", "container_format": "crate"}), 400)
g.expect_error("create with a non-string extra property",
               g.req("POST", "/v2/images", alice, json_body={"name": "bad", "prop": 5}), 400)
g.expect_error("create with visibility 'everyone'",
               g.req("POST", "/v2/images", alice, json_body={"name": "bad", "visibility": "everyone"}), 400)
shown = t.attempt("glanceclient images.get", lambda: ga.images.get(iid))
t.check("get: the same image", shown is not None and shown["name"] == "first" and shown["id"] == iid)
t.check("get: cairn_unique_bytes / cairn_shared_bytes are integers", shown is not None and
        isinstance(shown.get("cairn_unique_bytes"), int) and isinstance(shown.get("cairn_shared_bytes"), int),
        dict(shown or {}))

# ---- data: upload (streamed), download, Range, 204 ------------------------------------
data1 = os.urandom(3 * MIB + 12345)
t.attempt("glanceclient images.upload (a file object: sent chunked)",
          lambda: ga.images.upload(iid, io.BytesIO(data1)))
img = ga.images.get(iid)
t.expect_eq("after upload: active", img["status"], "active")
t.expect_eq("after upload: size", img["size"], len(data1))
t.expect_eq("after upload: checksum is the hex MD5", img["checksum"], reglib.md5(data1))
t.expect_eq("after upload: os_hash_algo", img["os_hash_algo"], "sha512")
t.expect_eq("after upload: os_hash_value", img["os_hash_value"], reglib.sha512(data1))
t.expect_eq("after upload: virtual_size of a raw image is its size", img.get("virtual_size"), len(data1))
body = t.attempt("glanceclient images.data (verifies os_hash_value)", lambda: b"".join(ga.images.data(iid)))
t.check("download: the bytes uploaded", body == data1, f"{len(body or b'')} bytes")
r = g.req("GET", f"/v2/images/{iid}/file", alice)
t.check("GET file -> 200, Content-MD5 hex, Content-Length, octet-stream",
        r.status_code == 200 and r.headers.get("Content-MD5") == reglib.md5(data1) and
        r.headers.get("Content-Length") == str(len(data1)) and
        r.headers.get("Content-Type", "").startswith("application/octet-stream") and r.content == data1,
        f"{r.status_code} {dict(r.headers)}")
r = g.req("GET", f"/v2/images/{iid}/file", alice, headers={"Range": "bytes=1000-1999"})
t.check("GET file Range bytes=1000-1999 -> 206 with Content-Range and those bytes",
        r.status_code == 206 and r.headers.get("Content-Range") == f"bytes 1000-1999/{len(data1)}" and
        r.content == data1[1000:2000] and r.headers.get("Content-Length") == "1000",
        f"{r.status_code} {dict(r.headers)} {len(r.content)}")
r = g.req("GET", f"/v2/images/{iid}/file", alice, headers={"Range": f"bytes={len(data1) - 10}-"})
t.check("GET file Range bytes=N-10- -> 206, the last 10 bytes",
        r.status_code == 206 and r.content == data1[-10:], f"{r.status_code} {dict(r.headers)}")
client_error("a second upload to an active image", lambda: ga.images.upload(iid, io.BytesIO(b"x" * 10)), 409)
empty = ga.images.create(name="nodata", disk_format="raw", container_format="bare")
r = g.req("GET", f"/v2/images/{empty['id']}/file", alice)
t.check("GET file of an image without data -> 204, no body", r.status_code == 204 and not r.content,
        f"{r.status_code} {r.text[:100]}")
got = ga.images.data(empty["id"])
t.check("glanceclient images.data of an image without data: None", getattr(got, "__wrapped__", got) is None,
        repr(got))
img = ga.images.get(iid)
t.check("the uploaded image's unique bytes are ~its size (nothing else holds its chunks)",
        img.get("cairn_unique_bytes", -1) >= len(data1) - 256 * 1024 and img.get("cairn_shared_bytes", -1) <= 256 * 1024,
        f"unique {img.get('cairn_unique_bytes')} shared {img.get('cairn_shared_bytes')}")

# ---- list filters, pagination, sorting --------------------------------------------------
qcow = os.path.join(t.dir, "small.qcow2")
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", qcow, "8M"], check=True)
subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 256k", qcow], check=True,
               stdout=subprocess.DEVNULL)
qdata = open(qcow, "rb").read()
spec = [("lst-a", "raw", os.urandom(1 * MIB), ["t1", "t2"], "debian"),
        ("lst-b", "raw", os.urandom(3 * MIB), ["t1"], "ubuntu"),
        ("lst-c", "iso", None, [], "debian"),
        ("lst-d", "qcow2", qdata, ["t2"], "fedora")]
L = {}
for n, (name, fmt, data, tags, distro) in enumerate(spec):
    im = ga.images.create(name=name, disk_format=fmt, container_format="bare", tags=tags,
                          os_distro=distro, suite="lst")
    if data is not None:
        ga.images.upload(im["id"], io.BytesIO(data))
    L[name] = ga.images.get(im["id"])
    if name == "lst-c":
        time.sleep(2.05)  # d is created in a later second than c's next
t.expect_eq("qcow2 upload: active", L["lst-d"]["status"], "active")
t.expect_eq("qcow2 upload: virtual_size from the qcow2 header", L["lst-d"].get("virtual_size"), 8 * MIB)
t.expect_eq("qcow2 upload: size is the file's", L["lst-d"]["size"], len(qdata))


def lst(desc, filters, want, client=ga, **kw):
    f = dict(filters)
    f.setdefault("suite", "lst")
    got = t.attempt(f"list {desc}", lambda: names(client.images.list(filters=f, **kw)))
    t.expect_eq(f"list {desc}: names", got, sorted(want))


lst("suite=lst", {}, ["lst-a", "lst-b", "lst-c", "lst-d"])
lst("name=lst-a", {"name": "lst-a"}, ["lst-a"])
lst("name=in:lst-a,lst-c", {"name": "in:lst-a,lst-c"}, ["lst-a", "lst-c"])
lst("status=queued", {"status": "queued"}, ["lst-c"])
lst("status=in:queued,active", {"status": "in:queued,active"}, ["lst-a", "lst-b", "lst-c", "lst-d"])
lst("disk_format=raw", {"disk_format": "raw"}, ["lst-a", "lst-b"])
lst("disk_format=in:iso,qcow2", {"disk_format": "in:iso,qcow2"}, ["lst-c", "lst-d"])
lst("container_format=bare", {"container_format": "bare"}, ["lst-a", "lst-b", "lst-c", "lst-d"])
lst("container_format=ovf", {"container_format": "ovf"}, [])
lst("visibility=shared", {"visibility": "shared"}, ["lst-a", "lst-b", "lst-c", "lst-d"])
lst("visibility=private", {"visibility": "private"}, [])
lst("owner=alice", {"owner": "alice"}, ["lst-a", "lst-b", "lst-c", "lst-d"])
lst("owner=bob", {"owner": "bob"}, [])
lst("tag=t1", {"tag": ["t1"]}, ["lst-a", "lst-b"])
lst("tag=t1&tag=t2 (both)", {"tag": ["t1", "t2"]}, ["lst-a"])
lst("size_min=2MiB", {"size_min": str(2 * MIB)}, ["lst-b"])
lst("size_max=2MiB", {"size_max": str(2 * MIB)}, ["lst-a", "lst-d"])
lst("size_min=1MiB&size_max=1MiB", {"size_min": str(MIB), "size_max": str(MIB)}, ["lst-a"])
lst("checksum", {"checksum": L["lst-b"]["checksum"]}, ["lst-b"])
lst("os_hash_value", {"os_hash_value": L["lst-a"]["os_hash_value"]}, ["lst-a"])
lst("extra property os_distro=debian", {"os_distro": "debian"}, ["lst-a", "lst-c"])
lst("id=in:a,d", {"id": f"in:{L['lst-a']['id']},{L['lst-d']['id']}"}, ["lst-a", "lst-d"])
# created_at is shown to the second; Glance compares what its database keeps
# (seconds with MySQL, microseconds with sqlite): gt: one second past c's
# shown time excludes a, b, c (created in c's second or before) and includes
# d (created >= 2 s after c, so in a later second) either way
c_next = (datetime.datetime.strptime(L["lst-c"]["created_at"], "%Y-%m-%dT%H:%M:%SZ") +
          datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
lst("created_at=gt:<c's created_at + 1 s>", {"created_at": "gt:" + c_next}, ["lst-d"])
lst("created_at=lt:<d's created_at>", {"created_at": "lt:" + L["lst-d"]["created_at"]}, ["lst-a", "lst-b", "lst-c"])
lst("created_at=gt:2000-01-01T00:00:00Z", {"created_at": "gt:2000-01-01T00:00:00Z"},
    ["lst-a", "lst-b", "lst-c", "lst-d"])
lst("updated_at=lt:2000-01-01T00:00:00Z", {"updated_at": "lt:2000-01-01T00:00:00Z"}, [])
lst("by bob (not shared with him): nothing", {}, [], client=gb)
lst("by the admin token: all four", {}, ["lst-a", "lst-b", "lst-c", "lst-d"], client=gadm)
lst("glanceclient page_size=1 follows next links", {}, ["lst-a", "lst-b", "lst-c", "lst-d"], page_size=1)

# pagination by hand: the next link keeps the query
q = "/v2/images?suite=lst&os_distro=debian&limit=1&sort_key=name&sort_dir=asc"
r = g.req("GET", q, alice)
j = r.json() if r.status_code == 200 else {}
t.check("list limit=1 -> one image, first and schema links",
        len(j.get("images", [])) == 1 and j.get("schema") == "/v2/schemas/images" and
        str(j.get("first", "")).startswith("/v2/images?"), r.text[:400])
seen = [i["name"] for i in j.get("images", [])]
pages = 1
while j.get("next") and pages < 10:
    nq = urllib.parse.parse_qs(urllib.parse.urlsplit(j["next"]).query)
    t.check(f"next link {pages} keeps the query (suite, os_distro, limit, sort) and names a marker",
            nq.get("suite") == ["lst"] and nq.get("os_distro") == ["debian"] and nq.get("limit") == ["1"]
            and nq.get("sort_key") == ["name"] and nq.get("sort_dir") == ["asc"] and
            len(nq.get("marker", [])) == 1, j["next"])
    r = g.req("GET", j["next"], alice)
    j = r.json() if r.status_code == 200 else {}
    seen += [i["name"] for i in j.get("images", [])]
    pages += 1
t.expect_eq("pages in name order, nothing twice or missed", seen, ["lst-a", "lst-c"])
t.check("the last page has no next link", "next" not in j, j)
r = g.req("GET", "/v2/images?suite=lst&limit=2&sort_key=name&sort_dir=asc&marker=" + L["lst-b"]["id"], alice)
t.expect_eq("marker=lst-b with name asc: the images after it", [i["name"] for i in r.json().get("images", [])],
            ["lst-c", "lst-d"])


def order(desc, want, **kw):
    got = t.attempt(f"sort {desc}", lambda: [i["name"] for i in ga.images.list(filters={"suite": "lst"}, **kw)])
    t.expect_eq(f"sort {desc}: order", got, want)


order("default (created_at desc)", ["lst-d", "lst-c", "lst-b", "lst-a"])
order("sort_key=name sort_dir=asc", ["lst-a", "lst-b", "lst-c", "lst-d"], sort_key="name", sort_dir="asc")
order("sort_key=name sort_dir=desc", ["lst-d", "lst-c", "lst-b", "lst-a"], sort_key="name", sort_dir="desc")
order("sort=disk_format:asc,name:desc", ["lst-c", "lst-d", "lst-b", "lst-a"], sort="disk_format:asc,name:desc")
order("sort_key=[disk_format,name] sort_dir=[desc,asc]", ["lst-a", "lst-b", "lst-d", "lst-c"],
      sort_key=["disk_format", "name"], sort_dir=["desc", "asc"])
r = g.req("GET", "/v2/images?suite=lst&sort_key=size&sort_dir=desc&size_min=1", alice)
t.expect_eq("sort_key=size desc (raw request)", [i["name"] for i in r.json().get("images", [])],
            ["lst-b", "lst-a", "lst-d"])
g.expect_error("sort_key=bogus", g.req("GET", "/v2/images?sort_key=bogus", alice), 400)
g.expect_error("sort_dir=sideways", g.req("GET", "/v2/images?sort_key=name&sort_dir=sideways", alice), 400)
g.expect_error("sort together with sort_key", g.req("GET", "/v2/images?sort=name:asc&sort_key=name", alice), 400)
g.expect_error("limit=-1", g.req("GET", "/v2/images?limit=-1", alice), 400)
g.expect_error("visibility=everyone filter", g.req("GET", "/v2/images?visibility=everyone", alice), 400)

# ---- PATCH -----------------------------------------------------------------------------------
a = L["lst-a"]["id"]
up = t.attempt("glanceclient images.update: name, a new property, a removed property",
               lambda: ga.images.update(a, name="lst-a2", hw_disk_bus="virtio", remove_props=["os_distro"]))
if up:
    t.check("update: applied (name, hw_disk_bus, os_distro gone)", up["name"] == "lst-a2" and
            up.get("hw_disk_bus") == "virtio" and "os_distro" not in up, dict(up))
r = g.patch(a, alice, [{"op": "replace", "path": "/name", "value": "lst-a3"},
                       {"op": "add", "path": "/os_distro", "value": "arch"},
                       {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
                       {"op": "remove", "path": "/suite"},
                       {"op": "add", "path": "/suite", "value": "lst"},
                       {"op": "replace", "path": "/tags", "value": ["x", "y", "x"]},
                       {"op": "replace", "path": "/min_disk", "value": 2},
                       {"op": "replace", "path": "/protected", "value": True}])
j = r.json() if r.status_code == 200 else {}
t.check("PATCH with 8 ops -> 200 with the new image", r.status_code == 200 and j.get("name") == "lst-a3" and
        j.get("os_distro") == "arch" and j.get("hw_disk_bus") == "scsi" and j.get("suite") == "lst" and
        sorted(j.get("tags", [])) == ["x", "y"] and j.get("min_disk") == 2 and j.get("protected") is True,
        r.text[:500])
t.check("PATCH: updated_at moved, created_at did not",
        j.get("created_at") == L["lst-a"]["created_at"] and j.get("updated_at", "") >= L["lst-a"]["updated_at"], j)
again = g.show(a, alice)
t.check("GET after PATCH shows the same", again and again.get("name") == "lst-a3" and
        sorted(again.get("tags", [])) == ["x", "y"], again)
r = g.patch(a, alice, [{"op": "replace", "path": "/name", "value": "never"},
                       {"op": "remove", "path": "/no_such_prop"}])
g.expect_error("PATCH whose 2nd op removes a missing property", r, 409)
t.expect_eq("a failed PATCH applies none of its ops", (g.show(a, alice) or {}).get("name"), "lst-a3")
g.expect_error("PATCH of read-only /status", g.patch(a, alice, [{"op": "replace", "path": "/status",
                                                               "value": "active"}]), 403)
g.expect_error("PATCH of read-only /checksum", g.patch(a, alice, [{"op": "replace", "path": "/checksum",
                                                                 "value": "0" * 32}]), 403)
g.expect_error("PATCH removing a base property (/name)", g.patch(a, alice, [{"op": "remove", "path": "/name"}]), 403)
g.expect_error("PATCH by another user (bob cannot see it)",
               g.patch(a, bob, [{"op": "replace", "path": "/name", "value": "bob"}]), 404)
g.expect_error("PATCH /owner by a non-admin", g.patch(a, alice, [{"op": "replace", "path": "/owner",
                                                                "value": "bob"}]), 403)

# ---- tags ------------------------------------------------------------------------------------------
t.attempt("image_tags.update (PUT /tags/new)", lambda: ga.image_tags.update(a, "new"))
t.check("the tag is there", "new" in g.show(a, alice)["tags"])
t.attempt("image_tags.update of an existing tag (idempotent)", lambda: ga.image_tags.update(a, "new"))
t.attempt("image_tags.delete (DELETE /tags/new)", lambda: ga.image_tags.delete(a, "new"))
t.check("the tag is gone", "new" not in g.show(a, alice)["tags"])
r = g.req("DELETE", f"/v2/images/{a}/tags/never-there", alice)
g.expect_error("DELETE of a tag the image does not have", r, 404)
r = g.req("PUT", f"/v2/images/{a}/tags/raw-tag", alice)
t.check("PUT /tags/raw-tag -> 204", r.status_code == 204, f"{r.status_code} {r.text[:200]}")

# ---- protected, delete --------------------------------------------------------------------------------
client_error("delete a protected image", lambda: ga.images.delete(a), 403)
g.expect_error("DELETE of a protected image (raw)", g.req("DELETE", f"/v2/images/{a}", alice), 403)
ga.images.update(a, protected=False)
t.attempt("delete after unprotecting", lambda: ga.images.delete(a))
g.expect_error("GET a deleted image", g.req("GET", f"/v2/images/{a}", alice), 404)
g.expect_error("GET file of a deleted image", g.req("GET", f"/v2/images/{a}/file", alice), 404)

# ---- deactivate / reactivate ---------------------------------------------------------------------------
b = L["lst-b"]["id"]
t.attempt("deactivate (owner)", lambda: ga.images.deactivate(b))
t.expect_eq("status deactivated", g.show(b, alice)["status"], "deactivated")
g.expect_error("a non-admin download of a deactivated image", g.req("GET", f"/v2/images/{b}/file", alice), 403)
r = g.req("GET", f"/v2/images/{b}/file", ADM)
t.check("the admin still downloads a deactivated image", r.status_code == 200 and
        reglib.md5(r.content) == L["lst-b"]["checksum"], f"{r.status_code}")
r = g.req("POST", f"/v2/images/{b}/actions/deactivate", alice)
t.check("deactivate again -> 204 (idempotent)", r.status_code == 204, f"{r.status_code} {r.text[:200]}")
t.attempt("reactivate", lambda: ga.images.reactivate(b))
t.expect_eq("status active again", g.show(b, alice)["status"], "active")
r = g.req("GET", f"/v2/images/{b}/file", alice)
t.check("download after reactivate", r.status_code == 200 and reglib.md5(r.content) == L["lst-b"]["checksum"])
g.expect_error("deactivate a queued image", g.req("POST", f"/v2/images/{L['lst-c']['id']}/actions/deactivate",
                                                  alice), 403)
g.expect_error("deactivate by a user who cannot see it", g.req("POST", f"/v2/images/{b}/actions/deactivate",
                                                               bob), 404)

# ---- members and visibilities --------------------------------------------------------------------------
s = ga.images.create(name="shared-img", disk_format="raw", container_format="bare", visibility="shared")
ga.images.upload(s["id"], io.BytesIO(b"shared bytes " * 1000))
sid = s["id"]
g.expect_error("bob GETs alice's shared image before he is a member", g.req("GET", f"/v2/images/{sid}", bob), 404)
m = t.attempt("image_members.create(bob)", lambda: ga.image_members.create(sid, "bob"))
t.check("member: pending, member_id bob, image_id", m is not None and m["status"] == "pending" and
        m["member_id"] == "bob" and m["image_id"] == sid, m)
g.expect_error("adding bob twice", g.req("POST", f"/v2/images/{sid}/members", alice,
                                         json_body={"member": "bob"}), 409)
ms = t.attempt("image_members.list (owner)", lambda: list(ga.image_members.list(sid)))
t.expect_eq("members list: bob", [x["member_id"] for x in ms or []], ["bob"])
r = g.req("GET", f"/v2/images/{sid}/members/bob", alice)
t.check("GET /members/bob -> 200 with status pending", r.status_code == 200 and r.json().get("status") == "pending",
        r.text[:200])
t.check("a pending member can GET the image", g.req("GET", f"/v2/images/{sid}", bob).status_code == 200)
t.check("... but it is not in his default list (member_status accepted)",
        sid not in [i["id"] for i in gb.images.list()])
t.check("... it is with member_status=pending",
        sid in [i["id"] for i in gb.images.list(filters={"member_status": "pending"})])
g.expect_error("the owner cannot accept for the member",
               g.req("PUT", f"/v2/images/{sid}/members/bob", alice, json_body={"status": "accepted"}), 403)
m = t.attempt("bob accepts (image_members.update)", lambda: gb.image_members.update(sid, "bob", "accepted"))
t.check("member status accepted", m is not None and m["status"] == "accepted", m)
t.check("accepted: in bob's default list", sid in [i["id"] for i in gb.images.list()])
body = b"".join(gb.images.data(sid))
t.check("accepted member downloads the data", body == b"shared bytes " * 1000)
client_error("a member cannot PATCH the image",
             lambda: gb.images.update(sid, name="bob was here"), 403)
g.expect_error("bob sets status 'maybe'",
               g.req("PUT", f"/v2/images/{sid}/members/bob", bob, json_body={"status": "maybe"}), 400)
t.attempt("bob rejects", lambda: gb.image_members.update(sid, "bob", "rejected"))
t.check("rejected: not in bob's default list", sid not in [i["id"] for i in gb.images.list()])
g.expect_error("carol (not a member) GETs it", g.req("GET", f"/v2/images/{sid}", carol), 404)
g.expect_error("carol lists its members", g.req("GET", f"/v2/images/{sid}/members", carol), 404)
t.attempt("image_members.delete(bob)", lambda: ga.image_members.delete(sid, "bob"))
g.expect_error("bob GETs it after removal", g.req("GET", f"/v2/images/{sid}", bob), 404)
g.expect_error("members of a missing member", g.req("GET", f"/v2/images/{sid}/members/bob", alice), 404)
ga.images.update(sid, visibility="private")
g.expect_error("adding a member to a private image", g.req("POST", f"/v2/images/{sid}/members", alice,
                                                         json_body={"member": "carol"}), 403)
client_error("a non-admin makes an image public", lambda: ga.images.update(sid, visibility="public"), 403)
t.attempt("the owner makes it community", lambda: ga.images.update(sid, visibility="community"))
t.check("community: carol GETs it", g.req("GET", f"/v2/images/{sid}", carol).status_code == 200)
t.check("community: not in carol's default list", sid not in [i["id"] for i in gcl.images.list()])
t.check("community: in carol's visibility=community list",
        sid in [i["id"] for i in gcl.images.list(filters={"visibility": "community"})])
client_error("carol cannot PATCH a community image", lambda: gcl.images.update(sid, name="c"), 403)
t.attempt("the admin token makes it public", lambda: gadm.images.update(sid, visibility="public"))
t.check("public: in carol's default list", sid in [i["id"] for i in gcl.images.list()])
t.check("public: carol downloads it", b"".join(gcl.images.data(sid)) == b"shared bytes " * 1000)
pub = t.attempt("the admin creates a public image owned by carol",
                lambda: gadm.images.create(name="pub", visibility="public", owner="carol",
                                           disk_format="raw", container_format="bare"))
t.check("admin-set owner kept", pub is not None and pub["owner"] == "carol", pub)
priv = ga.images.create(name="priv", visibility="private")
g.expect_error("private: bob GETs it", g.req("GET", f"/v2/images/{priv['id']}", bob), 404)
t.check("private: the admin GETs it", g.req("GET", f"/v2/images/{priv['id']}", ADM).status_code == 200)
t.check("private: the admin lists it", priv["id"] in [i["id"] for i in gadm.images.list()])

# ---- stage + import glance-direct ---------------------------------------------------------------------
st_data = os.urandom(2 * MIB + 7)
im = ga.images.create(name="staged", disk_format="raw", container_format="bare")
t.attempt("images.stage (PUT /stage, chunked)", lambda: ga.images.stage(im["id"], io.BytesIO(st_data)))
t.expect_eq("staged: status uploading", g.show(im["id"], alice)["status"], "uploading")
r = g.req("GET", f"/v2/images/{im['id']}/file", alice)
t.check("staged but not imported: GET file -> 204", r.status_code == 204, f"{r.status_code}")
t.attempt("images.image_import glance-direct", lambda: ga.images.image_import(im["id"], "glance-direct"))
done = g.wait_status(im["id"], "active", alice)
t.check("glance-direct: active with the staged bytes' checksum and os_hash_value",
        done and done["status"] == "active" and done["checksum"] == reglib.md5(st_data) and
        done["os_hash_value"] == reglib.sha512(st_data) and done["size"] == len(st_data), done)
t.check("glance-direct: download", b"".join(ga.images.data(im["id"])) == st_data)
im2 = ga.images.create(name="unstaged", disk_format="raw", container_format="bare")
client_error("glance-direct without staging", lambda: ga.images.image_import(im2["id"], "glance-direct"), 409)
g.expect_error("import with an unknown method", g.req("POST", f"/v2/images/{im2['id']}/import", alice,
                                                      json_body={"method": {"name": "teleport"}}), 400)
g.expect_error("import of an active image", g.req("POST", f"/v2/images/{im['id']}/import", alice,
                                                  json_body={"method": {"name": "glance-direct"}}), 409)


# ---- web-download --------------------------------------------------------------------------------------
class Quiet(http.server.SimpleHTTPRequestHandler):
    hits = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        Quiet.hits.append(self.path)
        return super().do_GET()


web_data = os.urandom(5 * MIB + 99)
with open(os.path.join(WEB, "web.img"), "wb") as f:
    f.write(web_data)
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=WEB))
threading.Thread(target=httpd.serve_forever, daemon=True).start()
wport = httpd.server_address[1]
wi = ga.images.create(name="web", disk_format="raw", container_format="bare")
t.attempt("web-download from the test's http.server (127.0.0.1 is allowed)",
          lambda: ga.images.image_import(wi["id"], "web-download", uri=f"http://127.0.0.1:{wport}/web.img"))
done = g.wait_status(wi["id"], "active", alice)
t.check("web-download: active, checksum and size of the served file",
        done and done["status"] == "active" and done["checksum"] == reglib.md5(web_data) and
        done["size"] == len(web_data), done)
t.check("web-download: the server fetched the file", "/web.img" in Quiet.hits, Quiet.hits)
t.check("web-download: the image reads back", b"".join(ga.images.data(wi["id"])) == web_data)
for desc, uri in (("a host not allowed (localhost is not 127.0.0.1)", f"http://localhost:{wport}/web.img"),
                  ("a host not allowed (127.0.0.2)", f"http://127.0.0.2:{wport}/web.img"),
                  ("a non-http scheme", "file:///etc/passwd")):
    wx = ga.images.create(name="web-refused", disk_format="raw", container_format="bare")
    hits = len(Quiet.hits)
    r = g.req("POST", f"/v2/images/{wx['id']}/import", alice,
              json_body={"method": {"name": "web-download", "uri": uri}})
    g.expect_error(f"web-download from {desc}", r, 400, "filter|allow|not permitted|refus")
    time.sleep(0.3)
    t.expect_eq(f"web-download from {desc}: image stays queued", (g.show(wx["id"], alice) or {}).get("status"),
                "queued")
    t.expect_eq(f"web-download from {desc}: nothing fetched", len(Quiet.hits), hits)
for desc, port in (("the node's admin port", srv.api_port), ("the node's S3 port", srv.s3_port),
                   ("the node's Glance port", g.port)):
    wx = ga.images.create(name="web-own", disk_format="raw", container_format="bare")
    r = g.req("POST", f"/v2/images/{wx['id']}/import", alice,
              json_body={"method": {"name": "web-download", "uri": f"http://127.0.0.1:{port}/admin/v1/pool/stats"}})
    g.import_refused(f"web-download from {desc}", r, wx["id"], alice, (400,))
httpd.shutdown()

# ---- s3-object import; the system bucket over S3 -------------------------------------------------------
akey, asec = g.user("alice")
bkey, bsec = g.user("bob")
obj = os.path.join(t.dir, "obj.img")
obj_data = os.urandom(4 * MIB + 5)
with open(obj, "wb") as f:
    f.write(obj_data)
rc, out, err = aws(akey, asec, "s3", "mb", "s3://alice-imgs")
t.check("awscli (alice): mb s3://alice-imgs", rc == 0, out + err)
rc, out, err = aws(akey, asec, "s3", "cp", obj, "s3://alice-imgs/disk.raw")
t.check("awscli (alice): cp disk.raw", rc == 0, out + err)
g.gc()
p0 = g.pool()
oi = ga.images.create(name="from-s3", disk_format="raw", container_format="bare")
r = g.req("POST", f"/v2/images/{oi['id']}/import", alice,
          json_body={"method": {"name": "s3-object", "uri": "s3://alice-imgs/disk.raw"}})
t.check("import s3-object -> 202", r.status_code == 202, f"{r.status_code} {r.text[:300]}")
done = g.wait_status(oi["id"], "active", alice)
t.check("s3-object: active with the object's checksum, hash and size",
        done and done["status"] == "active" and done["checksum"] == reglib.md5(obj_data) and
        done["os_hash_value"] == reglib.sha512(obj_data) and done["size"] == len(obj_data), done)
p1 = g.pool()
t.check("s3-object: no new chunks stored (unique bytes +< 64 KiB)",
        p1["unique_bytes"] - p0["unique_bytes"] < 64 * 1024, f"{p0['unique_bytes']} -> {p1['unique_bytes']}")
# (the image holds the object's own manifest: by cs_manifest_usage's rule
# its chunks count as the image's unique bytes, not shared)
t.check("s3-object: unique + shared bytes cover the image",
        done and done.get("cairn_unique_bytes", -1) + done.get("cairn_shared_bytes", -1) >= len(obj_data) - 64 * 1024,
        f"unique {done and done.get('cairn_unique_bytes')} shared {done and done.get('cairn_shared_bytes')}")
t.check("s3-object: download", b"".join(ga.images.data(oi["id"])) == obj_data)
bi = gb.images.create(name="bob-steals", disk_format="raw", container_format="bare")
r = g.req("POST", f"/v2/images/{bi['id']}/import", bob,
          json_body={"method": {"name": "s3-object", "uri": "s3://alice-imgs/disk.raw"}})
g.import_refused("s3-object from another user's bucket", r, bi["id"], bob, (403,))
wi_id = wi["id"]
outf = os.path.join(t.dir, "sys.out")
rc, out, err = aws(akey, asec, "s3api", "get-object", "--bucket", "cairn-images", "--key", wi_id, outf)
t.check("system bucket: the owner (alice's keys) GETs her image over S3", rc == 0 and
        open(outf, "rb").read() == web_data if rc == 0 else False, out + err)
rc, out, err = aws(akey, asec, "s3api", "head-object", "--bucket", "cairn-images", "--key", wi_id)
t.check("system bucket: HEAD by the owner: ContentLength", rc == 0 and json.loads(out).get("ContentLength") ==
        len(web_data), out + err)
rc, out, err = aws(bkey, bsec, "s3api", "get-object", "--bucket", "cairn-images", "--key", wi_id, outf + ".bob")
t.check("system bucket: bob's keys are refused (AccessDenied)", rc != 0 and "AccessDenied" in err, out + err)
rc, out, err = aws(akey, asec, "s3", "cp", obj, f"s3://cairn-images/{wi_id}")
t.check("system bucket: even the owner cannot write", rc != 0 and "AccessDenied" in err, out + err)
rc, out, err = aws(lib.ROOT_KEY, lib.ROOT_SECRET, "s3api", "list-objects-v2", "--bucket", "cairn-images")
keys = [o["Key"] for o in json.loads(out).get("Contents", [])] if rc == 0 else []
t.check("system bucket: root lists it, every active image is there",
        rc == 0 and {wi_id, oi["id"], iid} <= set(keys), out[:300] + err)
t.check("system bucket: a queued image is not there", rc == 0 and L["lst-c"]["id"] not in keys)
rc, out, err = aws(akey, asec, "s3api", "list-objects-v2", "--bucket", "cairn-images")
t.check("system bucket: alice may not list it", rc != 0 and "AccessDenied" in err, out + err)

# ---- unique / shared bytes -------------------------------------------------------------------------------
base = os.urandom(4 * MIB)
u1 = ga.images.create(name="u1", disk_format="raw", container_format="bare")
ga.images.upload(u1["id"], io.BytesIO(base))
u2 = ga.images.create(name="u2", disk_format="raw", container_format="bare")
ga.images.upload(u2["id"], io.BytesIO(base + os.urandom(1 * MIB)))
j1, j2 = g.show(u1["id"], alice), g.show(u2["id"], alice)
t.check("u2 (u1 + 1 MiB): shared >= 3.5 MiB, unique 0.9..1.5 MiB",
        j2.get("cairn_shared_bytes", -1) >= 3.5 * MIB and 0.9 * MIB <= j2.get("cairn_unique_bytes", -1) <= 1.5 * MIB,
        f"unique {j2.get('cairn_unique_bytes')} shared {j2.get('cairn_shared_bytes')}")
t.check("u1 (now a prefix of u2): shared >= 3.5 MiB, unique < 0.5 MiB",
        j1.get("cairn_shared_bytes", -1) >= 3.5 * MIB and j1.get("cairn_unique_bytes", -1) < 0.5 * MIB,
        f"unique {j1.get('cairn_unique_bytes')} shared {j1.get('cairn_shared_bytes')}")
ga.images.delete(u2["id"])
j1 = g.show(u1["id"], alice)
t.check("u2 deleted: u1's bytes are unique again",
        j1.get("cairn_unique_bytes", -1) >= 3.5 * MIB and j1.get("cairn_shared_bytes", -1) < 0.5 * MIB,
        f"unique {j1.get('cairn_unique_bytes')} shared {j1.get('cairn_shared_bytes')}")

# ---- the server kept serving; delete the rest -------------------------------------------------------------
n = 0
for im in list(gadm.images.list()):
    if im.get("protected"):
        gadm.images.update(im["id"], protected=False)
    gadm.images.delete(im["id"])
    n += 1
t.check(f"the admin deleted all {n} images", n >= 15 and list(gadm.images.list()) == [])
t.finish()
