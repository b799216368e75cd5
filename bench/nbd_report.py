#!/usr/bin/python3
"""bench/nbd_report.py - the tables of bench/nbd.sh (issue 6: block volumes over NBD).

  nbd_report.py --fio FIO.json CPU_S LOAD      one fio JSON output -> a compact JSON summary line
  nbd_report.py RESULTS [--qos-iops N] [--qos-bps BYTES]   RESULT lines -> markdown tables

RESULT lines are "TARGET JOB {json}"; fio summaries carry iops, mibs, p50_us, p99_us, mean_us
(latency = submission to completion, fio's lat_ns with lat_percentiles=1), the server's CPU
seconds during the job (cpu_s) and the 1-minute load average when it started (load).
"""
import json
import statistics
import sys

JOBS = ["rr4k-qd1", "rr4k-qd32", "rw4k-qd1", "rw4k-qd32", "sr1m-qd8", "sw1m-qd8"]
TITLES = {
    "rr4k-qd1": "4 KiB randread QD1",
    "rr4k-qd32": "4 KiB randread QD32",
    "rw4k-qd1": "4 KiB randwrite QD1",
    "rw4k-qd32": "4 KiB randwrite QD32",
    "sr1m-qd8": "1 MiB seq read QD8",
    "sw1m-qd8": "1 MiB seq write QD8",
    "fill": "fill: 1 MiB seq write QD8, whole target, first write",
    "thin-rr4k-qd32": "4 KiB randread QD32 of a never-written (thin) volume",
    "first-rw4k-qd32": "4 KiB randwrite QD32 on a fresh volume (first writes)",
    "clone1-rw4k-qd32": "4 KiB randwrite QD32 on a fresh clone (copy-up), first NBD_SIZE bytes, 5 s",
}
TARGETS = ["device", "nbdkit", "cairn1", "cairn3"]
NAMES = {"device": "device (io_uring O_DIRECT)", "nbdkit": "nbdkit file cache=none",
         "cairn1": "cairn, 1 replica", "cairn3": "cairn, 3 replicas"}


def fio_summary(path, cpu, load, ticks=None):
    with open(path) as f:
        j = json.load(f)
    job = j["jobs"][0]
    side = job["write"] if job["write"]["io_bytes"] > job["read"]["io_bytes"] else job["read"]
    lat = side.get("lat_ns", {})
    pct = lat.get("percentile") or side.get("clat_ns", {}).get("percentile", {})
    out = {
        "iops": round(side["iops"], 1),
        "mibs": round(side["bw_bytes"] / 1048576, 1),
        "p50_us": round(pct.get("50.000000", 0) / 1000, 1),
        "p99_us": round(pct.get("99.000000", 0) / 1000, 1),
        "mean_us": round(lat.get("mean", 0) / 1000, 1),
        "bytes": side["io_bytes"],
        "secs": round(job.get("job_runtime", 0) / 1000, 2),
        "cpu_s": float(cpu),
        "load": float(load),
    }
    if ticks:
        # CPU (in cores) that neither fio nor the server used during the job: other work on
        # the machine, the noise this figure was taken under
        b0, u0, b1, u1, hz = (float(x) for x in ticks)
        wall = (u1 - u0) / hz
        fio_s = (job.get("usr_cpu", 0) + job.get("sys_cpu", 0)) / 100 * wall
        if wall > 0:
            out["other_cores"] = round(max(0.0, ((b1 - b0) / hz - fio_s - float(cpu)) / wall), 2)
    print(json.dumps(out, separators=(",", ":")))


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) != 3:
                continue
            res.setdefault(parts[0], {}).setdefault(parts[1], []).append(json.loads(parts[2]))
    return res


def cell(r):
    if r is None:
        return "-"
    if "error" in r:
        return "**" + r["error"] + "**"
    if r["mibs"] >= 100 and r["iops"] < 5000:
        return "%.0f MiB/s, p99 %s" % (r["mibs"], us(r["p99_us"]))
    return "%.0f IOPS (%.1f MiB/s), p99 %s" % (r["iops"], r["mibs"], us(r["p99_us"]))


def noise(r):
    if "other_cores" in r:
        return "%.2f" % r["other_cores"]
    return "(load %.1f)" % r.get("load", 0)


def us(v):
    return "%.2f ms" % (v / 1000) if v >= 1000 else "%.0f µs" % v


def ratio(a, b, goal=None):
    if a is None or b is None or "error" in a or "error" in b or not b["iops"]:
        return "-"
    x = a["iops"] / b["iops"]
    s = "%.2f" % x
    if goal is not None:
        s += " ✓" if x >= goal else " ✗"
    return s


def one(res, t, job):
    v = res.get(t, {}).get(job)
    return v[-1] if v else None


def tables(res, qos_iops, qos_bps):
    present = [t for t in TARGETS if any(j in res.get(t, {}) for j in JOBS)]
    if present:
        io_table(res, present)
    first_table(res)
    meta_table(res)
    qos_table(res, qos_iops, qos_bps)


