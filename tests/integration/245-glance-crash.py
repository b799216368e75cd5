#!/usr/bin/python3
# LABELS: registry
# TIMEOUT: 300
"""245-glance-crash: the registry across kill -9 (issue 7).

kill -9 while an upload streams (the image shown "saving", bytes still
flowing; once with Content-Length, once chunked, once while staging): after
the restart the image is queued (or, staged, not active) with no size and no
checksum, its download is 204, a new upload to it works, and after `cairn
gc` the pool's counters (admin API) equal what they were before the upload:
nothing leaked. kill -9 right after an acknowledged upload (204) and an
acknowledged PATCH: after the restart the image is active, its metadata is
what was acknowledged, its bytes read back intact (glanceclient verifies
os_hash_value; Content-MD5) and the system bucket holds it. At the end every
image is deleted and the pool is back to its baseline after gc."""
import io
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import reglib  # noqa: E402

MIB = 1 << 20
t = lib.Test()
t.catch_exceptions()
srv = reglib.server(t)
g = reglib.Glance(t, srv)
alice = g.token("alice")


def pool_key():
    p = g.pool()
    return {k: p.get(k) for k in ("logical_bytes", "unique_bytes", "chunks", "manifests")}


def new_image(name):
    r = g.req("POST", "/v2/images", alice, json_body={"name": name, "disk_format": "raw",
                                                       "container_format": "bare"})
    if r.status_code != 201:
        raise RuntimeError(f"create {name}: {r.status_code} {r.text[:200]}")
    return r.json()["id"]


