#!/usr/bin/python3
"""bench/glance_report.py - the client side and the tables of bench/glance.sh (issue 7: the
image registry beside Debian's Glance 25).

  glance_report.py --create URL TOKEN N PREFIX [CONNS]   N image records (metadata only) made
        with POST /v2/images over CONNS keep-alive connections (threads; default 2) -> one JSON
        line {"n", "errors", "secs", "per_s"}
  glance_report.py --walk URL TOKEN LIMIT   GET /v2/images?limit=LIMIT, then every page's
        "next" until there is none, on one keep-alive connection -> one JSON line {"pages",
        "images", "secs", "pages_per_s", "p50_ms", "p99_ms", "max_ms"} (per-page latencies)
  glance_report.py --get JSONFILE KEY[.KEY...]   prints one value of a JSON file
  glance_report.py RESULTS     RESULT lines ("TARGET TEST {json}") -> markdown tables

The same client (http.client of Debian's /usr/bin/python3, stdlib only) drives both servers, so
its own cost is the same on each side.
"""
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

IMAGES = ["debian12-base", "debian12-ssh", "debian12-web"]


def connect(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=120), u.path.rstrip("/")


def create(url, token, n, prefix, conns=2):
    errors = []
    lock = threading.Lock()

    def worker(k):
        c, base = connect(url)
        h = {"X-Auth-Token": token, "Content-Type": "application/json"}
        for i in range(k, n, conns):
            body = json.dumps({"name": "%s%05d" % (prefix, i), "disk_format": "raw",
                               "container_format": "bare"})
            try:
                c.request("POST", base + "/v2/images", body, h)
                r = c.getresponse()
                data = r.read()
                if r.status != 201:
                    with lock:
                        errors.append("HTTP %d %s" % (r.status, data[:120]))
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(repr(e))
                c.close()
                c, base = connect(url)

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    out = {"n": n, "errors": len(errors), "secs": round(secs, 2), "per_s": round(n / secs, 1)}
    if errors:
        out["first_error"] = errors[0]
    print(json.dumps(out, separators=(",", ":")))


def walk(url, token, limit):
    c, base = connect(url)
    h = {"X-Auth-Token": token, "Accept": "application/json"}
    path = "%s/v2/images?limit=%d" % (base, limit)
    pages = images = 0
    lat = []
    seen = set()
    t0 = time.monotonic()
    while path:
        t = time.monotonic()
        c.request("GET", path, headers=h)
        r = c.getresponse()
        data = r.read()
        lat.append((time.monotonic() - t) * 1000)
        if r.status != 200:
            print(json.dumps({"error": "HTTP %d on page %d: %s" % (r.status, pages + 1,
                                                                      data[:120])}))
            return
        j = json.loads(data)
        pages += 1
        images += len(j["images"])
        seen.update(i["id"] for i in j["images"])
        nxt = j.get("next")
        if not nxt:
            break
        # Glance answers a path ("/v2/images?limit=..&marker=.."); accept a full URL too
        if nxt.startswith("http"):
            u = urllib.parse.urlsplit(nxt)
            nxt = u.path + ("?" + u.query if u.query else "")
        path = nxt if nxt.startswith(base + "/") or not base else base + nxt
        if pages > 1000000:
            break
    secs = time.monotonic() - t0
    lat.sort()
    print(json.dumps({
        "pages": pages, "images": images, "distinct": len(seen), "secs": round(secs, 3),
        "pages_per_s": round(pages / secs, 1), "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
        "max_ms": round(lat[-1], 2)}, separators=(",", ":")))


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) != 3:
                continue
            res.setdefault(parts[0], {}).setdefault(parts[1], []).append(json.loads(parts[2]))
    return res


def one(res, t, test):
    v = res.get(t, {}).get(test)
    return v[-1] if v else None


def ok(r):
    return r is not None and "error" not in r


def mark(good):
    return " ✓ PASS" if good else " ✗ MISS"


def mib(b):
    return "%.1f MiB" % (b / 1048576) if b < 10 << 30 else "%.2f GiB" % (b / (1 << 30))