def io_table(res, present):
    print("### Volume I/O: fio, same jobs on every target\n")
    print("| job | " + " | ".join(NAMES[t] for t in present) +
          " | cairn1 / device | cairn1 / nbdkit | cairn3 / cairn1 |")
    print("| --- |" + " --- |" * (len(present) + 3))
    for job in JOBS:
        row = [cell(one(res, t, job)) for t in present]
        qd1 = job.endswith("qd1")
        c1 = one(res, "cairn1", job)
        row += [ratio(c1, one(res, "device", job), None if qd1 else 0.8),
                ratio(c1, one(res, "nbdkit", job), 1.0),
                ratio(one(res, "cairn3", job), c1)]
        print("| %s | %s |" % (TITLES[job], " | ".join(row)))
    loads = []
    for t in present:
        ls = [r.get("other_cores", r["load"]) for job in JOBS for r in res[t].get(job, [])]
        cpus = [r.get("cpu_s", 0) for job in JOBS for r in res[t].get(job, []) if "error" not in r]
        if ls:
            loads.append("%s %.1f-%.1f" % (t, min(ls), max(ls)) +
                         (", server CPU %.0f s" % sum(cpus) if t != "device" else ""))
    print("\nGoal marks: ✓/✗ against ≥ 0.8 of the device (QD32 and 1 MiB) and ≥ 1.0 of nbdkit "
          "(every job, one replica). Ratios are of IOPS (= of MiB/s for the same job). "
          "Cores busy with other work during the jobs (machine busy time - fio - server; "
          "the 1-minute load average where not measured): " + "; ".join(loads) + ".\n")


def first_table(res):
    rows = []
    for t in ["device", "cairn1", "cairn3", "cairn-meta"]:
        for job in ["thin-rr4k-qd32", "fill", "first-rw4k-qd32", "clone1-rw4k-qd32"]:
            r = one(res, t, job)
            if r is not None:
                rows.append((t, TITLES[job], r))
        for job, v in sorted(res.get(t, {}).items()):
            if job.startswith("write-"):
                rows.append((t, "write %s, spread (4 MiB extents, one in ten), 1 MiB QD8"
                             % job[6:].replace("-", " "), v[-1]))
    if rows:
        print("### First writes, thin reads, fills\n")
        print("| target | what | result | time | other cores busy |")
        print("| --- | --- | --- | --- | --- |")
        for t, what, r in rows:
            print("| %s | %s | %s | %s | %s |" % (
                t, what, cell(r), "%.1f s" % r["secs"] if r.get("secs") else "-", noise(r)))
        print()


def meta_table(res):
    meta = res.get("cairn-meta", {})
    ops = [(o, meta[o]) for o in ["snapshot", "clone", "rollback"] if o in meta]
    written = [(j[6:], v[-1]) for j, v in meta.items() if j.startswith("write-")]
    if ops:
        if written and "error" not in written[0][1]:
            what = "%s written" % written[0][0].replace("-", " ")
        else:
            what = "**the write failed: nothing written**"
        print("### Snapshot, clone, rollback (%s)\n" % what)
        print("| call | n | server ms: median / max | curl total ms: median / max | "
              "CLI wall ms (one call) | goal < 10 ms | load |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for o, v in ops:
            ok = [r for r in v if "error" not in r]
            errs = len(v) - len(ok)
            cli = meta.get("cli-" + o, [{}])[-1]
            if not ok:
                print("| %s | %d | **failed** | | | ✗ | |" % (o, len(v)))
                continue
            srv = [r["server_ms"] for r in ok]
            tot = [r["total_ms"] for r in ok]
            print("| %s | %d%s | %.2f / %.2f | %.2f / %.2f | %s | %s | %.1f-%.1f |" % (
                o, len(ok), " (+%d failed)" % errs if errs else "",
                statistics.median(srv), max(srv), statistics.median(tot), max(tot),
                "%.1f" % cli["total_ms"] if "total_ms" in cli else "-",
                "✓" if max(srv) < 10 else "✗",
                min(r["load"] for r in ok), max(r["load"] for r in ok)))
        print()


def qos_table(res, qos_iops, qos_bps):
    qrows = []
    for t, v in sorted(res.items()):
        if not t.startswith("qos-"):
            continue
        for job, rs in v.items():
            r = rs[-1]
            if "error" in r:
                qrows.append((t, job, r["error"], "-", noise(r)))
            elif t.startswith("qos-iops"):
                qrows.append((t, job, "%.0f IOPS" % r["iops"], "%.3f" % (r["iops"] / qos_iops),
                              noise(r)))
            else:
                qrows.append((t, job, "%.1f MiB/s" % r["mibs"],
                              "%.3f" % (r["mibs"] * 1048576 / qos_bps), noise(r)))
    if qrows:
        print("### QoS on an attached volume (limits set live with `cairn volume qos`)\n")
        print("| limit | job | achieved | achieved / limit (goal 0.95-1.05) | other cores busy |")
        print("| --- | --- | --- | --- | --- |")
        for t, job, got, rat, ld in qrows:
            mark = ""
            if rat != "-":
                mark = " ✓" if 0.95 <= float(rat) <= 1.05 else " ✗"
            print("| %s | %s | %s | %s%s | %s |" % (t[4:], TITLES.get(job, job), got, rat,
                                                      mark, ld))
        print()


def main():
    a = sys.argv[1:]
    if a and a[0] == "--fio":
        fio_summary(a[1], a[2], a[3], a[4:9] if len(a) >= 9 else None)
        return
    qos_iops, qos_bps = 2000, 50 << 20
    if "--qos-iops" in a:
        qos_iops = float(a[a.index("--qos-iops") + 1])
    if "--qos-bps" in a:
        qos_bps = float(a[a.index("--qos-bps") + 1])
    tables(load(a[0]), qos_iops, qos_bps)


if __name__ == "__main__":
    main()
