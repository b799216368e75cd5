#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""090-maintenance: the pool's maintenance jobs and space figures, end to end.

Uploads objects with duplicates and checks that `cairn df --json` ratios move
as they should (dedup up with duplicates, logical down after deletes), runs
`cairn gc`, `cairn fsck` (clean, exit 0), `cairn fsck --fix`, `cairn scrub`
(progress on stderr), and the admin job API's errors: 400 for bad JSON or an
unknown op, 409 JobRunning while a job runs (the node.job_slow fault point
holds jobs so one can be met), a job that goes on after its CLI is killed, a
shutdown that waits for a running job. Also /metrics' pool, device and job
series, and GETs racing DELETEs and overwrites (200 with a sent body or 404,
never 500; the s3.get_stale fault point proves the re-read of the record).
Last, a node with scrub_interval = 1 starts a scrub job by itself."""
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

t = lib.Test()
srv = t.server()
srv.start()
s3 = srv.client()
B = "maint"
MIB = 1 << 20


def api(method, path, body=None):
    """Signed admin API request: (status, parsed JSON or None)."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else (body or b"")
    req = lib.build_request(method, path, srv.api_port, body=data,
                            headers={"Content-Type": "application/json"} if data else {})
    st, _, rb = lib.raw_request(srv.api_port, req)
    try:
        return st, json.loads(rb) if rb else None
    except ValueError:
        return st, None


def df():
    rc, out = srv.cli("df", "--json", check=False)
    try:
        return rc, json.loads(out)
    except ValueError:
        return rc, {"raw": out}


