#!/usr/bin/python3
# LABELS: registry
# TIMEOUT: 300
"""243-glance-bad-input: what a broken or hostile client sends the Glance API
(issue 7), each answered with Glance's status and a JSON error body
{"message", "code", "title"}, the server serving on, and no space leaked.

Malformed JSON (create, members, import), bodies of the wrong shape, bad
Range headers (416; several ranges 400), wrong
content types (PATCH without the json-patch type: 415 with Accept-Patch;
data as application/json: 415), malformed patches (not a list, no op,
unknown op, bad path, missing value, values the schema refuses), unknown
ids (every route) and markers, bad list parameters, uploads cut short over
a raw socket (Content-Length and chunked: the image goes back to queued,
never active, and a later upload works), uploads over max_image_size (8M
here: 413, streamed or declared), a qcow2 whose header lies (virtual size
its L1 table cannot map; an L1 table past the end), a qcow2 naming a backing
file, a qcow2 with an external data file (qemu-img create -o data_file=),
qcow2 bytes declared raw and raw bytes declared qcow2: 400 and queued.
Space: pool stats (admin API) after `cairn gc` equal the baseline once the
good images are deleted, and equal before/after the failed uploads."""
import io
import os
import struct
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import reglib  # noqa: E402

MIB = 1 << 20
t = lib.Test()
t.catch_exceptions()
lib.requires("qemu-img", "qemu-io")
srv = reglib.server(t, config={"max_image_size": "8M"})
g = reglib.Glance(t, srv)
alice = g.token("alice")
bob = g.token("bob")
PATCH_T = "application/openstack-images-v2.1-json-patch"
F = os.path.join(t.dir, "files")
os.makedirs(F)


def new_image(name="img", fmt="raw", tok=None):
    r = g.req("POST", "/v2/images", tok or alice, json_body={"name": name, "disk_format": fmt,
                                                              "container_format": "bare"})
    if r.status_code != 201:
        raise RuntimeError(f"create {name}: {r.status_code} {r.text[:200]}")
    return r.json()["id"]


def status(iid):
    return (g.show(iid, alice) or {}).get("status")


def pool_key(p):
    return {k: p.get(k) for k in ("logical_bytes", "unique_bytes", "chunks", "manifests")}


def alive(desc):
    r = g.req("GET", "/v2/images?limit=1", alice)
    t.check(f"the server still serves after {desc}", r.status_code == 200, f"{r.status_code}")


g.gc()
base = pool_key(g.pool())
t.log(f"baseline pool: {base}")

# ---- malformed JSON and wrong shapes ---------------------------------------------------
for desc, body in (("malformed JSON", b"{not json"), ("a JSON array", b"[]"), ("a JSON string", b'"img"'),
                   ("an empty body", b""), ("truncated JSON", b'{"name": "x", "disk_format": "ra')):
    r = g.req("POST", "/v2/images", alice, data=body, headers={"Content-Type": "application/json"})
    g.expect_error(f"create with {desc}", r, 400)
g.expect_error("create with name of 256 characters",
               g.req("POST", "/v2/images", alice, json_body={"name": "n" * 256}), 400)
g.expect_error("create with min_ram -1", g.req("POST", "/v2/images", alice, json_body={"min_ram": -1}), 400)
g.expect_error("create with min_disk 'big'", g.req("POST", "/v2/images", alice, json_body={"min_disk": "big"}), 400)
g.expect_error("create with protected 'yes'", g.req("POST", "/v2/images", alice,
                                                    json_body={"protected": "yes"}), 400)
g.expect_error("create with tags not a list", g.req("POST", "/v2/images", alice, json_body={"tags": "a,b"}), 400)
g.expect_error("create with a non-string tag", g.req("POST", "/v2/images", alice, json_body={"tags": [5]}), 400)
g.expect_error("create with id not a UUID", g.req("POST", "/v2/images", alice, json_body={"id": "abc"}), 400)
g.expect_error("create with an os_glance_ reserved property",
               g.req("POST", "/v2/images", alice, json_body={"os_glance_import_task": "x"}), 403)
g.expect_error("create with a 256-character property name",
               g.req("POST", "/v2/images", alice, json_body={"p" * 256: "x"}), 400)
iid = new_image("target")
r = g.req("POST", f"/v2/images/{iid}/members", alice, data=b"{member:", headers={"Content-Type": "application/json"})
g.expect_error("members POST with malformed JSON", r, 400)
g.req("PATCH", f"/v2/images/{iid}", alice, data=b'[{"op":"replace","path":"/visibility","value":"shared"}]',
      headers={"Content-Type": PATCH_T})
