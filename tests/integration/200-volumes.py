#!/usr/bin/python3
# LABELS: quick nbd
# TIMEOUT: 120
"""200-volumes: the volume admin API and CLI, end to end (issue 6).

The CLI (`cairn volume|snapshot ...`, exit 0/1/2) and the signed REST API
(/admin/v1/volumes...) over one server, with NBD I/O through python3-libnbd
where data matters: create/list/show with size suffixes, garbage sizes
(usage, exit 2), unique names (409 VolumeExists), QoS at create and later,
resize (grows online while attached and connected; shrink refused without
--force and while attached), snapshots (create/list oldest first/duplicate/
delete), snapshot diff (the ranges written between two snapshots, zeroes
included, the same in CLI and REST), clones (parent shown, the parent's
bytes at the snapshot, copy-up of what the clone writes only), deleting a
snapshot a clone depends on (409 VolumeBusy, then --flatten keeps the clone's
bytes), delete refused while attached or with snapshots (409), rollback
(refused while attached; restores the snapshot's bytes), attach (token,
export, url), a second host's attach (409), detach with a connection open
(409), detach --force (the connection dies, the old token is refused), an
expired lease, written_bytes, and every error body is JSON with the
documented code."""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
BLK = 64 * KIB

t = lib.Test()
t.catch_exceptions()
try:
    import nbd
except ImportError:
    print("SKIP: requires python3-libnbd")
    sys.exit(77)
lib.requires_nbd_server()
srv = t.server()
srv.start()
V = "/admin/v1/volumes"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def api(method, path, body=None, want=None, code=None, desc=None):
    """Signed request; checks the status (want) and, for errors, that the body
    is {"error": {"code": code, "message": ...}}. Returns (status, json)."""
    st, j, raw = srv.api(method, path, body)
    d = desc or f"{method} {path}"
    if want is not None:
        t.check(f"{d} -> {want}", st == want, f"got {st} {raw[:300]!r}")
    if st >= 400:
        ok = (isinstance(j, dict) and isinstance(j.get("error"), dict) and
              isinstance(j["error"].get("code"), str) and isinstance(j["error"].get("message"), str))
        t.check(f"{d}: the error body is JSON {{error: {{code, message}}}}", ok, f"{raw[:300]!r}")
        if code is not None and ok:
            t.expect_eq(f"{d}: error code", j["error"]["code"], code)
    return st, j


def cli(*args, want=0, desc=None):
    rc, out, err = srv.cli3(*args)
    t.check(desc or f"cairn {' '.join(args)} exits {want}", rc == want,
            f"exit {rc}; stdout {out[-300:]!r} stderr {err[-300:]!r}")
    if want == 1:
        t.check(f"cairn {' '.join(args)}: the reason is on stderr", err.strip() != "", "stderr empty")
    return rc, out, err


def show(name):
    rc, j, err = srv.cli_json("volume", "show", name)
    return j if rc == 0 and isinstance(j, dict) else {}


def connect(url):
    h = nbd.NBD()
    h.connect_uri(url)
    return h


def close(h):
    try:
        h.shutdown()
    except nbd.Error:
        pass


def refused(url):
    """True when an NBD client cannot open url (or cannot read once open)."""
    try:
        h = connect(url)
    except nbd.Error:
        return True
    try:
        h.pread(512, 0)
        return False
    except nbd.Error:
        return True
    finally:
        close(h)


