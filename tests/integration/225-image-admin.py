#!/usr/bin/python3
# LABELS: registry
# TIMEOUT: 300
"""225-image-admin: the operator's side of the image registry (issue 7).

`cairn token create/list/delete` and `Authorization: Bearer` on the admin
API (a root token and the admin token pass, a user's token is 403, an
unknown or deleted one 401); `cairn image register s3://B/K` of an object
uploaded with awscli (owner = the bucket's owner, then read back over the
Glance API with curl and the owner's token: active, checksum = MD5 of the
bytes, the bytes themselves); `cairn image df` (text and JSON, --owner);
`cairn volume create V --from-image ID` (constant time clone of the image's
bytes: qemu-img compare over NBD against the original file; a larger SIZE;
the volume JSON names its base manifest); `cairn image create --from-volume`
after writing into the volume (checksum = MD5 of the volume's bytes, and it
shares chunks with the image it came from); and the refusals: unknown image
404 NoSuchImage, a queued image 409 ImageNotActive, bad uri 400, unknown
object 404 NoSuchObject, unknown owner 404 NoSuchUser, unknown volume 404
NoSuchVolume."""
import hashlib
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

KIB, MIB = 1 << 10, 1 << 20
ADMIN_TOKEN = "cairn-test-admin-token-0123456789abcdef"

