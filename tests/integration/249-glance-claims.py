#!/usr/bin/python3
# LABELS: registry
# TIMEOUT: 300
"""249-glance-claims: uploads and imports that outlive their image, a failed
import on a full doc, and the cap on running imports (issue 7 review).

1. Upload A streams into image X; X is deleted and re-created with the same
   id; upload B streams into the new X. A finishing must not activate X with
   A's bytes (409), B must still finish (204, active, B's checksum).
2. The same, but A's connection is cut: X must stay "saving" (B's claim), a
   third upload C must be refused (409) while B streams, B then succeeds.
3. An image whose doc is a byte short of the record's limit: a failed
   web-download import must still put it back to "queued" (the error text
   is shortened or left out), never leave it "importing".
4. At most 8 web-download/s3-object imports run at once: the 9th answers 503
   with a Glance error body while 8 are running, and once they ended a new
   import is accepted again.
"""
import http.server
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import reglib  # noqa: E402

IMPORTS_MAX = 8
t = lib.Test()
t.catch_exceptions()

# ---- a web source: /slow streams until told to stop, anything else is 404 ------------------
stop_slow = threading.Event()
slow_running = []


class Src(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/slow":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 30))
        self.end_headers()
        slow_running.append(1)
        try:
            while not stop_slow.is_set():
                self.wfile.write(b"x" * 4096)
                self.wfile.flush()
                stop_slow.wait(0.1)
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, *a):
        pass


httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Src)
httpd.daemon_threads = True
threading.Thread(target=httpd.serve_forever, daemon=True).start()
SRC = f"http://127.0.0.1:{httpd.server_address[1]}"

srv = reglib.server(t, config={"web_download_allow": "127.0.0.1"})
g = reglib.Glance(t, srv)
alice = g.token("alice")
port = int(g.url.rsplit(":", 1)[1])


def create(iid=None, name="img"):
    body = {"name": name, "disk_format": "raw", "container_format": "bare"}
    if iid:
        body["id"] = iid
    r = g.req("POST", "/v2/images", alice, json_body=body)
    if r.status_code != 201:
        raise RuntimeError(f"create {name}: {r.status_code} {r.text[:200]}")
    return r.json()["id"]


def status(iid):
    return (g.show(iid, alice) or {}).get("status")