def pattern(tag, n):
    return (tag.encode() * (n // len(tag) + 1))[:n]


# ---- create / show / list / sizes --------------------------------------------
cli("volume", "create", "v1", "1G")
j = show("v1")
t.expect_eq("v1 size (1G)", j.get("size"), GIB)
t.expect_eq("v1 state", j.get("state"), "available")
t.check("v1 id is 32 hex", re.fullmatch(r"[0-9a-f]{32}", str(j.get("id", ""))), str(j))
t.expect_eq("v1 replicas default min(3, devices)", j.get("replicas"), 3)
t.expect_eq("v1 extent_size", j.get("extent_size"), 4 * MIB)
t.check("v1 created is an ISO-8601 UTC time", ISO.match(str(j.get("created", ""))), str(j.get("created")))
t.check("v1 fresh: no QoS, nothing written, no snapshots, no parent or attachment",
        j.get("iops_limit") == 0 and j.get("bps_limit") == 0 and j.get("written_bytes") == 0 and
        j.get("snapshots") == 0 and "parent" not in j and "attachment" not in j, str(j))
for name, size, want in (("s512m", "512M", 512 * MIB), ("s4096", "4096", 64 * KIB), ("s1t", "1T", 1 << 40),
                         ("s64k", "64K", 64 * KIB), ("s10g", "10G", 10 * GIB)):
    cli("volume", "create", name, size)
    t.expect_eq(f"size {size} (rounded up to whole 64 KiB blocks, as bs_admin documents)",
                show(name).get("size"), want)
for bad in ("abc", "10X", "-1", "G", "12.5.G", "", "99999999999T"):
    cli("volume", "create", "garbage", bad, want=2, desc=f"volume create with size {bad!r} exits 2 (usage)")
cli("volume", "create", want=2, desc="volume create without arguments exits 2")
cli("volume", "frobnicate", "v1", want=2, desc="unknown volume subcommand exits 2")
api("GET", V + "/garbage", want=404, code="NoSuchVolume", desc="no volume was made of a garbage size")
cli("volume", "create", "v1", "2G", want=1, desc="volume create of an existing name exits 1")
api("POST", V, {"name": "v1", "size": GIB}, want=409, code="VolumeExists")
st, j = api("POST", V, {"name": "rest1", "size": 256 * MIB, "iops_limit": 100, "bps_limit": 5 * MIB},
            want=201)
t.check("REST create answers the volume (size, QoS)", j and j.get("size") == 256 * MIB and
        j.get("iops_limit") == 100 and j.get("bps_limit") == 5 * MIB and j.get("name") == "rest1", str(j))
api("POST", V, {"name": "rest2", "size": "10G"}, want=400, code="InvalidArgument",
    desc="REST create with a string size")
api("POST", V, {"name": "rest2", "size": -4096}, want=400, code="InvalidArgument",
    desc="REST create with a negative size")
api("POST", V, {"size": GIB}, want=400, code="InvalidArgument", desc="REST create without a name")
api("POST", V, b"{not json", want=400, code="InvalidArgument", desc="REST create with bad JSON")
api("POST", V, {"name": "rest2", "size": GIB, "replicas": 0}, want=400, code="InvalidArgument",
    desc="REST create with 0 replicas")
api("GET", V + "/nosuch", want=404, code="NoSuchVolume")
api("DELETE", V + "/nosuch", want=404, code="NoSuchVolume")
api("PATCH", V + "/nosuch", {"size": GIB}, want=404, code="NoSuchVolume")
st, _, _ = srv.api("GET", V, sign=False)
t.check("unsigned GET /admin/v1/volumes is refused", st in (401, 403), f"got {st}")
st, j = api("GET", V, want=200)
names = [v.get("name") for v in (j or {}).get("volumes", [])]
t.check("REST list has every volume", {"v1", "s512m", "s4096", "s1t", "rest1"} <= set(names), str(names))
rc, j, _ = srv.cli_json("volume", "list")
t.check("CLI volume list --json lists them too", rc == 0 and isinstance(j, dict) and
        {"v1", "rest1"} <= {v.get("name") for v in j.get("volumes", [])}, str(j)[:300])
rc, out, _ = srv.cli3("volume", "list")
t.check("CLI volume list (text) names the volumes", rc == 0 and "v1" in out and "rest1" in out, out[:300])
cli("volume", "show", "nosuch", want=1)
# names are percent-encoded in paths
st, j = api("POST", V, {"name": "odd name.ü", "size": MIB}, want=201)
api("GET", V + "/" + lib.quote_key("odd name.ü"), want=200, desc="GET of a percent-encoded name")
api("DELETE", V + "/" + lib.quote_key("odd name.ü"), want=204, desc="DELETE of a percent-encoded name")

# ---- QoS ------------------------------------------------------------------------
cli("volume", "create", "q1", "1G", "--iops", "500", "--bps", "10M")
j = show("q1")
t.check("create --iops 500 --bps 10M", j.get("iops_limit") == 500 and j.get("bps_limit") == 10 * MIB, str(j))
cli("volume", "qos", "q1", "--iops", "0", "--bps", "1G")
j = show("q1")
t.check("qos --iops 0 --bps 1G", j.get("iops_limit") == 0 and j.get("bps_limit") == GIB, str(j))
st, j = api("PATCH", V + "/q1", {"iops_limit": 77}, want=200)
t.check("PATCH iops_limit keeps bps_limit", j and j.get("iops_limit") == 77 and j.get("bps_limit") == GIB, str(j))
cli("volume", "qos", "q1", "--iops", "lots", want=2, desc="qos --iops lots exits 2")
cli("volume", "qos", "nosuch", "--iops", "5", want=1)

# ---- attach / I/O / resize online -------------------------------------------------
att = srv.attach("v1", host="hv1")
tok = att.get("token", "")
t.check("attach: a 32-hex token", re.fullmatch(r"[0-9a-f]{32}", tok), str(att))
t.expect_eq("attach: export is NAME@TOKEN", att.get("export"), f"v1@{tok}")
t.expect_eq("attach: url", att.get("url"), f"nbd://127.0.0.1:{srv.nbd_port}/v1@{tok}")
t.check("attach: expires is an ISO time", ISO.match(str(att.get("expires", ""))), str(att))
j = show("v1")
t.check("v1 shows attached to hv1", j.get("state") == "attached" and
        j.get("attachment", {}).get("host") == "hv1", str(j))
rc, out, err = srv.cli3("volume", "attach", "v1", "--host", "hv2")
t.check("attach from a second host exits 1", rc == 1, f"{rc} {out} {err}")
api("POST", V + "/v1/attach", {"host": "hv2"}, want=409, code="VolumeBusy", desc="REST attach from a second host")
rc, out, err = srv.cli3("volume", "attach", "s512m", "--host", "hvtext")
t.check("volume attach (text) prints the export name and the nbd:// URL",
        rc == 0 and re.search(r"s512m@[0-9a-f]{32}", out) and f"nbd://127.0.0.1:{srv.nbd_port}/s512m@" in out,
        out)
cli("volume", "detach", "s512m")
cli("volume", "detach", "s512m", want=1, desc="detach of a detached volume exits 1")

old = att
att = srv.attach("v1", host="hv1")
t.check("attaching again from the same host gives a new token", att.get("token") not in (None, old["token"]),
        f"{old} {att}")
t.check("the replaced token is refused", refused(old["url"]))
h = connect(att["url"])
t.expect_eq("NBD size of v1", h.get_size(), GIB)
t.check("NBD advertises multi-conn, flush, trim, zero",
        h.can_multi_conn() and h.can_flush() and h.can_trim() and h.can_zero(), "")
A = pattern("A-s0-", BLK)
h.pwrite(A, 0)
h.pwrite(pattern("B-s0-", 2 * BLK), 10 * MIB)
h.flush()
t.expect_eq("read back what was written", h.pread(BLK, 0), A)
t.expect_eq("unwritten space reads zeroes", h.pread(BLK, 100 * MIB), bytes(BLK))
j = show("v1")
t.expect_eq("written_bytes counts the 3 written 64 KiB blocks", j.get("written_bytes"), 3 * BLK)
t.expect_eq("show: one connection open", j.get("attachment", {}).get("connections"), 1)

cli("volume", "resize", "v1", "512M", want=1, desc="shrink without --force exits 1")
st, _ = api("PATCH", V + "/v1", {"size": 512 * MIB}, desc="PATCH shrink without force")
t.check("PATCH shrink without force is refused (4xx)", 400 <= st < 500, f"got {st}")
st, _ = api("PATCH", V + "/v1", {"size": 512 * MIB, "force": True}, desc="PATCH shrink --force while attached")
t.check("shrink --force while attached is refused (4xx)", 400 <= st < 500, f"got {st}")
t.expect_eq("the refused shrinks left the size", show("v1").get("size"), GIB)
cli("volume", "resize", "v1", "2G", desc="grow while attached and connected exits 0")
t.expect_eq("size after the online grow", show("v1").get("size"), 2 * GIB)
t.expect_eq("the old connection still reads", h.pread(BLK, 0), A)
h2 = connect(att["url"])
t.expect_eq("a new connection sees the new size", h2.get_size(), 2 * GIB)
t.expect_eq("the grown tail reads zeroes", h2.pread(BLK, 2 * GIB - BLK), bytes(BLK))
cli("volume", "resize", "v1", "garbage", want=2, desc="resize to a garbage size exits 2")

# ---- snapshots and diff --------------------------------------------------------------
cli("snapshot", "create", "v1", "s1")
h.pwrite(pattern("C-s1-", BLK), 20 * MIB)
h.zero(BLK, 0)                       # whole block: recorded zero
h.pwrite(pattern("D-s1-", 4096), 30 * MIB + 4096)   # partial block
h.flush()
st, j = api("POST", V + "/v1/snapshots", {"name": "s2"}, want=201)
t.check("REST snapshot create answers the snapshot", j and j.get("name") == "s2" and j.get("size") == 2 * GIB
        and j.get("clones") == 0 and ISO.match(str(j.get("created", ""))), str(j))
api("POST", V + "/v1/snapshots", {"name": "s2"}, want=409, code="SnapshotExists")
cli("snapshot", "create", "v1", "s1", want=1, desc="snapshot create of an existing name exits 1")
cli("snapshot", "create", "nosuch", "s1", want=1)
h.pwrite(pattern("E-head", BLK), 40 * MIB)
h.flush()
st, j = api("GET", V + "/v1/snapshots", want=200)
t.expect_eq("snapshots listed oldest first", [s.get("name") for s in (j or {}).get("snapshots", [])], ["s1", "s2"])
rc, j, _ = srv.cli_json("snapshot", "list", "v1")
t.check("CLI snapshot list --json", rc == 0 and [s.get("name") for s in (j or {}).get("snapshots", [])] ==
        ["s1", "s2"], str(j))
t.expect_eq("volume shows 2 snapshots", show("v1").get("snapshots"), 2)


def ranges(j):
    return [(r["offset"], r["length"], bool(r["zero"])) for r in (j or {}).get("ranges", [])]


st, j = api("GET", V + "/v1/diff?from=s1&to=s2", want=200)
want = [(0, BLK, True), (20 * MIB, BLK, False), (30 * MIB, BLK, False)]
t.expect_eq("diff s1..s2: the zeroed block, the written block, the partial write's 64 KiB block",
            ranges(j), want)
t.expect_eq("diff s1..s2 changed_bytes", (j or {}).get("changed_bytes"), 3 * BLK)
t.check("diff names from and to", j and j.get("from") == "s1" and j.get("to") == "s2", str(j)[:200])
st, j = api("GET", V + "/v1/diff?to=s1", want=200)
t.expect_eq("diff (empty)..s1: what was written before s1",
            ranges(j), [(0, BLK, False), (10 * MIB, 2 * BLK, False)])
st, j = api("GET", V + "/v1/diff?from=s2", want=200)
t.expect_eq("diff s2..head", ranges(j), [(40 * MIB, BLK, False)])
rc, out, err = srv.cli3("snapshot", "diff", "v1", "--from", "s1", "--to", "s2")
lines = [ln.split() for ln in out.strip().splitlines() if ln.strip()]
t.expect_eq("CLI snapshot diff prints 'offset length data|zero' lines", lines,
            [[str(o), str(n), "zero" if z else "data"] for o, n, z in want])
api("GET", V + "/v1/diff?from=nosuch", want=404, code="NoSuchSnapshot")
api("GET", V + "/v1/diff?from=s2&to=s1", desc="diff backwards (s2..s1)")
h2.pwrite(pattern("grown", BLK), 2 * GIB - BLK)
t.expect_eq("the grown tail is writable", h2.pread(BLK, 2 * GIB - BLK), pattern("grown", BLK))
st, j = api("GET", V + "/v1/diff?from=s2", want=200)
t.expect_eq("diff s2..head after the tail write", ranges(j), [(40 * MIB, BLK, False), (2 * GIB - BLK, BLK, False)])
close(h2)

# ---- clones --------------------------------------------------------------------------
cli("volume", "clone", "c1", "--from-snapshot", "v1@s1")
j = show("c1")
t.expect_eq("clone parent", j.get("parent"), {"volume": "v1", "snapshot": "s1"})
t.expect_eq("clone size", j.get("size"), 2 * GIB)
t.expect_eq("clone has nothing written of its own", j.get("written_bytes"), 0)
st, j = api("GET", V + "/v1/snapshots")
t.expect_eq("s1 counts one clone", {s["name"]: s.get("clones") for s in (j or {}).get("snapshots", [])}.get("s1"), 1)
cli("volume", "clone", "c1", "--from-snapshot", "v1@s1", want=1, desc="clone onto an existing name exits 1")
cli("volume", "clone", "cx", "--from-snapshot", "v1@nosuch", want=1, desc="clone of a missing snapshot exits 1")
cli("volume", "clone", "cx", "--from-snapshot", "v1", want=2, desc="clone --from-snapshot without @SNAP exits 2")
api("POST", V, {"name": "cx", "from_snapshot": {"volume": "v1", "snapshot": "nosuch"}}, want=404,
    code="NoSuchSnapshot")
rc, out, err = srv.cli3("volume", "clone", "cx", "--from-image", "img")
t.check("clone --from-image of an unknown image: exit 1, NoSuchImage (issue 7 made it create --from-image)",
        rc == 1 and "NoSuchImage" in err, f"{rc} {out} {err}")
st, j = api("POST", V, {"name": "c2", "from_snapshot": {"volume": "v1", "snapshot": "s2"}, "iops_limit": 9},
            want=201)
t.check("REST clone with QoS", j and j.get("iops_limit") == 9 and
        j.get("parent") == {"volume": "v1", "snapshot": "s2"}, str(j))

ac = srv.attach("c1", host="hv1")
hc = connect(ac["url"])
t.expect_eq("clone reads the parent's bytes at s1 (block 0)", hc.pread(BLK, 0), A)
t.expect_eq("clone reads the parent's bytes at s1 (10 MiB)", hc.pread(2 * BLK, 10 * MIB), pattern("B-s0-", 2 * BLK))
t.expect_eq("clone does not see what the parent wrote after s1", hc.pread(BLK, 20 * MIB), bytes(BLK))
hc.pwrite(pattern("clone", 4096), 10 * MIB + 4096)
hc.flush()
t.expect_eq("clone write over the parent's block",
            hc.pread(BLK, 10 * MIB), pattern("B-s0-", 2 * BLK)[:4096] + pattern("clone", 4096) +
            pattern("B-s0-", 2 * BLK)[8192:BLK])
t.expect_eq("the clone's copy-up is one 64 KiB block", show("c1").get("written_bytes"), BLK)
t.expect_eq("the parent is unchanged by the clone's write", h.pread(BLK, 10 * MIB), pattern("B-s0-", BLK))

cli("snapshot", "delete", "v1", "s1", want=1, desc="deleting a snapshot a clone depends on exits 1")
api("DELETE", V + "/v1/snapshots/s1", want=409, code="VolumeBusy", desc="REST delete of s1 (a clone depends)")
api("DELETE", V + "/v1/snapshots/nosuch", want=404, code="NoSuchSnapshot")
cli("volume", "delete", "v1", "--force", want=1, desc="delete --force of a volume whose snapshot has clones exits 1")
cli("snapshot", "delete", "v1", "s1", "--flatten", desc="snapshot delete --flatten exits 0")
j = show("c1")
t.check("the flattened clone has no parent", "parent" not in j, str(j))
t.expect_eq("the flattened clone still reads the same (block 0)", hc.pread(BLK, 0), A)
t.expect_eq("the flattened clone still reads the same (its own write)", hc.pread(BLK, 10 * MIB),
            pattern("B-s0-", 2 * BLK)[:4096] + pattern("clone", 4096) + pattern("B-s0-", 2 * BLK)[8192:BLK])
t.expect_eq("the flattened clone still reads the same (10 MiB + 64 KiB)", hc.pread(BLK, 10 * MIB + BLK),
            pattern("B-s0-", 2 * BLK)[BLK:])
close(hc)
st, j = api("GET", V + "/v1/snapshots", want=200)
t.expect_eq("s1 is gone", [s.get("name") for s in (j or {}).get("snapshots", [])], ["s2"])

# ---- detach / delete / rollback ------------------------------------------------------
cli("volume", "delete", "v1", want=1, desc="delete while attached exits 1")
api("DELETE", V + "/v1?force=true", want=409, code="VolumeBusy", desc="REST delete --force while attached")
cli("volume", "rollback", "v1", "s2", want=1, desc="rollback while attached exits 1")
api("POST", V + "/v1/rollback", {"snapshot": "s2"}, want=409, code="VolumeBusy", desc="REST rollback while attached")
cli("volume", "detach", "v1", want=1, desc="detach with a connection open exits 1")
api("POST", V + "/v1/detach", {}, want=409, code="VolumeBusy", desc="REST detach with a connection open")
cli("volume", "detach", "v1", "--force", desc="detach --force exits 0")
try:
    h.pread(512, 0)
    dead = False
except nbd.Error:
    dead = True
t.check("the connection is dead after detach --force", dead)
close(h)
t.check("the old token is refused after detach", refused(att["url"]))
j = show("v1")
t.check("v1 is available again", j.get("state") == "available" and "attachment" not in j, str(j))
cli("volume", "rollback", "v1", "nosuch", want=1, desc="rollback to a missing snapshot exits 1")
api("POST", V + "/v1/rollback", {"snapshot": "nosuch"}, want=404, code="NoSuchSnapshot")
cli("volume", "rollback", "v1", "s2")
att = srv.attach("v1", host="hv2")
h = connect(att["url"])
t.expect_eq("after rollback to s2: the head's write is gone", h.pread(BLK, 40 * MIB), bytes(BLK))
t.expect_eq("after rollback to s2: s2's bytes", h.pread(BLK, 20 * MIB), pattern("C-s1-", BLK))
t.expect_eq("after rollback to s2: the block zeroed before s2", h.pread(BLK, 0), bytes(BLK))
close(h)
t.check("another volume's token is refused", refused(ac["url"].replace("/c1@", "/v1@")))
cli("volume", "detach", "v1")
api("DELETE", V + "/v1", want=409, code="VolumeBusy", desc="REST delete of v1 while clone c2 depends on s2")
cli("volume", "delete", "c2")
cli("volume", "delete", "v1", want=1, desc="delete of a volume with snapshots (no --force) exits 1")
api("DELETE", V + "/v1", want=409, code="VolumeNotEmpty")
cli("volume", "delete", "v1", "--force", desc="delete --force of a volume with snapshots exits 0")
api("GET", V + "/v1", want=404, code="NoSuchVolume", desc="v1 is gone")
cli("volume", "detach", "c1")
t.expect_eq("the flattened clone outlives its old parent", show("c1").get("state"), "available")

# ---- QoS vs. one big request; detach --force under I/O in flight -----------------------
cli("volume", "create", "qb", "64M", "--bps", "2M")
att = srv.attach("qb", host="hv1")
h = connect(att["url"])
res = {}


def big_write():
    try:
        h.pwrite(pattern("big", 8 * MIB), 0)
        res["ok"] = True
    except Exception as e:  # noqa: BLE001
        res["err"] = f"{type(e).__name__}: {e}"


th = threading.Thread(target=big_write, daemon=True)
th.start()
th.join(120)
t.check("one 8 MiB write under --bps 2M completes (a request larger than the bucket is not stuck)",
        res.get("ok") and not th.is_alive(), f"{res} alive={th.is_alive()}")
cli("volume", "qos", "qb", "--bps", "0")
t.expect_eq("and its bytes are there", h.pread(MIB, 7 * MIB), pattern("big", 8 * MIB)[7 * MIB:])
close(h)
cli("volume", "detach", "qb")

att = srv.attach("qb", host="hv1")
hs = [connect(att["url"]) for _ in range(3)]
stop = threading.Event()
errs = []


def hammer(hh, k):
    n = 0
    try:
        while not stop.is_set():
            hh.pwrite(pattern(f"h{k}", BLK), ((n * 3 + k) % 512) * BLK)
            hh.pread(BLK, ((n * 5 + k) % 512) * BLK)
            n += 1
    except nbd.Error as e:
        errs.append(str(e))


ths = [threading.Thread(target=hammer, args=(hh, k), daemon=True) for k, hh in enumerate(hs)]
for x in ths:
    x.start()
time.sleep(0.3)
cli("volume", "detach", "qb", "--force", desc="detach --force with 3 connections busy exits 0")
deadline = time.time() + 60
for x in ths:
    x.join(max(0.1, deadline - time.time()))
stop.set()      # (a connection that still works after 60 s is a failure below)
t.check("every busy connection fails after detach --force", len(errs) == 3 and not any(x.is_alive() for x in ths),
        f"{len(errs)} failed: {errs[:3]}")
for hh in hs:
    close(hh)
st, j = api("GET", V + "/qb", want=200, desc="the server answers after the forced detach")
t.check("qb is available and shows no attachment", j and j.get("state") == "available" and "attachment" not in j,
        str(j))
att = srv.attach("qb", host="hv2")
h = connect(att["url"])
t.check("another host attaches and reads", len(h.pread(BLK, 0)) == BLK)
close(h)
cli("volume", "detach", "qb")

# ---- leases --------------------------------------------------------------------------
st, j = api("POST", V + "/s4096/attach", {"host": "hv-lease", "lease_seconds": 1}, want=200)
url = (j or {}).get("url", "")
att = srv.attach("s512m", host="hv-long", lease=5)
h = connect(att["url"])
time.sleep(6)
t.check("an expired lease's token is refused", refused(url))
try:
    a2 = srv.attach("s4096", host="hv-other")
    t.check("another host may attach once the lease expired", a2.get("url", "").startswith("nbd://"), str(a2))
except RuntimeError as e:
    t.fail("another host may attach once the lease expired", str(e))
t.check("an open connection keeps its lease alive", h.pread(512, 0) == bytes(512))
close(h)

# every volume can go; the list is empty after
for v in [v.get("name") for v in (api("GET", V)[1] or {}).get("volumes", [])]:
    srv.cli3("volume", "detach", v, "--force")
    cli("volume", "delete", v, "--force")
st, j = api("GET", V, want=200)
t.expect_eq("no volumes left", (j or {}).get("volumes"), [])
t.finish()