def upload_table(res, kind, title):
    tests = [(n, "upload-%s-%s" % (kind, n)) for n in IMAGES]
    if not any(one(res, t, test) for t in ("glance", "cairn") for _, test in tests):
        return
    print("### %s\n" % title)
    print("| image | size | Glance: wall s (MiB/s) | cairn: wall s (MiB/s) | cairn / Glance "
          "(MiB/s)%s | checksums equal |" % (" (goal ≥ 2)" if kind == "raw" else ""))
    print("| --- | --- | --- | --- | --- | --- |")
    gs = cs = gb = 0.0
    complete = True
    for name, test in tests:
        g, c = one(res, "glance", test), one(res, "cairn", test)
        cells = []
        for r in (g, c):
            if r is None:
                cells.append("-")
            elif "error" in r:
                cells.append("**%s**" % r["error"])
            else:
                cells.append("%.2f s (%.0f); CPU s: server %.1f, client %.1f" % (
                    r["secs"], r["mibs"], r.get("cpu_s", 0), r.get("client_cpu_s", 0)))
        size = next((r["bytes"] for r in (g, c) if ok(r)), 0)
        rat = "-"
        if ok(g) and ok(c):
            rat = "%.2f" % (c["mibs"] / g["mibs"])
            gs, cs, gb = gs + g["secs"], cs + c["secs"], gb + g["bytes"]
        else:
            complete = False
        same = "-"
        if ok(g) and ok(c):
            same = "yes" if g.get("checksum") == c.get("checksum") else \
                "**no** (%s / %s)" % (g.get("checksum"), c.get("checksum"))
        print("| %s | %s | %s | %s | %s | %s |" % (name, mib(size), cells[0], cells[1], rat,
                                                  same))
    if complete and gs and cs:
        x = (gb / cs) / (gb / gs)
        print("| **the set** | %s | %.2f s (%.0f) | %.2f s (%.0f) | %.2f%s | |" % (
            mib(gb), gs, gb / gs / 1048576, cs, gb / cs / 1048576, x,
            mark(x >= 2) if kind == "raw" else ""))
    print()


def phys_table(res):
    rows = [("phys-raw", "after the three raw images"),
            ("phys-all", "after the raw and the qcow2 images")]
    if not any(one(res, t, k) for t in ("glance", "cairn") for k, _ in rows):
        return
    print("### Physical bytes on disk\n")
    print("| when | Glance: file store + sqlite | cairn: pool physical + LMDB | "
          "cairn / Glance |")
    print("| --- | --- | --- | --- |")
    for k, what in rows:
        g, c = one(res, "glance", k), one(res, "cairn", k)
        if g is None and c is None:
            continue
        gc = "%s (%s + %s)" % (mib(g["total"]), mib(g["store"]), mib(g["meta"])) if ok(g) \
            else "-"
        cc = "%s (%s + %s)" % (mib(c["total"]), mib(c["store"]), mib(c["meta"])) if ok(c) \
            else "-"
        rat = "-"
        if ok(g) and ok(c) and g["total"]:
            x = c["total"] / g["total"]
            rat = "%.1f%%" % (100 * x)
            if k == "phys-raw":
                rat += " (goal ≤ 15%%)%s" % mark(x <= 0.15)
        print("| %s | %s | %s | %s |" % (what, gc, cc, rat))
    c = one(res, "cairn", "phys-raw")
    if ok(c) and "logical" in c:
        print("\ncairn pool after the raw set: logical %s, unique %s, stored %s, physical %s "
              "(stripe units, parity included), LMDB file %s (%s used)." % (
                  mib(c["logical"]), mib(c["unique"]), mib(c["stored"]), mib(c["store"]),
                  mib(c["meta"]), mib(c.get("meta_used", 0))))
    print()