class Upload:
    """A chunked PUT .../file over a raw socket, fed piece by piece."""

    def __init__(self, iid):
        import socket
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.s.sendall((f"PUT /v2/images/{iid}/file HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"X-Auth-Token: {alice}\r\nContent-Type: application/octet-stream\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n").encode())

    def send(self, b):
        self.s.sendall(b"%x\r\n%s\r\n" % (len(b), b))

    def finish(self):
        try:
            self.s.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        try:
            return lib.read_response(self.s, 60)[0]
        finally:
            self.s.close()

    def cut(self):
        self.s.close()


A = reglib.pattern_bytes(300000, "A")
B = reglib.pattern_bytes(300000, "B")

# ---- 1. a stale upload finishing --------------------------------------------------------------
iid = str(uuid.uuid4())
create(iid, "race1")
a = Upload(iid)
a.send(A[:100000])
t.check("1: upload A claimed the image (saving)", g.wait_status(iid, "saving", alice, 30), status(iid))
t.check("1: delete during upload A -> 204", g.req("DELETE", f"/v2/images/{iid}", alice).status_code == 204)
create(iid, "race1-again")
b = Upload(iid)
b.send(B[:100000])
t.check("1: upload B claimed the re-created image (saving)",
        (g.wait_status(iid, "saving", alice, 30) or {}).get("status") == "saving", status(iid))
a.send(A[100000:])
st = a.finish()
t.check("1: stale upload A finishing -> 409", st == 409, f"got {st}")
img = g.show(iid, alice)
t.check("1: the image is still B's (saving, no checksum)",
        img and img["status"] == "saving" and not img.get("checksum"), img)
b.send(B[100000:])
st = b.finish()
t.check("1: upload B finishing -> 204", st == 204, f"got {st}")
img = g.show(iid, alice)
t.check("1: the image is active with B's checksum",
        img and img["status"] == "active" and img.get("checksum") == reglib.md5(B), img)

# ---- 2. a stale upload cut short ----------------------------------------------------------------
iid = str(uuid.uuid4())
create(iid, "race2")
a = Upload(iid)
a.send(A[:100000])
g.wait_status(iid, "saving", alice, 30)
t.check("2: delete during upload A -> 204", g.req("DELETE", f"/v2/images/{iid}", alice).status_code == 204)
create(iid, "race2-again")
b = Upload(iid)
b.send(B[:100000])
g.wait_status(iid, "saving", alice, 30)
a.cut()
time.sleep(1.5)  # the server notices A went away and cleans up after it
t.check("2: after stale upload A was cut, the image stays saving (B's claim)",
        status(iid) == "saving", status(iid))
st = reglib.raw_put(port, f"/v2/images/{iid}/file", alice, [b"C" * 1000], chunked=True)
t.check("2: a third upload C while B streams -> 409", st and st[0] == 409, st and st[0])
b.send(B[100000:])
st = b.finish()
t.check("2: upload B finishing -> 204", st == 204, f"got {st}")
img = g.show(iid, alice)
t.check("2: the image is active with B's checksum",
        img and img["status"] == "active" and img.get("checksum") == reglib.md5(B), img)

# ---- 3. a failed import on a full doc ---------------------------------------------------------------
iid = create(name="full-doc")
PATCH_T = "application/openstack-images-v2.1-json-patch"


def pad(n):
    return g.req("PATCH", f"/v2/images/{iid}", alice, data=__import__("json").dumps(
        [{"op": "add", "path": "/pad", "value": "p" * n}]).encode(), headers={"Content-Type": PATCH_T})


lo, hi = 0, 70000  # largest pad the record takes: lo fits, hi does not
t.check("3: a pad of 70000 bytes does not fit the doc (413)", pad(hi).status_code == 413)
while hi - lo > 1:
    mid = (lo + hi) // 2
    if pad(mid).status_code == 200:
        lo = mid
    else:
        hi = mid
t.check(f"3: the doc filled to its limit (pad {lo})", pad(lo).status_code == 200)
r = g.req("POST", f"/v2/images/{iid}/import", alice,
          json_body={"method": {"name": "web-download", "uri": SRC + "/missing-" + "e" * 200}})
t.check("3: web-download of a missing file -> 202", r.status_code == 202, f"{r.status_code} {r.text[:200]}")
img = g.wait_done(iid, alice)
t.check("3: the failed import put the full-doc image back to queued (not stuck importing)",
        img and img["status"] == "queued", img and img["status"])
t.check("3: the image still holds its pad", img and len(img.get("pad", "")) == lo)

# ---- 4. the cap on running imports ------------------------------------------------------------------
ids = [create(name=f"imp{i}") for i in range(IMPORTS_MAX + 1)]
for i in ids[:IMPORTS_MAX]:
    r = g.req("POST", f"/v2/images/{i}/import", alice,
              json_body={"method": {"name": "web-download", "uri": SRC + "/slow"}})
    t.check(f"4: import {i[:8]} of a slow source -> 202", r.status_code == 202, f"{r.status_code}")
deadline = time.time() + 30
while len(slow_running) < IMPORTS_MAX and time.time() < deadline:
    time.sleep(0.1)
t.check(f"4: {IMPORTS_MAX} imports are fetching", len(slow_running) == IMPORTS_MAX, len(slow_running))
r = g.req("POST", f"/v2/images/{ids[-1]}/import", alice,
          json_body={"method": {"name": "web-download", "uri": SRC + "/slow"}})
if g.expect_error(f"4: import number {IMPORTS_MAX + 1} while {IMPORTS_MAX} run", r, 503, "import"):
    t.check("4: ... with Retry-After", r.headers.get("Retry-After") is not None, dict(r.headers))
t.check("4: the refused image stays queued", status(ids[-1]) == "queued", status(ids[-1]))
stop_slow.set()
for i in ids[:IMPORTS_MAX]:
    img = g.wait_done(i, alice)
    t.check(f"4: import {i[:8]} cut by its source ended queued", img and img["status"] == "queued",
            img and img["status"])
r = g.req("POST", f"/v2/images/{ids[-1]}/import", alice,
          json_body={"method": {"name": "web-download", "uri": SRC + "/missing"}})
t.check("4: once they ended, a new import is accepted (202)", r.status_code == 202,
        f"{r.status_code} {r.text[:200]}")
g.wait_done(ids[-1], alice)
httpd.shutdown()
t.finish()
