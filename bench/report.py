#!/usr/bin/python3
"""bench/report.py RESULTS_FILE - turns the RESULT lines of one bench/run.sh run into markdown.

Each line of RESULTS_FILE is `TAG RESULT {json}`: TAG is "kernels" or "<target> <test>", where
target is cairn, swift or nginx and test is put-big, put-big-signed, get-big, put-small,
get-small, or (issue 4) chunked-put, chunked-put-signed, mp-put (nginx PUTs go to a WebDAV sink
on tmpfs: the generator's upload ceiling). Prints the tables (CPU kernels, measurements, the
goals of issue 2 and of issue 4; a goals table only when one of its tests ran) to stdout. A
run where nothing succeeded has no speed: its row says "failed" and what the server answered
(RESULT "error"). A goal whose reference is missing (cairn not built, a server that failed)
reads "n/a"; a cairn measurement with any failed request, or whose object failed its
read-back check (TAG "<target> <test>-check", loadgen check-big), counts as MISS whatever its
speed, and so does a cairn test that failed outright.
Standard library only (Debian's python3).
"""
import json
import sys

TARGETS = ["cairn", "swift", "nginx"]
TESTS = [
    ("put-big", "PUT, 1 conn (UNSIGNED-PAYLOAD)"),
    ("put-big-signed", "PUT, 1 conn (signed payload SHA-256)"),
    ("get-big", "GET, 1 conn"),
    ("put-small", "PUT, {conc} conns"),
    ("get-small", "GET, {conc} conns"),
    ("chunked-put", "PUT, 1 conn, aws-chunked ({chunk} chunks, CRC32 trailer)"),
    ("chunked-put-signed", "PUT, 1 conn, aws-chunked ({chunk} chunks, chunk signatures)"),
    ("mp-put", "multipart PUT, {part} parts, {conc} in flight on {conc} conns "
               "(Create to Complete)"),
]
ISSUE4_TESTS = ("chunked-put", "chunked-put-signed", "mp-put")
NAMES = {"cairn": "cairn", "swift": "Swift s3api", "nginx": "nginx"}


def load(path):
    res, kern = {}, None
    with open(path) as f:
        for line in f:
            if " RESULT " not in line:
                continue
            tag, js = line.split(" RESULT ", 1)
            data = json.loads(js)
            if tag.strip() == "kernels":
                kern = data
            else:
                target, test = tag.split()
                res[(target, test)] = data
    return res, kern


def human(size):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} B"


def cores(r, field):
    if field not in r or not r["seconds"]:
        return "-"
    return f"{r[field] / r['seconds']:.2f}"


def fmt(v, unit=""):
    if v >= 100:
        return f"{v:.0f}{unit}"
    if v >= 10:
        return f"{v:.1f}{unit}"
    return f"{v:.2f}{unit}"