t = lib.Test()
t.catch_exceptions()
lib.requires("/usr/bin/aws", "curl", "qemu-img", "qemu-io")
lib.requires_nbd_server()
r = subprocess.run([lib.cairn_bin(), "serve", "--help"], stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
if b"--registry-listen" not in r.stdout:
    print("SKIP: this cairn has no --registry-listen (no image registry)")
    sys.exit(77)
os.environ["CAIRN_ADMIN_TOKEN"] = ADMIN_TOKEN
srv = t.server(extra=["--registry-listen", "127.0.0.1:0"])
srv.start()
m = re.search(r"Glance (http://[^\s,]+)", srv.log_text())
if not t.check("the ready line names the Glance URL", m, srv.log_text()[-500:]):
    t.finish()
GLANCE = m.group(1).rstrip("/")
IMG_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def cli(*args, want=0, desc=None):
    rc, out, err = srv.cli3(*args)
    t.check(desc or f"cairn {' '.join(args)} exits {want}", rc == want,
            f"exit {rc}; stdout {out[-400:]!r} stderr {err[-400:]!r}")
    if want == 1:
        t.check(f"cairn {' '.join(args)}: the reason is on stderr", err.strip() != "", "stderr empty")
    return rc, out, err


def cli_json(*args, desc=None):
    rc, j, err = srv.cli_json(*args)
    t.check(desc or f"cairn {' '.join(args)} --json exits 0 with JSON", rc == 0 and j is not None,
            f"exit {rc}: {err[-400:]}")
    return j if isinstance(j, dict) else {}


def api(method, path, body=None, want=None, code=None, desc=None):
    st, j, raw = srv.api(method, path, body)
    d = desc or f"{method} {path}"
    if want is not None:
        t.check(f"{d} -> {want}", st == want, f"got {st} {raw[:300]!r}")
    if st >= 400 and code is not None:
        got = j.get("error", {}).get("code") if isinstance(j, dict) else None
        t.expect_eq(f"{d}: error code", got, code)
    return st, j


def curl(url, *args, headers=(), data=None, method=None):
    """(status, body bytes) of one curl request."""
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", url]
    for h in headers:
        cmd += ["-H", h]
    if method:
        cmd += ["-X", method]
    if data is not None:
        cmd += ["--data-binary", data]
    cmd += list(args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out = r.stdout
    body, _, code = out.rpartition(b"\n")
    return int(code or 0), body


def bearer(token, path="/admin/v1/volumes", method="GET"):
    st, _ = curl(srv.api_endpoint + path, headers=[f"Authorization: Bearer {token}"], method=method)
    return st


def aws(key, secret, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url", srv.endpoint] + list(args), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    return r.returncode, r.stdout.decode(errors="replace")


# ---- tokens ----------------------------------------------------------------------
users = cli_json("user", "list").get("users", [])
root = next((u["name"] for u in users if u.get("root")), None)
t.check("the root user is listed", root, str(users))
akey, asecret = srv.create_user_key("alice")
srv.cli("user", "create", "bob")

rc, out, err = cli("token", "create", "alice", "--ttl", "1h")
lines = out.splitlines()
alice_tok = lines[0] if lines else ""
t.check("token create: the token alone on line 1 (64 hex)", re.fullmatch(r"[0-9a-f]{64}", alice_tok),
        repr(out))
t.check("token create: line 2 names id, user and expiry",
        len(lines) > 1 and re.match(r"id [0-9a-f]{8} user alice expires \d{4}-\d\d-\d\dT", lines[1]),
        repr(out))
alice_id = lines[1].split()[1] if len(lines) > 1 else ""
j = cli_json("token", "create", root or "root", "--ttl", "0")
root_tok, root_id = j.get("token", ""), j.get("id", "")
t.check("token create --json: token, id, user, created; expires null for --ttl 0",
        re.fullmatch(r"[0-9a-f]{64}", root_tok) and re.fullmatch(r"[0-9a-f]{8}", root_id) and
        j.get("user") == root and isinstance(j.get("created"), int) and
        "expires" in j and j["expires"] is None, str(j))
j = cli_json("token", "create", "bob", "--ttl", "7d")
bob_tok, bob_id = j.get("token", ""), j.get("id", "")
t.check("token create --ttl 7d: expires 7 days after created",
        isinstance(j.get("expires"), int) and j["expires"] - j.get("created", 0) == 7 * 86400, str(j))
cli("token", "create", "nosuch", want=1, desc="token create for an unknown user exits 1")
cli("token", "create", "alice", "--ttl", "1y", want=2, desc="token create --ttl 1y exits 2 (usage)")
cli("token", "create", want=2, desc="token create without a user exits 2")
api("POST", "/admin/v1/tokens", {"user": "nosuch"}, want=404, code="NoSuchUser")
api("POST", "/admin/v1/tokens", {"user": "alice", "ttl": -5}, want=400, code="InvalidArgument")
api("POST", "/admin/v1/tokens", {"usr": "alice"}, want=400, code="InvalidArgument")
api("POST", "/admin/v1/tokens", b"{nope", want=400, code="InvalidArgument")

j = cli_json("token", "list")
toks = {x.get("id"): x for x in j.get("tokens", [])}
t.check("token list shows the three tokens with their users",
        toks.get(alice_id, {}).get("user") == "alice" and toks.get(root_id, {}).get("user") == root and
        toks.get(bob_id, {}).get("user") == "bob", str(j))
t.check("token list never shows a token", all("token" not in x for x in toks.values()), str(j))
j = cli_json("token", "list", "--user", "alice")
t.expect_eq("token list --user alice: alice's only", [x.get("id") for x in j.get("tokens", [])], [alice_id])
rc, out, err = cli("token", "list")
t.check("token list (text) names each id", alice_id in out and root_id in out and bob_id in out, out)

# ---- Bearer on the admin API ---------------------------------------------------
t.expect_eq("Bearer with the root user's token: 200", bearer(root_tok), 200)
t.expect_eq("Bearer with the admin token: 200", bearer(ADMIN_TOKEN), 200)
t.expect_eq("Bearer with alice's token: 403", bearer(alice_tok), 403)
t.expect_eq("Bearer with an unknown token: 401", bearer("0" * 64), 401)
t.expect_eq("Bearer with garbage: 401", bearer("not-a-token"), 401)
t.expect_eq("Bearer with the admin token plus a byte: 401", bearer(ADMIN_TOKEN + "x"), 401)
t.expect_eq("Bearer (root) lists tokens", bearer(root_tok, "/admin/v1/tokens"), 200)
cli("token", "delete", bob_id)
t.expect_eq("a deleted token is 401 on the admin API", bearer(bob_tok), 401)
st, _ = curl(GLANCE + "/v2/images", headers=[f"X-Auth-Token: {bob_tok}"])
t.expect_eq("a deleted token is 401 on the Glance API", st, 401)
cli("token", "delete", bob_id, want=1, desc="token delete of a deleted id exits 1")
api("DELETE", f"/admin/v1/tokens/{bob_id}", want=404, code="NoSuchToken")
j = cli_json("token", "list")
t.check("token list no longer shows the deleted token",
        bob_id not in [x.get("id") for x in j.get("tokens", [])], str(j))

# ---- image register --------------------------------------------------------------
disk = os.path.join(t.dir, "disk.raw")
blob = bytearray(os.urandom(2 * MIB)) + bytes(1 * MIB) + (b"cairn-image-pattern" * 65536)[:MIB] + \
    os.urandom(64 * KIB)
with open(disk, "wb") as f:
    f.write(blob)
size = len(blob)
md5 = hashlib.md5(blob).hexdigest()
rc, out = aws(akey, asecret, "s3", "mb", "s3://alice-imgs")
t.check("alice: aws s3 mb", rc == 0, out)
rc, out = aws(akey, asecret, "s3", "cp", disk, "s3://alice-imgs/base/disk.raw")
t.check("alice: aws s3 cp the disk image", rc == 0, out)

img = cli_json("image", "register", "s3://alice-imgs/base/disk.raw", "--name", "base",
               "--disk-format", "raw", "--container-format", "bare")
img_id = img.get("id", "")
t.check("register: a new image id", IMG_RE.match(img_id), str(img))
t.expect_eq("register: status active", img.get("status"), "active")
t.expect_eq("register: size", img.get("size"), size)
t.expect_eq("register: checksum = md5 of the bytes", img.get("checksum"), md5)
t.expect_eq("register: owner = the bucket's owner", img.get("owner"), "alice")
t.expect_eq("register: name", img.get("name"), "base")
t.check("register: formats", img.get("disk_format") == "raw" and img.get("container_format") == "bare",
        str(img))

st, body = curl(f"{GLANCE}/v2/images/{img_id}", headers=[f"X-Auth-Token: {alice_tok}"])
g = json.loads(body) if st == 200 else {}
t.expect_eq("Glance GET image with alice's token: 200", st, 200)
t.expect_eq("Glance: status active", g.get("status"), "active")
t.expect_eq("Glance: checksum = md5 of the bytes", g.get("checksum"), md5)
t.expect_eq("Glance: os_hash_value = sha512 of the bytes", g.get("os_hash_value"),
            hashlib.sha512(blob).hexdigest())
st, body = curl(f"{GLANCE}/v2/images/{img_id}/file", headers=[f"X-Auth-Token: {alice_tok}"])
t.check("Glance: the image's bytes are the object's", st == 200 and body == bytes(blob),
        f"status {st}, {len(body)} bytes, md5 {hashlib.md5(body).hexdigest()}")

# text mode, root's bucket, owner given
rc, out = aws(lib.ROOT_KEY, lib.ROOT_SECRET, "s3", "mb", "s3://root-imgs")
t.check("root: aws s3 mb", rc == 0, out)
small = os.path.join(t.dir, "small.raw")
with open(small, "wb") as f:
    f.write(blob[:1 * MIB])
rc, out = aws(lib.ROOT_KEY, lib.ROOT_SECRET, "s3", "cp", small, "s3://root-imgs/small.raw")
t.check("root: aws s3 cp", rc == 0, out)
rc, out, err = cli("image", "register", "s3://root-imgs/small.raw", "--owner", "bob",
                   "--disk-format", "raw", "--container-format", "bare")
mm = re.search(r"registered image ([0-9a-f-]{36})", out)
t.check("register (text): 'registered image ID'", mm, out)
small_id = mm.group(1) if mm else ""
t.check("register (text): owner bob, status active", re.search(r"owner:\s+bob", out) and
        re.search(r"status:\s+active", out), out)

# refusals
cli("image", "register", "s3://alice-imgs/no-such-key", want=1, desc="register of a missing key exits 1")
api("POST", "/admin/v1/images/register", {"uri": "s3://no-such-bucket/k"}, want=404, code="NoSuchObject")
api("POST", "/admin/v1/images/register", {"uri": "s3://alice-imgs/nope"}, want=404, code="NoSuchObject")
for bad in ("http://x/y", "s3://bucketonly", "s3:///key", "s3://b/", "alice-imgs/base/disk.raw"):
    api("POST", "/admin/v1/images/register", {"uri": bad}, want=400, code="InvalidArgument",
        desc=f"register uri {bad!r}")
cli("image", "register", "alice-imgs/base/disk.raw", want=2, desc="register of a non-s3:// uri exits 2")
api("POST", "/admin/v1/images/register", {"uri": "s3://alice-imgs/base/disk.raw", "owner": "nosuch"},
    want=404, code="NoSuchUser")
api("POST", "/admin/v1/images/register", {"name": "x"}, want=400, code="InvalidArgument",
    desc="register without uri")
api("POST", "/admin/v1/images/register", {"uri": "s3://alice-imgs/base/disk.raw", "size": 5}, want=400,
    code="InvalidArgument", desc="register with an unknown field")

# ---- image df --------------------------------------------------------------------
j = cli_json("image", "df")
imgs = {x.get("id"): x for x in j.get("images", [])}
t.check("df lists both images", img_id in imgs and small_id in imgs, str(j)[:500])
d = imgs.get(img_id, {})
t.check("df: base's size, owner and name", d.get("size") == size and d.get("owner") == "alice" and
        d.get("name") == "base", str(d))
t.check("df: base's bytes are accounted (unique + shared + zero >= its non-zero bytes)",
        all(isinstance(d.get(k), int) for k in ("unique_bytes", "unique_stored", "shared_bytes",
                                                "zero_bytes")) and
        d.get("unique_bytes", 0) + d.get("shared_bytes", 0) > 0, str(d))
p = j.get("pool", {})
t.check("df: pool figures", all(isinstance(p.get(k), int) for k in
                                ("logical_bytes", "unique_bytes", "stored_bytes", "physical_bytes")) and
        p.get("logical_bytes", 0) >= size, str(p))
j = cli_json("image", "df", "--owner", "alice")
t.expect_eq("df --owner alice: alice's image only", [x.get("id") for x in j.get("images", [])], [img_id])
rc, out, err = cli("image", "df")
t.check("df (text): a header and a line per image", re.search(r"ID\s+NAME\s+SIZE\s+UNIQUE\s+SHARED", out)
        and img_id in out and small_id in out, out)

# ---- volume from image -----------------------------------------------------------
j = cli_json("volume", "create", "fromimg", "--from-image", img_id)
vsize = (size + 64 * KIB - 1) // (64 * KIB) * (64 * KIB)
t.expect_eq("volume from image: size = the image's, in whole 64 KiB blocks", j.get("size"), vsize)
t.check("volume from image: the JSON names its base manifest",
        re.fullmatch(r"[0-9a-f]{32}", str(j.get("base", {}).get("manifest", ""))), str(j))
t.expect_eq("volume from image: nothing written yet", j.get("written_bytes"), 0)
rc, out, err = cli("volume", "show", "fromimg")
t.check("volume show (text) names the base manifest", re.search(r"base:\s+image manifest [0-9a-f]{32}", out),
        out)
att = srv.attach("fromimg")
r = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", disk, att["url"]],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
t.check("qemu-img compare over NBD: the volume reads as the image", r.returncode == 0,
        r.stdout.decode(errors="replace"))
r = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0xab 0 64k", att["url"]],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
t.check("qemu-io writes 64 KiB into the volume", r.returncode == 0, r.stdout.decode(errors="replace"))
cli("volume", "detach", "fromimg")
st, body = curl(f"{GLANCE}/v2/images/{img_id}/file", headers=[f"X-Auth-Token: {alice_tok}"])
t.check("the image is unchanged by the volume's write", st == 200 and body == bytes(blob),
        f"status {st}, md5 {hashlib.md5(body).hexdigest()}")

rc, out, err = cli("volume", "create", "bigger", "8M", "--from-image", img_id)
t.check("volume create NAME 8M --from-image (text)", "bigger" in out and img_id in out, out)
t.expect_eq("a larger SIZE is kept", cli_json("volume", "show", "bigger").get("size"), 8 * MIB)
cli("volume", "create", "toosmall", "1M", "--from-image", img_id, want=1,
    desc="volume from image smaller than the image exits 1")
api("POST", "/admin/v1/volumes", {"name": "toosmall", "image": img_id, "size": MIB}, want=400,
    code="InvalidArgument")
cli("volume", "create", "fromimg", "--from-image", img_id, want=1, desc="volume from image: name taken exits 1")
api("POST", "/admin/v1/volumes", {"name": "fromimg", "image": img_id}, want=409, code="VolumeExists")
cli("volume", "create", "nosuchimg", "--from-image", "00000000-0000-4000-8000-000000000000", want=1,
    desc="volume from an unknown image exits 1")
api("POST", "/admin/v1/volumes", {"name": "nosuchimg", "image": "00000000-0000-4000-8000-000000000000"},
    want=404, code="NoSuchImage")
api("POST", "/admin/v1/volumes", {"name": "x", "image": img_id, "from_snapshot": {"volume": "a",
                                                                                   "snapshot": "b"}},
    want=400, code="InvalidArgument", desc="image and from_snapshot together")
# A queued image (created over Glance, no data) makes no volume.
st, body = curl(f"{GLANCE}/v2/images", headers=[f"X-Auth-Token: {alice_tok}",
                                                "Content-Type: application/json"],
                data=json.dumps({"name": "empty", "disk_format": "raw", "container_format": "bare"}))
q = json.loads(body) if st == 201 else {}
t.check("Glance: a queued image", st == 201 and q.get("status") == "queued", f"{st} {body[:300]!r}")
if q.get("id"):
    api("POST", "/admin/v1/volumes", {"name": "fromqueued", "image": q["id"]}, want=409,
        code="ImageNotActive")
    cli("volume", "create", "fromqueued", "--from-image", q["id"], want=1,
        desc="volume from a queued image exits 1")
api("GET", "/admin/v1/volumes/fromqueued", want=404, code="NoSuchVolume",
    desc="no volume was left by the refusals")

# ---- image create --from-volume --------------------------------------------------
cap = cli_json("image", "create", "--from-volume", "fromimg", "--name", "captured", "--owner", "alice")
want_bytes = b"\xab" * (64 * KIB) + bytes(blob[64 * KIB:]) + bytes(vsize - size)
t.check("from volume: a new active image", IMG_RE.match(cap.get("id", "")) and cap.get("status") == "active",
        str(cap))
t.expect_eq("from volume: size = the volume's", cap.get("size"), vsize)
t.expect_eq("from volume: checksum = md5 of the volume's bytes (with the write)", cap.get("checksum"),
            hashlib.md5(want_bytes).hexdigest())
t.check("from volume: name and owner", cap.get("name") == "captured" and cap.get("owner") == "alice",
        str(cap))
st, body = curl(f"{GLANCE}/v2/images/{cap.get('id')}/file", headers=[f"X-Auth-Token: {alice_tok}"])
t.check("from volume: the image's bytes are the volume's", st == 200 and body == want_bytes,
        f"status {st}, {len(body)} bytes")
j = cli_json("image", "df", "--owner", "alice")
c = next((x for x in j.get("images", []) if x.get("id") == cap.get("id")), {})
t.check("df: the captured image shares chunks with the image it came from", c.get("shared_bytes", 0) > 0,
        str(c))
rc, out, err = cli("image", "create", "--from-volume", "fromimg")
t.check("image create --from-volume (text): 'created image ID'",
        re.search(r"created image [0-9a-f-]{36}", out), out)
cli("image", "create", "--from-volume", "nosuchvol", want=1, desc="image from an unknown volume exits 1")
api("POST", "/admin/v1/volumes/nosuchvol/upload-image", {}, want=404, code="NoSuchVolume")
api("POST", "/admin/v1/volumes/fromimg/upload-image", {"owner": "nosuch"}, want=404, code="NoSuchUser")
cli("image", "create", want=2, desc="image create without --from-volume exits 2")

t.finish()