g.expect_error("members POST without 'member'", g.req("POST", f"/v2/images/{iid}/members", alice,
                                                      json_body={"who": "bob"}), 400)
r = g.req("POST", f"/v2/images/{iid}/import", alice, data=b"{{", headers={"Content-Type": "application/json"})
g.expect_error("import with malformed JSON", r, 400)
g.expect_error("import without a method", g.req("POST", f"/v2/images/{iid}/import", alice, json_body={}), 400)
g.expect_error("import: method without a name", g.req("POST", f"/v2/images/{iid}/import", alice,
                                                      json_body={"method": {}}), 400)
g.expect_error("import: s3-object with a malformed uri", g.req(
    "POST", f"/v2/images/{iid}/import", alice, json_body={"method": {"name": "s3-object", "uri": "http://x/y"}}), 400)
g.import_refused("import: s3-object of a missing bucket", g.req(
    "POST", f"/v2/images/{iid}/import", alice, json_body={"method": {"name": "s3-object",
                                                                      "uri": "s3://no-such-bucket/k"}}),
    iid, alice, (400, 404))
g.expect_error("import: web-download not enabled in this config", g.req(
    "POST", f"/v2/images/{iid}/import", alice, json_body={"method": {"name": "web-download",
                                                                      "uri": "http://127.0.0.1:1/x"}}), 400)
t.expect_eq("after all that, the image is still queued", status(iid), "queued")

# ---- content types --------------------------------------------------------------------------
r = g.patch(iid, alice, [{"op": "replace", "path": "/name", "value": "x"}], ctype="application/json")
g.expect_error("PATCH as application/json", r, 415)
t.check("415 names the patch types in Accept-Patch",
        "application/openstack-images-v2.1-json-patch" in r.headers.get("Accept-Patch", ""), dict(r.headers))
g.expect_error("PATCH without a Content-Type", g.req("PATCH", f"/v2/images/{iid}", alice,
                                                     data=b'[{"op":"remove","path":"/x"}]'), 415)
r = g.req("PUT", f"/v2/images/{iid}/file", alice, data=b"abc", headers={"Content-Type": "application/json"})
g.expect_error("PUT file as application/json", r, 415)
r = g.req("PUT", f"/v2/images/{iid}/stage", alice, data=b"abc", headers={"Content-Type": "text/plain"})
g.expect_error("PUT stage as text/plain", r, 415)
t.expect_eq("the image is still queued", status(iid), "queued")

# ---- malformed patches -------------------------------------------------------------------------
bad_patches = [
    ("not JSON", b"[{op"),
    ("an object, not a list", b'{"op": "replace", "path": "/name", "value": "x"}'),
    ("a list of strings", b'["replace"]'),
    ("no op", b'[{"path": "/name", "value": "x"}]'),
    ("op 'move'", b'[{"op": "move", "from": "/name", "path": "/x"}]'),
    ("op 'test'", b'[{"op": "test", "path": "/name", "value": "x"}]'),
    ("no path", b'[{"op": "replace", "value": "x"}]'),
    ("path without a slash", b'[{"op": "replace", "path": "name", "value": "x"}]'),
    ("replace without a value", b'[{"op": "replace", "path": "/name"}]'),
    ("name of 256 characters", b'[{"op": "replace", "path": "/name", "value": "' + b"n" * 256 + b'"}]'),
    ("min_ram 'lots'", b'[{"op": "replace", "path": "/min_ram", "value": "lots"}]'),
    ("disk_format 'floppy'", b'[{"op": "replace", "path": "/disk_format", "value": "floppy"}]'),
    ("visibility 'everyone'", b'[{"op": "replace", "path": "/visibility", "value": "everyone"}]'),
    ("tags not a list", b'[{"op": "replace", "path": "/tags", "value": "a"}]'),
    ("an extra property set to a number", b'[{"op": "add", "path": "/prop", "value": 5}]'),
    ("a path too deep", b'[{"op": "replace", "path": "/name/first", "value": "x"}]'),
]
for desc, body in bad_patches:
    g.expect_error(f"PATCH: {desc}", g.patch(iid, alice, body), 400)
g.expect_error("PATCH: replace of a property the image lacks",
               g.patch(iid, alice, [{"op": "replace", "path": "/no_such", "value": "x"}]), 409)
