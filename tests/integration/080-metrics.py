#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 120
"""080-metrics: the API port's /health and /metrics (Prometheus text) move with
S3 traffic: requests by operation and status, bytes in and out, latency
histograms, store bytes; one access log line per request, never a
signature or a secret."""
import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

t = lib.Test()
srv = t.server()
srv.start()
s3 = srv.client()


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def scrape():
    st, hd, body = http_get(srv.api_endpoint + "/metrics")
    m = {}
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        mm = SAMPLE.match(line)
        if mm:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', mm.group(2) or ""))
            m[(mm.group(1), tuple(sorted(labels.items())))] = float(mm.group(3))
    return st, hd, body, m


def val(m, name, **labels):
    """Sum of the samples of name whose labels include these."""
    return sum(v for (n, ls), v in m.items()
               if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


st, hd, body = http_get(srv.api_endpoint + "/health")
t.check("/health -> 200", st == 200, f"got {st} {body[:200]!r}")
st, hd, body, before = scrape()
t.check("/metrics -> 200", st == 200, f"got {st}")
ctype = {k.lower(): v for k, v in hd.items()}.get("content-type", "")
t.check("/metrics is Prometheus text 0.0.4", ctype.startswith("text/plain") and "0.0.4" in ctype, ctype)
st, _, body = http_get(srv.api_endpoint + "/admin/v1/users")
t.check("unsigned /admin/v1/users is refused", st in (401, 403), f"got {st} {body[:200]!r}")

B = "metrics"
s3.create_bucket(Bucket=B)
sizes = [1000, 200_000, 3_000_000]
for i, n in enumerate(sizes):
    s3.put_object(Bucket=B, Key=f"m{i}", Body=os.urandom(n))
got = sum(len(s3.get_object(Bucket=B, Key=f"m{i}")["Body"].read()) for i in range(2))
s3.list_objects_v2(Bucket=B)
try:
    s3.get_object(Bucket=B, Key="missing")
except Exception:  # noqa: BLE001 - the 404 is the point
    pass
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "m0"}, ExpiresIn=300)
pst, _, pbody = http_get(url)
t.check("presigned GET works", pst == 200 and len(pbody) == 1000, f"got {pst}")

# counters are recorded when a request completes: give the server a moment
# (and store gauges may be refreshed by a background pass): up to 10 s
after = {}
for _ in range(100):
    st, hd, body, after = scrape()
    if val(after, "cairn_requests_total", op="GetObject", status="404") > \
            val(before, "cairn_requests_total", op="GetObject", status="404") and \
            val(after, "cairn_pool_logical_bytes") >= sum(sizes):
        break
    time.sleep(0.1)


def moved(desc, name, at_least, **labels):
    d = val(after, name, **labels) - val(before, name, **labels)
    t.check(f"{desc}: {name}{labels} moved by >= {at_least}", d >= at_least, f"moved by {d}")


moved("PUTs counted", "cairn_requests_total", 3, frontend="s3", op="PutObject", status="200")
moved("GETs counted", "cairn_requests_total", 3, frontend="s3", op="GetObject", status="200")
moved("404 counted", "cairn_requests_total", 1, frontend="s3", op="GetObject", status="404")
moved("list counted", "cairn_requests_total", 1, frontend="s3", op="ListObjectsV2")
moved("CreateBucket counted", "cairn_requests_total", 1, frontend="s3", op="CreateBucket")
moved("bytes in", "cairn_request_bytes_total", sum(sizes), frontend="s3", op="PutObject")
moved("bytes out", "cairn_response_bytes_total", got + 1000, frontend="s3", op="GetObject")
moved("latency histogram count", "cairn_request_duration_seconds_count", 3, frontend="s3", op="PutObject")
inf = val(after, "cairn_request_duration_seconds_bucket", frontend="s3", op="PutObject", le="+Inf")
cnt = val(after, "cairn_request_duration_seconds_count", frontend="s3", op="PutObject")
t.check("histogram +Inf bucket equals its count", inf == cnt and cnt > 0, f"+Inf {inf}, count {cnt}")
t.check("store bytes reported (cairn_pool_logical_bytes >= bytes stored)",
        val(after, "cairn_pool_logical_bytes") >= sum(sizes), f"{val(after, 'cairn_pool_logical_bytes')}")
t.check("physical bytes reported", val(after, "cairn_pool_physical_bytes") > 0,
        f"{val(after, 'cairn_pool_physical_bytes')}")

# access log
time.sleep(0.3)
logtext = srv.log_text()
acc = [ln for ln in logtext.splitlines() if "s3access" in ln]
t.check("an access log line per S3 request (9 made)", len(acc) >= 9, f"{len(acc)} lines")
t.check("access log shows the PUT of m2", any("PUT" in ln and f"/{B}/m2" in ln and " 200 " in ln for ln in acc),
        "\n    | ".join(acc[-10:]))
t.check("access log shows the 404", any(f"/{B}/missing" in ln and " 404 " in ln for ln in acc),
        "\n    | ".join(acc[-10:]))
t.check("no X-Amz-Signature anywhere in the log", "x-amz-signature" not in logtext.lower())
t.check("no Signature= anywhere in the log", "signature=" not in logtext.lower())
t.check("no secret in the log", lib.ROOT_SECRET not in logtext)
t.finish()