def main():
    res, kern = load(sys.argv[1])
    out = []
    if kern:
        out.append("CPU kernels, one core, GiB/s (bench/out/kernels):\n")
        out.append("| kernel | GiB/s |")
        out.append("| --- | ---: |")
        for name in ["md5", "sha256", "crc32c", "zero_check", "memcpy", "serial_unsigned",
                     "serial_signed", "total_unsigned", "total_signed"]:
            out.append(f"| {name} | {kern[name + '_gib_s']:.2f} |")
        out.append(f"| **CPU limit, 1 GiB PUT, UNSIGNED-PAYLOAD** | "
                   f"**{kern['cpu_limit_unsigned_mib_s']:.0f} MiB/s** |")
        out.append(f"| CPU limit, 1 GiB PUT, signed payload | "
                   f"{kern['cpu_limit_signed_mib_s']:.0f} MiB/s |")
        out.append("")

    out.append("Measurements (bench/out/loadgen; latency per request; CPU in cores busy during the "
               "test: server = all its processes, client = the load generator):\n")
    out.append("| test | target | MiB/s | ops/s | p50 ms | p99 ms | max ms | ok | errors "
               "| server CPU | client CPU |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for test, title in TESTS:
        for t in TARGETS:
            r = res.get((t, test))
            if not r:
                continue
            what = human(r["size"]) + " " + title.format(
                conc=r["conc"], part=human(r.get("part_size", 0)),
                chunk=human(r.get("chunk_size", 65536)))
            name = NAMES[t] + (" (WebDAV sink, tmpfs)" if t == "nginx" and
                               test.startswith("put") else "")
            if r["ok"] == 0 and "mib_s" not in r:
                err = r.get("error", "no request succeeded").replace("|", "/")
                out.append(f"| {what} | {name} | failed: {err} | | | | | 0 | "
                           f"{r['errors']} | | |")
                continue
            out.append(f"| {what} | {name} | {fmt(r['mib_s'])} | {fmt(r['ops_s'])} | "
                       f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} | "
                       f"{r['ok']} | {r['errors']} | {cores(r, 'server_cpu_s')} | "
                       f"{cores(r, 'client_cpu_s')} |")
    out.append("")

    checks = [(t, test) for (t, test) in res if test.endswith("-check")]
    if checks:
        out.append("Read-back checks (untimed; loadgen check-big: GET each uploaded object, compare "
                   "every byte with the generated ones, and its ETag with their MD5 unless it is "
                   "a multipart ETag):\n")
        out.append("| object of | target | result |")
        out.append("| --- | --- | --- |")
        for test, _ in TESTS:
            for t in TARGETS:
                r = res.get((t, test + "-check"))
                if not r:
                    continue
                verdict = (f"OK, ETag {r.get('etag', '')}" if r["ok"] else
                           "FAILED: " + r.get("error", "?").replace("|", "/"))
                out.append(f"| {test} | {NAMES[t]} | {verdict} |")
        out.append("")

    def val(target, test, field):
        r = res.get((target, test))
        if not r or r["ok"] == 0:
            return None, False
        chk = res.get((target, test + "-check"))
        return r[field], r["errors"] == 0 and (chk is None or chk["ok"] == 1)

    issue2 = [
        ("1 GiB PUT >= 2x Swift", "put-big", "mib_s", ("swift", "put-big"), 2.0, " MiB/s"),
        ("1 GiB PUT >= 80% of the CPU limit", "put-big", "mib_s", ("cpu", None), 0.8, " MiB/s"),
        ("1 GiB GET >= 4x Swift", "get-big", "mib_s", ("swift", "get-big"), 4.0, " MiB/s"),
        ("1 GiB GET >= 60% of nginx", "get-big", "mib_s", ("nginx", "get-big"), 0.6, " MiB/s"),
        ("4 KiB PUT >= 20x Swift", "put-small", "ops_s", ("swift", "put-small"), 20.0, " ops/s"),
        ("4 KiB GET >= 40x Swift", "get-small", "ops_s", ("swift", "get-small"), 40.0, " ops/s"),
        ("4 KiB GET >= 20% of nginx", "get-small", "ops_s", ("nginx", "get-small"), 0.2,
         " ops/s"),
    ]
    issue4 = [
        ("multipart PUT, parts in flight, >= 3x Swift", "mp-put", "mib_s",
         ("swift", "mp-put"), 3.0, " MiB/s"),
        ("aws-chunked 1 GiB PUT (CRC32 trailer) within 10% of the plain PUT", "chunked-put",
         "mib_s", ("cairn", "put-big"), 0.9, " MiB/s"),
    ]
    ran = {test for (_, test) in res}
    for title, goals in (("Goals (issue 2)", issue2), ("Goals (issue 4)", issue4)):
        shown = [g for g in goals if g[1] in ran]  # a partial run (BENCH_STEPS) shows its own
        if shown:
            goal_table(out, title, shown, val, kern, res)
    print("\n".join(out))


REFNAMES = {("cairn", "put-big"): "cairn plain PUT"}


def goal_table(out, title, goals, val, kern, res):
    out.append(title + ", cairn against the reference measured in the same run:\n")
    out.append("| goal | cairn | reference | ratio | needed | result |")
    out.append("| --- | ---: | ---: | ---: | ---: | --- |")
    passed = missed = 0
    for name, test, field, (rt, rtest), need, unit in goals:
        mine, clean = val("cairn", test, field)
        if rt == "cpu":
            ref = kern["cpu_limit_unsigned_mib_s"] if kern else None
            refname = "CPU limit"
        else:
            ref, _ = val(rt, rtest, field)
            refname = REFNAMES.get((rt, rtest), NAMES[rt])
        need_s = f"{need:.0%}" if need < 1 else f"{need:g}x"
        if ref is None:
            out.append(f"| {name} | {fmt(mine, unit) if mine is not None else 'n/a'} | "
                       f"{refname}: n/a | n/a | {need_s} | n/a |")
            continue
        if mine is None:
            failed = res.get(("cairn", test))
            if failed:  # cairn ran it and nothing succeeded: a miss, not a missing input
                missed += 1
                out.append(f"| {name} | failed | {refname}: {fmt(ref, unit)} | n/a | {need_s} | "
                           f"MISS (cairn failed) |")
            else:
                out.append(f"| {name} | n/a | {refname}: {fmt(ref, unit)} | n/a | {need_s} | "
                           f"n/a (no cairn result) |")
            continue
        ratio = mine / ref
        ok = ratio >= need and clean
        passed += ok
        missed += not ok
        ratio_s = f"{ratio:.0%}" if need < 1 else f"{ratio:.2f}x"
        verdict = "PASS" if ok else ("MISS (errors or failed read-back)" if not clean
                                     else "MISS")
        out.append(f"| {name} | {fmt(mine, unit)} | {refname}: {fmt(ref, unit)} | {ratio_s} | "
                   f"{need_s} | {verdict} |")
    out.append("")
    out.append(f"{passed} goals PASS, {missed} MISS, {len(goals) - passed - missed} n/a")
    out.append("")


if __name__ == "__main__":
    main()
