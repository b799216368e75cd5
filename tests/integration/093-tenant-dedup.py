#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""093-tenant-dedup: a pool made with [pool] dedup_domain = tenant deduplicates
each user's uploads only against that user's own (boto3, two users).

The root user uploads the same 3 MiB twice (unique bytes do not grow), then
alice uploads it too (unique bytes double: her copy is stored apart). Every
object reads back byte-exact; `cairn df` reports the policy's effect."""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

MIB = 1 << 20
t = lib.Test()
conf = os.path.join(t.dir, "tenant.ini")
with open(conf, "w") as f:
    f.write("[pool]\ndedup_domain = tenant\n")
srv = t.server(extra=["--config", conf])
srv.start()


def unique():
    rc, out = srv.cli("df", "--json", check=False)
    return json.loads(out)["pool"]["unique_bytes"] if rc == 0 else -1


body = os.urandom(3 * MIB)
root = srv.client()
root.create_bucket(Bucket="root-b")
root.put_object(Bucket="root-b", Key="a", Body=body)
u1 = unique()
t.check("the first upload is stored (unique bytes ~3 MiB)", 3 * MIB - 4096 <= u1 <= 3 * MIB, u1)
root.put_object(Bucket="root-b", Key="b", Body=body)
u2 = unique()
t.check("the same user's second upload deduplicates", u2 == u1, f"{u1} -> {u2}")

kid, secret = srv.create_user_key("alice")
alice = srv.client(key=kid, secret=secret)
alice.create_bucket(Bucket="alice-b")
alice.put_object(Bucket="alice-b", Key="c", Body=body)
u3 = unique()
t.check("another user's equal upload is stored apart (unique bytes double)", u3 == 2 * u1,
        f"{u1} -> {u3}")

want = hashlib.md5(body).hexdigest()
for cl, b, k in ((root, "root-b", "a"), (root, "root-b", "b"), (alice, "alice-b", "c")):
    got = hashlib.md5(cl.get_object(Bucket=b, Key=k)["Body"].read()).hexdigest()
    t.check(f"{b}/{k} reads back byte-exact", got == want)
rc, out = srv.cli("fsck", check=False)
t.check("fsck clean", rc == 0, out)
srv.stop()
t.finish()