def volume_table(res):
    cr = res.get("cairn", {})
    sizes = [k[4:] for k in ("vol-1g", "vol-big") if k in cr]
    cinder = [(t, k) for t in ("glance", "cairn") for k in res.get(t, {})
              if k.startswith("cinder-")]
    if not sizes and not cinder:
        return
    print("### Volume from image\n")
    if sizes:
        print("| image | n | server ms: median / max | curl total ms: median / max | "
              "CLI wall ms (one call) | goal < 50 ms |")
        print("| --- | --- | --- | --- | --- | --- |")
        meds = {}
        for s in sizes:
            v = cr["vol-" + s]
            good = [r for r in v if ok(r)]
            bad = len(v) - len(good)
            cli = one(res, "cairn", "cli-vol-" + s) or {}
            label = one(res, "cairn", "image-" + s) or {}
            what = "%s (%s)" % (s, mib(label["bytes"])) if "bytes" in label else s
            if not good:
                print("| %s | %d | **failed: %s** | | | ✗ MISS |" % (
                    what, len(v), v[-1].get("error", "?")))
                continue
            srv = [r["server_ms"] for r in good]
            tot = [r["total_ms"] for r in good]
            meds[s] = statistics.median(srv)
            print("| %s | %d%s | %.2f / %.2f | %.2f / %.2f | %s |%s |" % (
                what, len(good), " (+%d failed)" % bad if bad else "", meds[s], max(srv),
                statistics.median(tot), max(tot),
                "%.1f" % cli["total_ms"] if "total_ms" in cli else
                ("**%s**" % cli["error"] if "error" in cli else "-"),
                mark(max(tot) < 50 and not bad)))
        if "1g" in meds and "big" in meds:
            d = meds["big"] - meds["1g"]
            print("\nSize independence (median server ms, big − 1 GiB): %+.2f ms%s "
                  "(taken as: the big image's call is not slower by more than 5 ms or 20%%)."
                  % (d, mark(d <= max(5.0, 0.2 * meds["1g"]))))
        for s in sizes:
            chk = one(res, "cairn", "compare-" + s)
            if chk:
                print("\nThe volume from the %s image read back over NBD (`qemu-img compare` "
                      "with the raw file): %s." % (s, "identical (%.1f s)" % chk["secs"] if
                                                   ok(chk) else "**%s**" % chk["error"]))
        print()
    if cinder:
        print("Cinder-style, for comparison: `glance image-download` into a file, then "
              "`qemu-img convert -n -O raw` into a new cairn volume over NBD.\n")
        print("| from | image | download s | write s | total s | download + write vs "
              "cairn's volume from image |")
        print("| --- | --- | --- | --- | --- | --- |")
        for t, k in sorted(cinder):
            r = one(res, t, k)
            s = k[7:]
            if not ok(r):
                print("| %s | %s | **%s** | | | |" % (t, s, r.get("error") if r else "-"))
                continue
            v = [x["server_ms"] for x in cr.get("vol-" + s, []) if ok(x)]
            vs = "%.0fx" % (r["total_s"] * 1000 / statistics.median(v)) if v else "-"
            print("| %s | %s (%s) | %.1f | %s | %.1f | %s |" % (
                t, s, mib(r["bytes"]), r["download_s"],
                "%.1f" % r["write_s"] if "write_s" in r else "-", r["total_s"], vs))
        print()


