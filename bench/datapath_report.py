#!/usr/bin/python3
"""bench/datapath_report.py RESULTS_FILE - markdown tables of one bench/datapath.sh run.

Each line is `TAG RESULT {json}` (TAG: "kernels", "chunker", "offline", "fio read",
"fio write", "cairn <test>"). Prints the measurements and the issue's goals, each as a ratio to
the limit measured in the same run; a goal whose inputs are missing reads "n/a". Standard
library only.
"""
import json
import sys

MIB = 1048576


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            if " RESULT " not in line:
                continue
            tag, js = line.split(" RESULT ", 1)
            try:
                res.setdefault(tag.strip(), []).append(json.loads(js))
            except json.JSONDecodeError:
                pass
    return res


def one(res, tag):
    v = res.get(tag)
    return v[-1] if v else None


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, (str, bool)):
        return str(v)
    if isinstance(v, float):
        return f"{v:,.2f}{unit}" if abs(v) < 10 else f"{v:,.1f}{unit}"
    return f"{v:,}{unit}"


def goal(rows, name, value, limit, want, unit, higher=True):
    if value is None or limit is None or limit == 0:
        rows.append((name, fmt(value, unit), fmt(limit, unit), "n/a", "n/a"))
        return
    ratio = value / limit
    ok = ratio >= want if higher else ratio <= want
    rows.append((name, fmt(value, unit), fmt(limit, unit), f"{ratio:.2f}",
                 ("PASS" if ok else "MISS") + f" (goal {'>=' if higher else '<='} {want:g})"))


def table(head, rows):
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()


def ok_mib(r):
    """mib_s of a loadgen result, None when any request failed."""
    if not r or r.get("failed", 0) or r.get("errors", 0):
        return None
    return r.get("mib_s")


def main():
    res = load(sys.argv[1])
    k = one(res, "kernels") or {}
    if k:
        print("CPU kernels, one core (GiB/s):\n")
        table(["kernel", "GiB/s"],
              [(n[:-6], f"{v:.2f}") for n, v in k.items() if n.endswith("_gib_s")])
    ch = next((c for c in res.get("chunker", []) if c.get("avg") == 16384), {})
    put = one(res, "cairn put-big")
    get = one(res, "cairn get-big")
    deg = one(res, "cairn get-degraded")
    rep = one(res, "cairn repair")
    fr = one(res, "fio read")
    fw = one(res, "fio write")
    meta = one(res, "cairn meta")
    vm = one(res, "cairn vm")

    rows = []
    goal(rows, "Chunker, random data, GiB/s per core", ch.get("cdc_gib_s"), 3.0, 1.0, "")
    if ch.get("ref_gib_s"):
        rows.append(("  (plain FastCDC loop, same run)", fmt(ch.get("ref_gib_s")), "", "", ""))
    goal(rows, "1 GiB PUT MiB/s vs CPU limit", ok_mib(put), k.get("cpu_limit_unsigned_mib_s"),
         0.8, "")
    goal(rows, "1 GiB GET MiB/s vs fio O_DIRECT read", ok_mib(get), fr and fr.get("mib_s"), 0.8,
         "")
    goal(rows, "Degraded GET (2 folders lost) vs healthy GET", ok_mib(deg), ok_mib(get), 0.5, "")
    rep_mib = None
    if rep and rep.get("rc") == 0 and rep.get("secs"):
        rep_mib = rep["bytes"] / MIB / rep["secs"]
    goal(rows, "Repair MiB/s vs fio O_DIRECT write", rep_mib, fw and fw.get("mib_s"), 0.5, "")
    if meta and meta.get("ingested"):
        mb = max(0, meta["proc_write_bytes"] - meta["device_write_bytes"])
        goal(rows, "Metadata bytes written, % of bytes ingested", 100.0 * mb / meta["ingested"],
             100.0, 0.05, "%", higher=False)
        rows.append(("  (LMDB bytes in use added per GiB)",
                     fmt(meta["lmdb_used_delta"] * 1073741824 // meta["ingested"]), "", "", ""))
    if vm:
        cost = vm["stored"] + 64 * vm["chunks"] + max(0, vm["lmdb_used_delta"])
        best = None
        for o in res.get("offline", []):
            if o.get("chosen"):
                best = o.get("zstd_bytes")
        goal(rows, "VM set: physical before parity + metadata, MiB vs offline (chosen chunking)",
             cost / MIB, best and best / MIB, 1.0, "", higher=False)
        goal(rows, "VM set: the same vs 264 MiB (zstd --long over the set)", cost / MIB, 264.0,
             1.0, "", higher=False)
    print("Goals (each against a limit measured in the same run):\n")
    table(["goal", "cairn", "limit", "ratio", "verdict"], rows)

    m = []
    for tag in ("cairn put-big", "cairn get-big", "cairn get-degraded", "cairn get-repaired"):
        r = one(res, tag)
        if r:
            m.append((tag[6:], fmt(r.get("mib_s")), fmt(r.get("server_cpu_s")),
                      r.get("failed", 0)))
    if m:
        print("Measurements:\n")
        table(["test", "MiB/s", "server CPU s", "failed"], m)
    if vm:
        print("VM image set (three raw images):\n")
        table(["logical", "unique (after dedup)", "stored (after zstd)", "chunks",
               "physical (with parity)", "LMDB added"],
              [(fmt(vm["logical"] // MIB, " MiB"), fmt(vm["unique"] // MIB, " MiB"),
                fmt(vm["stored"] // MIB, " MiB"), fmt(vm["chunks"]),
                fmt(vm["physical"] // MIB, " MiB"), fmt(vm["lmdb_used_delta"] // MIB, " MiB"))])
    off = res.get("offline", [])
    if off:
        print("Offline dedup figures for the same images (bench/dedup):\n")
        keys = [x for x in off[0].keys()]
        table(keys, [[fmt(o.get(x)) for x in keys] for o in off])


if __name__ == "__main__":
    main()