g.expect_error("PATCH: remove of a property the image lacks",
               g.patch(iid, alice, [{"op": "remove", "path": "/no_such"}]), 409)
g.expect_error("PATCH: /id is read-only", g.patch(iid, alice, [{"op": "replace", "path": "/id",
                                                                 "value": str(uuid.uuid4())}]), 403)
g.expect_error("PATCH: /size is read-only", g.patch(iid, alice, [{"op": "replace", "path": "/size",
                                                                   "value": 5}]), 403)
g.expect_error("PATCH: /os_glance_x is reserved", g.patch(iid, alice, [{"op": "add", "path": "/os_glance_x",
                                                                         "value": "1"}]), 403)
t.expect_eq("the image keeps its name through the bad patches", (g.show(iid, alice) or {}).get("name"), "target")
alive("bad patches")

# ---- unknown ids and markers; bad list parameters -------------------------------------------------
nid = str(uuid.uuid4())
for method, path, body in (("GET", f"/v2/images/{nid}", None), ("GET", "/v2/images/not-a-uuid", None),
                           ("DELETE", f"/v2/images/{nid}", None), ("GET", f"/v2/images/{nid}/file", None),
                           ("GET", f"/v2/images/{nid}/members", None),
                           ("POST", f"/v2/images/{nid}/members", {"member": "bob"}),
                           ("PUT", f"/v2/images/{nid}/members/bob", {"status": "accepted"}),
                           ("DELETE", f"/v2/images/{nid}/members/bob", None),
                           ("PUT", f"/v2/images/{nid}/tags/t", None), ("DELETE", f"/v2/images/{nid}/tags/t", None),
                           ("POST", f"/v2/images/{nid}/actions/deactivate", None),
                           ("POST", f"/v2/images/{nid}/actions/reactivate", None),
                           ("POST", f"/v2/images/{nid}/import", {"method": {"name": "glance-direct"}})):
    g.expect_error(f"{method} {path.replace(nid, 'UNKNOWN')}", g.req(method, path, alice, json_body=body), 404)
g.expect_error("PATCH of an unknown id", g.patch(nid, alice, [{"op": "replace", "path": "/name", "value": "x"}]), 404)
r = g.req("PUT", f"/v2/images/{nid}/file", alice, data=b"abc", headers={"Content-Type": "application/octet-stream"})
g.expect_error("PUT file of an unknown id", r, 404)
g.expect_error("GET an unknown path", g.req("GET", "/v2/imagez", alice), 404)
g.expect_error("DELETE /v2/images (the collection)", g.req("DELETE", "/v2/images", alice), 405)
g.expect_error("POST /v2/images/ID", g.req("POST", f"/v2/images/{iid}", alice, json_body={}), 405)
for desc, q in (("an unknown marker", f"marker={nid}"), ("a marker that is not a UUID", "marker=zzz"),
                ("limit=abc", "limit=abc"), ("size_min=abc", "size_min=abc"), ("size_max=-", "size_max=-"),
                ("created_at=gt:notadate", "created_at=gt:notadate"),
                ("created_at with operator xx", "created_at=xx:2020-01-01T00:00:00Z"),
                ("member_status=bogus", "member_status=bogus"), ("os_hidden=maybe", "os_hidden=maybe"),
                ("protected=maybe", "protected=maybe"), ("changes-since", "changes-since=2020-01-01T00:00:00Z"),
                ("sort=name:up", "sort=name:up"), ("sort_key twice, sort_dir three times",
                                                   "sort_key=name&sort_key=id&sort_dir=asc&sort_dir=asc&sort_dir=asc")):
    g.expect_error(f"list with {desc}", g.req("GET", "/v2/images?" + q, alice), 400)
r = g.req("GET", f"/v2/images?marker={iid}", bob)
g.expect_error("a marker bob cannot see (Glance: 403, 'not visible')", r, 403)
alive("unknown ids and markers")

# ---- space before the upload failures --------------------------------------------------------------------
g.gc()
p_before = pool_key(g.pool())