def job_wait(timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, j = api("GET", "/admin/v1/pool/jobs")
        if st == 200 and j and j.get("state") != "running":
            return j
        time.sleep(0.2)
    return None


def scrape():
    with urllib.request.urlopen(srv.api_endpoint + "/metrics", timeout=30) as r:
        return r.read().decode()




s3.create_bucket(Bucket=B)
rc, d0 = df()
t.check("cairn df --json exits 0 on an empty pool", rc == 0, str(d0)[:500])
t.check("df --json has pool and devices", "pool" in d0 and len(d0.get("devices", [])) == 6,
        str(d0)[:500])

# ---- distinct data, then duplicates ----
bodies = {f"u{i}": os.urandom(2 * MIB) for i in range(4)}
for k, b in bodies.items():
    s3.put_object(Bucket=B, Key=k, Body=b)
for i in range(3):
    s3.put_object(Bucket=B, Key=f"s{i}", Body=b"small %d" % i)   # inline
_, d1 = df()
p1 = d1["pool"]
t.check("logical bytes count the distinct uploads", p1["logical_bytes"] >= 8 * MIB, str(p1))
t.check("dedup ratio about 1 with distinct random data",
        p1["dedup_ratio"] is not None and 0.95 <= p1["dedup_ratio"] <= 1.1, str(p1))
t.check("compression ratio about 1 on random data",
        p1["compression_ratio"] is not None and 0.9 <= p1["compression_ratio"] <= 1.1, str(p1))
t.check("space amplification >= 1.4 (parity or replicas)",
        p1["space_amplification"] is not None and p1["space_amplification"] >= 1.4, str(p1))
for i in range(4):
    s3.put_object(Bucket=B, Key=f"dup{i}", Body=bodies["u0"])
    bodies[f"dup{i}"] = bodies["u0"]
_, d2 = df()
p2 = d2["pool"]
t.check("duplicates add logical bytes (+8 MiB)",
        p2["logical_bytes"] - p1["logical_bytes"] >= 8 * MIB - 4096, f"{p1} -> {p2}")
t.check("duplicates add no unique bytes", p2["unique_bytes"] == p1["unique_bytes"],
        f"{p1['unique_bytes']} -> {p2['unique_bytes']}")
t.check("dedup ratio rises to about 2 (16 MiB logical over 8 MiB unique)",
        p2["dedup_ratio"] is not None and 1.8 <= p2["dedup_ratio"] <= 2.2, str(p2))
t.check("df reports the manifests (11 objects)", p2["manifests"] >= 8, str(p2))
rc, out = srv.cli("df", check=False)
t.check("cairn df prints a table", rc == 0 and "LOGICAL" in out and "DEVICE" in out and
        re.search(r"^d0\s+present", out, re.M), out)
t.check("cairn df prints the dedup ratio", re.search(r"dedup 2\.\d\dx", out) is not None
        or re.search(r"dedup 1\.9\dx", out) is not None, out)

# ---- metrics ----
m = scrape()
t.check("/metrics has the pool dedup ratio", re.search(r"^cairn_pool_dedup_ratio (1\.[89]|2)[0-9.]*$", m, re.M), m[-3000:])
t.check("/metrics has device presence", 'cairn_device_present{device="d0"} 1' in m, m[-3000:])
t.check("/metrics has device used bytes",
        re.search(r'^cairn_device_used_bytes\{device="d\d"\} [1-9]', m, re.M), m[-3000:])
t.check("/metrics has the job gauge", re.search(r"^cairn_job_running 0$", m, re.M), m[-3000:])
t.check("/metrics keeps the old names", "cairn_pool_logical_bytes" in m and
        "cairn_requests_total" in m and "cairn_pool_read_fallbacks_total" in m)

# ---- delete, gc, fsck, scrub ----
for k in ["dup0", "dup1", "dup2", "dup3", "u3"]:
    s3.delete_object(Bucket=B, Key=k)
    bodies.pop(k)
_, d3 = df()
p3 = d3["pool"]
t.check("deletes lower logical bytes (-10 MiB)",
        p2["logical_bytes"] - p3["logical_bytes"] >= 10 * MIB - 4096, f"{p2} -> {p3}")
t.check("deletes lower unique bytes at once (u3: -2 MiB; its chunks are dead)",
        p2["unique_bytes"] - p3["unique_bytes"] >= 2 * MIB, f"{p2} -> {p3}")
rc, out = srv.cli("gc", "--json", check=False)
t.check("cairn gc --json exits 0", rc == 0, out)
try:
    freed = json.loads(out[out.index("{"):])["report"]["freed_bytes"]
except (ValueError, KeyError, TypeError):
    freed = -1
t.check("gc freed the dead chunks' bytes (>= 2 MiB of u3)", freed >= 2 * MIB, out)
rc, out = srv.cli("gc", check=False)
t.check("cairn gc exits 0", rc == 0, out)
t.check("cairn gc prints a report with the bytes freed", "freed:" in out and "result:" in out, out)
rc, out = srv.cli("fsck", check=False)
t.check("cairn fsck exits 0 (clean)", rc == 0 and "result: clean" in out, out)
t.check("cairn fsck printed progress on stderr", re.search(r"^fsck: ", out, re.M), out)
rc, out = srv.cli("fsck", "--fix", check=False)
t.check("cairn fsck --fix exits 0", rc == 0, out)
rc, out = srv.cli("scrub", check=False)
t.check("cairn scrub exits 0", rc == 0 and "result: clean" in out, out)
t.check("cairn scrub printed progress (phase, %, MiB/s, ETA)",
        re.search(r"^scrub: .*(MiB/s).*ETA", out, re.M), out)
rc, out = srv.cli("scrub", "--json", check=False)
try:
    j = json.loads(out[out.index("{"):])
except ValueError:
    j = {}
t.check("cairn scrub --json prints the job with its report",
        j.get("state") == "done" and "report" in j and j.get("clean") is True, out)
rc, out = srv.cli("scrub", "--fix", check=False)
t.check("--fix is fsck's only: usage error 2", rc == 2, out)
rc, out = srv.cli("fsck", "extra", check=False)
t.check("a stray argument is a usage error 2", rc == 2, out)
r = subprocess.run([lib.cairn_bin(), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
h = r.stdout.decode()
t.check("cairn --help lists the new commands",
        all(w in h for w in ("fsck", "gc", "scrub", "repair", "df")), h)
for k, b in bodies.items():
    got = s3.get_object(Bucket=B, Key=k)["Body"].read()
    if not t.check(f"{k} reads back after gc/fsck/scrub", got == b, f"{len(got)} bytes"):
        break

# ---- the job API ----
st, j = api("POST", "/admin/v1/pool/jobs", b"{not json")
t.check("bad JSON -> 400 MalformedJSON", st == 400 and j and j["error"]["code"] == "MalformedJSON",
        f"{st} {j}")
st, j = api("POST", "/admin/v1/pool/jobs", {"op": "defrag"})
t.check("unknown op -> 400 InvalidOperation",
        st == 400 and j and j["error"]["code"] == "InvalidOperation", f"{st} {j}")
st, j = api("POST", "/admin/v1/pool/jobs", {"op": "fsck", "fix": "yes"})
t.check("non-boolean fix -> 400", st == 400, f"{st} {j}")
st, j = api("GET", "/admin/v1/pool/stats")
t.check("GET /admin/v1/pool/stats -> 200 with ratios",
        st == 200 and j and "dedup_ratio" in j["pool"] and len(j["devices"]) == 6, f"{st} {j}")
st, j = api("DELETE", "/admin/v1/pool/jobs")
t.check("DELETE on jobs -> 405", st == 405, f"{st} {j}")
try:
    urllib.request.urlopen(urllib.request.Request(srv.api_endpoint + "/admin/v1/pool/jobs",
                                                  data=b'{"op":"gc"}', method="POST"), timeout=10)
    t.fail("an unsigned job request was accepted")
except urllib.error.HTTPError as e:
    t.check("an unsigned job request is refused (403)", e.code == 403, str(e.code))

# ---- a slow job: 409, CLI killed, attach, metrics, shutdown waits ----
srv.stop()
os.environ["CAIRN_FAULTS"] = "node.job_slow,s3.get_stale"
srv.start()
os.environ.pop("CAIRN_FAULTS")
s3 = srv.client()
got = t.attempt("GET with a stale first reader open (s3.get_stale)",
                lambda: s3.get_object(Bucket=B, Key="u1")["Body"].read())
t.check("the GET re-read the record and served the object", got == bodies["u1"])
st, j = api("POST", "/admin/v1/pool/jobs", {"op": "scrub"})
t.check("POST scrub -> 202 running", st == 202 and j and j["state"] == "running", f"{st} {j}")
st2, j2 = api("POST", "/admin/v1/pool/jobs", {"op": "fsck"})
t.check("a second job while one runs -> 409 JobRunning naming scrub",
        st2 == 409 and j2 and j2["error"]["code"] == "JobRunning" and "scrub" in j2["error"]["message"],
        f"{st2} {j2}")
rc, out = srv.cli("gc", check=False)
t.check("cairn gc while a job runs: exit 1 with the reason", rc == 1 and "JobRunning" in out, out)
st, j = api("GET", "/admin/v1/pool/jobs")
t.check("GET jobs shows it running with progress fields",
        st == 200 and j["state"] == "running" and all(
            k in j for k in ("phase", "done", "total", "percent", "rate", "eta_seconds", "started")),
        f"{st} {j}")
m = scrape()
t.check("/metrics shows the job running", re.search(r"^cairn_job_running 1$", m, re.M), m[-1500:])
rc, out = srv.cli("scrub", "--attach", check=False)
t.check("cairn scrub --attach follows it to the end", rc == 0 and "result: clean" in out, out)
# the CLI goes away; the job does not
p = subprocess.Popen([lib.cairn_bin(), "fsck", "--endpoint", srv.api_endpoint, "--data", srv.data],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.7)
p.kill()
p.wait()
st, j = api("GET", "/admin/v1/pool/jobs")
t.check("the fsck job runs on after its CLI was killed",
        st == 200 and j["op"] == "fsck" and j["state"] == "running", f"{st} {j}")
j = job_wait()
t.check("and ends done and clean", j and j["state"] == "done" and j.get("clean") is True, str(j))
# shutdown while a job runs: waits for it, exits 0
st, j = api("POST", "/admin/v1/pool/jobs", {"op": "repair"})
t.check("POST repair -> 202", st == 202, f"{st} {j}")
t0 = time.time()
srv.stop()   # fails the test on a non-zero exit or a 60 s hang
t.check("shutdown waited for the running job (logged)",
        "waiting for the running repair job" in srv.log_text(), srv.log_text()[-1500:])
t.log(f"stop with a running job took {time.time() - t0:.1f}s")

# ---- GETs racing DELETEs and overwrites ----
srv.start()
s3 = srv.client(max_pool_connections=16)
versions = [os.urandom(300 * 1024 + i * 70000) for i in range(4)]
md5s = {hashlib.md5(v).hexdigest() for v in versions}
s3.put_object(Bucket=B, Key="race", Body=versions[0])
stop = threading.Event()
bad = []
counts = {"200": 0, "404": 0}


def writer():
    i = 0
    while not stop.is_set():
        i += 1
        try:
            if i % 3 == 0:
                s3.delete_object(Bucket=B, Key="race")
            else:
                s3.put_object(Bucket=B, Key="race", Body=versions[i % 4])
        except Exception as e:  # noqa: BLE001
            bad.append(f"writer: {e}")


def reader():
    import botocore.exceptions
    while not stop.is_set():
        try:
            b = s3.get_object(Bucket=B, Key="race")["Body"].read()
            if hashlib.md5(b).hexdigest() not in md5s:
                bad.append(f"GET returned {len(b)} bytes that were never sent")
            counts["200"] += 1
        except botocore.exceptions.ClientError as e:
            code = e.response["ResponseMetadata"]["HTTPStatusCode"]
            if code == 404:
                counts["404"] += 1
            else:
                bad.append(f"GET -> {code} {e.response.get('Error', {}).get('Code')}")
        except Exception as e:  # noqa: BLE001
            bad.append(f"GET: {type(e).__name__}: {e}")


ths = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
for th in ths:
    th.start()
time.sleep(4)
stop.set()
for th in ths:
    th.join(60)
t.check(f"GETs racing DELETE/overwrite: only 200 with a sent body or 404 ({counts})",
        not bad and counts["200"] > 0, "; ".join(bad[:10]))
rc, out = srv.cli("fsck", check=False)
t.check("fsck clean after the race", rc == 0, out)

# ---- background scrub: [pool] scrub_interval starts scrub jobs by itself ----
srv.stop()
conf = os.path.join(t.dir, "scrub-often.ini")
with open(conf, "w") as f:
    f.write("[pool]\nscrub_interval = 1\n")
srv2 = t.server(data=srv.data, extra=["--config", conf])
srv2.start()
job = None
for _ in range(300):   # no timing goal: a slow machine just takes longer
    rc, out = srv2.cli("scrub", "--attach", "--json", check=False)
    try:
        job = json.loads(out[out.index("{"):])
    except ValueError:
        job = None
    if job and job.get("op") == "scrub" and job.get("state") == "done":
        break
    time.sleep(0.1)
t.check("a scrub job ran without being asked (scrub_interval = 1)",
        job is not None and job.get("op") == "scrub" and job.get("state") == "done", out)
t.check("its stamp file records when", os.path.exists(os.path.join(srv.data, "scrub-last")))
srv2.stop()
t.finish()