def slow_upload(port, path, total, chunked, sent, stop):
    """Streams total random bytes in 256 KiB pieces, 20 ms apart, until the
    server dies (or stop is set)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = [f"PUT {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"X-Auth-Token: {alice}",
                "Content-Type: application/octet-stream"]
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent[0] < total and not stop.is_set():
            piece = os.urandom(256 * 1024)
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent[0] += len(piece)
            time.sleep(0.02)
        s.close()
    except OSError:
        pass


g.gc()
base = pool_key()
t.log(f"baseline pool: {base}")

# ---- kill -9 during uploads --------------------------------------------------------------------
for desc, what, chunked in (("PUT file, Content-Length", "file", False), ("PUT file, chunked", "file", True),
                            ("PUT stage, chunked", "stage", True)):
    g.gc()
    before = pool_key()
    iid = new_image(f"crash-{what}-{int(chunked)}")
    sent, stop = [0], threading.Event()
    th = threading.Thread(target=slow_upload, args=(g.port, f"/v2/images/{iid}/{what}", 64 * MIB, chunked, sent, stop),
                          daemon=True)
    th.start()
    want_st = "saving" if what == "file" else "uploading"
    seen = None
    deadline = time.time() + 60
    while time.time() < deadline:
        seen = (g.show(iid, alice) or {}).get("status")
        if seen == want_st and sent[0] >= 6 * MIB:
            break
        time.sleep(0.05)
    t.check(f"{desc}: the image is {want_st} with bytes flowing ({sent[0] >> 20} MiB sent) before the kill",
            seen == want_st and sent[0] >= 6 * MIB and th.is_alive(), f"status {seen}, sent {sent[0]}")
    srv.kill9()
    stop.set()
    th.join(30)
    t.log(f"{desc}: killed after {sent[0] >> 20} MiB")
    g.start()
    img = g.show(iid, alice)
    if what == "file":
        t.check(f"{desc}: after the restart the image is queued, no size, no checksum",
                img and img["status"] == "queued" and img.get("size") is None and img.get("checksum") is None, img)
    else:
        t.check(f"{desc}: after the restart the staged image is queued (not active), no size, no checksum",
                img and img["status"] == "queued" and img.get("size") is None and img.get("checksum") is None, img)
        if img and img["status"] != "queued":
            t.log(f"note: {desc}: status {img['status']} after the restart")
        r = g.req("POST", f"/v2/images/{iid}/import", alice, json_body={"method": {"name": "glance-direct"}})
        t.check(f"{desc}: glance-direct of the interrupted stage is refused (409: nothing staged)",
                r.status_code == 409, f"{r.status_code} {r.text[:200]}")
    r = g.req("GET", f"/v2/images/{iid}/file", alice)
    t.check(f"{desc}: no data after the restart (204)", r.status_code == 204, f"{r.status_code}")
    g.gc()
    after = pool_key()
    t.check(f"{desc}: after gc the pool holds what it held before the upload (nothing leaked)", after == before,
            f"before {before}\n    | after  {after}")
    data = os.urandom(MIB + 17)
    r = g.req("PUT", f"/v2/images/{iid}/file", alice, data=data, headers={"Content-Type": "application/octet-stream"})
    t.check(f"{desc}: a new upload to the image works -> 204, active, checksum",
            r.status_code == 204 and (g.show(iid, alice) or {}).get("checksum") == reglib.md5(data),
            f"{r.status_code} {r.text[:200]}")

# ---- kill -9 right after acknowledged writes ---------------------------------------------------------------
acked = {}
for n in range(3):
    iid = new_image(f"acked-{n}")
    data = os.urandom(3 * MIB + n * 4097)
    r = g.req("PUT", f"/v2/images/{iid}/file", alice, data=io.BytesIO(data),
              headers={"Content-Type": "application/octet-stream"})
    t.check(f"upload acked-{n} acknowledged (204)", r.status_code == 204, f"{r.status_code} {r.text[:200]}")
    acked[iid] = data
last = list(acked)[-1]
r = g.patch(last, alice, [{"op": "replace", "path": "/name", "value": "renamed"},
                          {"op": "add", "path": "/os_distro", "value": "debian"}])
t.check("PATCH acknowledged (200)", r.status_code == 200, f"{r.status_code} {r.text[:200]}")
r = g.req("PUT", f"/v2/images/{last}/tags/kept", alice)
t.check("tag PUT acknowledged (204)", r.status_code == 204, f"{r.status_code}")
srv.kill9()
g.start()
gc = g.client(alice)
for iid, data in acked.items():
    img = g.show(iid, alice)
    t.check(f"{iid[:8]}: active after the restart with its checksum and size",
            img and img["status"] == "active" and img["checksum"] == reglib.md5(data) and img["size"] == len(data), img)
    body = t.attempt(f"{iid[:8]}: glanceclient download (verifies os_hash_value)",
                     lambda: b"".join(gc.images.data(iid)))
    t.check(f"{iid[:8]}: the bytes are intact", body == data, f"{len(body or b'')} bytes")
    r = g.req("GET", f"/v2/images/{iid}/file", alice)
    t.check(f"{iid[:8]}: Content-MD5 after the restart", r.headers.get("Content-MD5") == reglib.md5(data))
    try:
        got = srv.client().get_object(Bucket="cairn-images", Key=iid)["Body"].read()
    except Exception as e:  # noqa: BLE001
        got = f"{type(e).__name__}: {e}"
    t.check(f"{iid[:8]}: the system bucket object is there (root over S3)", got == data,
            got if isinstance(got, str) else f"{len(got)} bytes")
img = g.show(last, alice) or {}
t.check("the acknowledged PATCH and tag survived", img.get("name") == "renamed" and img.get("os_distro") == "debian"
        and "kept" in img.get("tags", []), img)

# ---- nothing left behind -------------------------------------------------------------------------------------
for im in g.req("GET", "/v2/images?limit=100", alice).json().get("images", []):
    g.req("DELETE", f"/v2/images/{im['id']}", alice)
g.gc()
end = pool_key()
t.check("every image deleted: after gc the pool is back to its baseline", end == base,
        f"baseline {base}\n    | end      {end}")
rc, out = srv.cli("fsck", check=False)
t.check("cairn fsck is clean", rc == 0 and "result: clean" in out, out[-1500:])
t.finish()