# ---- uploads cut short ------------------------------------------------------------------------------
chunk = os.urandom(256 * 1024)
c1 = new_image("cut-cl")
reglib.raw_put(g.port, f"/v2/images/{c1}/file", alice, [chunk] * 4, content_length=4 * MIB, finish=False)
c2 = new_image("cut-chunked")
reglib.raw_put(g.port, f"/v2/images/{c2}/file", alice, [chunk] * 4, chunked=True, finish=False)
c3 = new_image("cut-stage")
reglib.raw_put(g.port, f"/v2/images/{c3}/stage", alice, [chunk] * 2, content_length=2 * MIB, finish=False)
c4 = new_image("cut-before-body")
reglib.raw_put(g.port, f"/v2/images/{c4}/file", alice, [], content_length=MIB, finish=False)
for c, desc in ((c1, "Content-Length 4 MiB, 1 MiB sent"), (c2, "chunked, no last chunk"),
                (c3, "stage: Content-Length 2 MiB, 512 KiB sent"), (c4, "headers only")):
    img = g.wait_status(c, "queued", alice, timeout=30)
    t.check(f"upload cut short ({desc}): the image is queued again, no size or checksum",
            img and img["status"] == "queued" and img.get("size") is None and img.get("checksum") is None, img)
    r = g.req("GET", f"/v2/images/{c}/file", alice)
    t.check(f"upload cut short ({desc}): no data (204)", r.status_code == 204, f"{r.status_code}")
alive("uploads cut short")
good = os.urandom(MIB + 3)
r = g.req("PUT", f"/v2/images/{c2}/file", alice, data=io.BytesIO(good),
          headers={"Content-Type": "application/octet-stream"})
t.check("a full upload to the image whose upload was cut short -> 204", r.status_code == 204,
        f"{r.status_code} {r.text[:200]}")
img = g.show(c2, alice)
t.check("... and it is active with the right checksum", img and img["status"] == "active" and
        img["checksum"] == reglib.md5(good), img)

# ---- bad Range headers (as Glance 25 answers them, checked against glance-api)
for rg, want in (("bytes=5-2", 416), ("bytes=abc", 416), ("items=0-1", 416), ("bytes=0-1,3-4", 400),
                 ("bytes=0--1", 416), ("bytes=+1-2", 416), ("bytes=1-2x", 416),
                 (f"bytes={len(good) + 10}-{len(good) + 20}", 416)):
    g.expect_error(f"GET file with Range: {rg}", g.req("GET", f"/v2/images/{c2}/file", alice,
                                                       headers={"Range": rg}), want)
r = g.req("GET", f"/v2/images/{c2}/file", alice, headers={"Range": "bytes=-3"})
t.check("Range bytes=-3 (a suffix) -> 206, the last 3 bytes", r.status_code == 206 and r.content == good[-3:],
        f"{r.status_code} {r.headers.get('Content-Range')}")
r = g.req("GET", f"/v2/images/{c2}/file", alice, headers={"Range": "bytes=-0"})
t.check("Range bytes=-0 -> 206 with every byte (webob reads it as 0-)",
        r.status_code == 206 and r.content == good, f"{r.status_code} {r.headers.get('Content-Range')}")
r = g.req("GET", f"/v2/images/{c2}/file", alice, headers={"Range": "bytes=2-"})
t.check("Range bytes=2- -> 206 from byte 2", r.status_code == 206 and r.content == good[2:],
        f"{r.status_code} {r.headers.get('Content-Range')}")

# ---- over max_image_size (8M) --------------------------------------------------------------------------
big = [os.urandom(MIB) for _ in range(9)]
o1 = new_image("too-big-chunked")
st = reglib.raw_put(g.port, f"/v2/images/{o1}/file", alice, big, chunked=True)
t.check("chunked upload of 9 MiB over max_image_size 8M -> 413", st and st[0] == 413, f"{st and st[:2]}")
o2 = new_image("too-big-declared")
st = reglib.raw_put(g.port, f"/v2/images/{o2}/file", alice, big, content_length=9 * MIB)
t.check("upload declaring 9 MiB -> 413", st and st[0] == 413, f"{st and st[:2]}")
if st:
    try:
        import json
        j = json.loads(st[2])
        t.check("413 body is a Glance error", j.get("code", "").startswith("413"), st[2][:200])
    except ValueError:
        t.fail("413 body is not JSON", st[2][:200])
o3 = new_image("too-big-stage")
st = reglib.raw_put(g.port, f"/v2/images/{o3}/stage", alice, big, chunked=True)
t.check("staging 9 MiB -> 413", st and st[0] == 413, f"{st and st[:2]}")
for o in (o1, o2, o3):
    img = g.wait_status(o, "queued", alice, timeout=30)
    t.check(f"image {o[:8]} over the limit stays queued", img and img["status"] == "queued" and
            img.get("size") is None, img)