def list_table(res):
    walks = {t: [r for r in res.get(t, {}).get("walk", [])] for t in ("glance", "cairn")}
    creates = {t: one(res, t, "create") for t in ("glance", "cairn")}
    if not any(walks.values()) and not any(creates.values()):
        return
    print("### Image list: every page, limit=100, following `next`\n")
    print("| | records made (POST /v2/images) | walks | pages / images per walk | pages/s: "
          "median (min-max) | page ms: p50 / p99 / max (median walk) |")
    print("| --- | --- | --- | --- | --- | --- |")
    med = {}
    for t in ("glance", "cairn"):
        c = creates[t]
        cc = "-" if c is None else ("**%s**" % c["error"] if "error" in c else
                                    "%d in %.1f s (%.0f/s)%s" % (
                                        c["n"], c["secs"], c["per_s"],
                                        ", %d errors" % c["errors"] if c["errors"] else ""))
        w = [r for r in walks[t] if ok(r)]
        if not w and not walks[t] and c is None:
            continue
        if not w:
            err = walks[t][-1]["error"] if walks[t] else "-"
            print("| %s | %s | 0 | **%s** | | |" % (t, cc, err))
            continue
        ps = sorted(r["pages_per_s"] for r in w)
        med[t] = statistics.median(ps)
        mw = sorted(w, key=lambda r: r["pages_per_s"])[len(w) // 2]
        print("| %s | %s | %d | %d / %d | %.1f (%.1f-%.1f) | %.1f / %.1f / %.1f |" % (
            t, cc, len(w), mw["pages"], mw["images"], med[t], ps[0], ps[-1], mw["p50_ms"],
            mw["p99_ms"], mw["max_ms"]))
    if "glance" in med and "cairn" in med:
        x = med["cairn"] / med["glance"]
        print("\ncairn / Glance, pages/s (medians): %.1fx (goal ≥ 10)%s" % (x, mark(x >= 10)))
    print()


def goals(res):
    """One line per goal: PASS / MISS / not measured."""
    out = []
    g = [one(res, "glance", "upload-raw-" + n) for n in IMAGES]
    c = [one(res, "cairn", "upload-raw-" + n) for n in IMAGES]
    if all(ok(r) for r in g + c):
        x = (sum(r["bytes"] for r in g) / sum(r["secs"] for r in c)) / \
            (sum(r["bytes"] for r in g) / sum(r["secs"] for r in g))
        same = all(a.get("checksum") == b.get("checksum") for a, b in zip(g, c))
        out.append("upload throughput ≥ 2x Glance: %.2fx%s%s" % (
            x, mark(x >= 2), "" if same else " (**the MD5 checksums differ**)"))
    else:
        out.append("upload throughput ≥ 2x Glance: not measured (a side is missing)")
    pg, pc = one(res, "glance", "phys-raw"), one(res, "cairn", "phys-raw")
    if ok(pg) and ok(pc):
        x = pc["total"] / pg["total"]
        out.append("physical bytes ≤ 15%% of Glance's: %.1f%%%s" % (100 * x, mark(x <= 0.15)))
    else:
        out.append("physical bytes ≤ 15% of Glance's: not measured")
    allv = {s: res.get("cairn", {}).get("vol-" + s, []) for s in ("1g", "big")}
    v = {s: [r for r in allv[s] if ok(r)] for s in allv}
    failed = sum(len(allv[s]) - len(v[s]) for s in allv)
    cmp_bad = [s for s in allv if one(res, "cairn", "compare-" + s) is not None and
               not ok(one(res, "cairn", "compare-" + s))]
    if v["1g"] and v["big"]:
        mx = max(r["total_ms"] for s in v for r in v[s])
        m1 = statistics.median(r["server_ms"] for r in v["1g"])
        mb = statistics.median(r["server_ms"] for r in v["big"])
        good = mx < 50 and mb - m1 <= max(5.0, 0.2 * m1) and not failed and not cmp_bad
        out.append("volume from image < 50 ms, size-independent: max %.1f ms, medians %.2f / "
                   "%.2f ms (1 GiB / big)%s%s%s" % (
                       mx, m1, mb, mark(good), ", %d calls failed" % failed if failed else "",
                       ", **read back differs: %s**" % " ".join(cmp_bad) if cmp_bad else ""))
    else:
        out.append("volume from image < 50 ms: not measured")
    wg = [r["pages_per_s"] for r in res.get("glance", {}).get("walk", []) if ok(r)]
    wc = [r["pages_per_s"] for r in res.get("cairn", {}).get("walk", []) if ok(r)]
    if wg and wc:
        x = statistics.median(wc) / statistics.median(wg)
        out.append("image list ≥ 10x Glance's pages/s: %.1fx%s" % (x, mark(x >= 10)))
    else:
        out.append("image list ≥ 10x Glance's pages/s: not measured")
    print("### Goals\n")
    for line in out:
        print("- " + line)
    print()


def tables(res):
    goals(res)
    upload_table(res, "raw", "Upload with the glance CLI (raw, the goal's set)")
    upload_table(res, "qcow2", "Upload with the glance CLI (qcow2, for information)")
    phys_table(res)
    volume_table(res)
    list_table(res)


def get(path, keys):
    with open(path) as f:
        v = json.load(f)
    for k in keys.split("."):
        v = v[int(k)] if isinstance(v, list) else v[k]
    print(v if not isinstance(v, (dict, list)) else json.dumps(v))


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "--create":
        create(a[1], a[2], int(a[3]), a[4], int(a[5]) if len(a) > 5 else 2)
    elif a[0] == "--walk":
        walk(a[1], a[2], int(a[3]))
    elif a[0] == "--get":
        get(a[1], a[2])
    else:
        tables(load(a[0]))


if __name__ == "__main__":
    main()