r = g.req("PUT", f"/v2/images/{o1}/file", alice, data=b"".join(big[:8]),
          headers={"Content-Type": "application/octet-stream"})
t.check("exactly 8 MiB is within the limit -> 204", r.status_code == 204, f"{r.status_code} {r.text[:200]}")
alive("uploads over the limit")

# ---- hostile qcow2 ---------------------------------------------------------------------------------------
def qimg(*args):
    subprocess.run(["qemu-img"] + list(args), check=True, stdout=subprocess.DEVNULL)


good_q = os.path.join(F, "good.qcow2")
qimg("create", "-q", "-f", "qcow2", good_q, "8M")
subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 128k", good_q], check=True, stdout=subprocess.DEVNULL)
gq = open(good_q, "rb").read()


def patched(data, off, fmt, val):
    b = bytearray(data)
    struct.pack_into(fmt, b, off, val)
    return bytes(b)


base_raw = os.path.join(F, "base.raw")
with open(base_raw, "wb") as f:
    f.write(os.urandom(MIB))
backed = os.path.join(F, "backed.qcow2")
qimg("create", "-q", "-f", "qcow2", "-b", base_raw, "-F", "raw", backed)
ext = os.path.join(F, "ext.qcow2")
qimg("create", "-q", "-f", "qcow2", "-o", f"data_file={os.path.join(F, 'ext.data')}", ext, "8M")
hostile = [
    ("a qcow2 whose header lies (virtual size 1 TiB, L1 table of 1 entry)", "qcow2",
     patched(gq, 24, ">Q", 1 << 40), "L1|virtual|size"),
    ("a qcow2 whose L1 table lies past the end of the file", "qcow2",
     patched(gq, 40, ">Q", 1 << 30), "L1|past|end|offset"),
    ("a qcow2 naming a backing file", "qcow2", open(backed, "rb").read(), "backing"),
    ("a qcow2 with an external data file", "qcow2", open(ext, "rb").read(), "data file|data_file"),
    ("qcow2 bytes declared raw", "raw", gq, "qcow2|format"),
    ("random bytes declared qcow2", "qcow2", os.urandom(256 * 1024), "qcow2|format"),
]
for desc, fmt, data, why in hostile:
    h = new_image("hostile", fmt)
    r = g.req("PUT", f"/v2/images/{h}/file", alice, data=io.BytesIO(data),
              headers={"Content-Type": "application/octet-stream"})
    g.expect_error(f"upload of {desc}", r, 400, why)
    img = g.show(h, alice)
    t.check(f"{desc}: the image is queued (not active), no checksum",
            img and img["status"] == "queued" and img.get("checksum") is None, img)
    h2 = new_image("hostile-staged", fmt)
    r = g.req("PUT", f"/v2/images/{h2}/stage", alice, data=data, headers={"Content-Type": "application/octet-stream"})
    if r.status_code == 204:
        r = g.req("POST", f"/v2/images/{h2}/import", alice, json_body={"method": {"name": "glance-direct"}})
        g.import_refused(f"{desc} staged + glance-direct", r, h2, alice, (400,))
    else:
        g.expect_error(f"staging {desc}", r, 400, why)
alive("hostile qcow2 uploads")
gq_id = new_image("good-qcow2", "qcow2")
r = g.req("PUT", f"/v2/images/{gq_id}/file", alice, data=gq, headers={"Content-Type": "application/octet-stream"})
t.check("a good qcow2 still uploads -> 204, active, virtual_size 8M", r.status_code == 204 and
        (g.show(gq_id, alice) or {}).get("virtual_size") == 8 * MIB, f"{r.status_code} {r.text[:200]}")

# ---- space ---------------------------------------------------------------------------------------------------
for keep in (c2, o1, gq_id):
    t.check(f"delete good image {keep[:8]}", g.req("DELETE", f"/v2/images/{keep}", alice).status_code == 204)
g.gc()
p_after = pool_key(g.pool())
t.check("after gc, the pool holds what it held before the failed uploads (nothing leaked)",
        p_after == p_before, f"before {p_before}\n    | after  {p_after}")
n = 0
for im in g.req("GET", "/v2/images?limit=1000", alice).json()["images"]:
    n += g.req("DELETE", f"/v2/images/{im['id']}", alice).status_code == 204
g.gc()
p_end = pool_key(g.pool())
t.check(f"every image deleted ({n}); after gc the pool is back to the baseline", p_end == base,
        f"baseline {base}\n    | end      {p_end}")
t.finish()
